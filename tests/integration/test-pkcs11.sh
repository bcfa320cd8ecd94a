#!/bin/bash
# The pkcs11 provider against a real SoftHSM2 token (tests/pkcs11/make-token.sh)
# and the real nbdkit: create, serve, write, restart, read back with an AES key
# (RFC 5649 key wrap on the token) and an RSA-3072 key pair (RSA-OAEP-SHA256);
# RSA enrolment from a PEM public key with the token out of reach; a pkcs11
# wrap beside a passphrase wrap; the KEKs stay non-extractable; every bad
# input refused with a clear message and nothing written; a wrong PIN is tried
# once (pkcs11-spy counts the C_Login calls) and does not lock the token.
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdsh softhsm2-util pkcs11-tool openssl
TAMPER=$CV_BUILD/tools/cv-tamper

rc=0
"$CV_SRCDIR/tests/pkcs11/make-token.sh" "$tmp/hsm" >"$tmp/mk.log" 2>&1 || rc=$?
[ "$rc" = 77 ] && { tail -n 1 "$tmp/mk.log"; exit 77; }
[ "$rc" = 0 ] || { cat "$tmp/mk.log"; fail "make-token.sh failed"; }
source "$tmp/hsm/env"
PIN=$tmp/hsm/pin
WRONG=$tmp/hsm/wrong-pin
SECRET=$(cat "$PIN")
keytool () { "$P11_KEYTOOL" "$P11_MODULE" "$P11_TOKEN" "$PIN" "$@"; }
# uri OBJECT-ATTRS: a URI on the test token with the module path.
uri () { printf 'pkcs11:token=%s;%s?module-path=%s' "$P11_TOKEN" "$1" "$P11_MODULE"; }
AES=$(uri object=aes-kek)
RSA=$(uri object=rsa-kek)
allerr=$tmp/all-stderr

# refuses WHAT PATTERN VOLUME PLUGIN-PARAMS...: nbdkit must not start serving
# and the volume must be unchanged.
refuses () {
  local what=$1 pattern=$2 vol=$3 sum; shift 3
  sum=$(sha256sum "$vol" | cut -d' ' -f1)
  rm -f ran
  expect_fail "$what" "$pattern" nbdkit -U - "$PLUGIN" "$vol" "$@" --run 'touch ran'
  cat "$tmp/err" >> "$allerr"
  [ ! -e ran ] || fail "$what: nbdkit served the volume"
  [ "$(sha256sum "$vol" | cut -d' ' -f1)" = "$sum" ] || fail "$what: the volume changed"
}

# create_refused WHAT PATTERN KEYMGR-CREATE-ARGS...: keymgr create must fail
# and leave no file behind.
create_refused () {
  local what=$1 pattern=$2; shift 2
  rm -f refused.img
  expect_fail "$what" "$pattern" "$KEYMGR" create refused.img --size 16M "$@"
  cat "$tmp/err" >> "$allerr"
  [ ! -e refused.img ] || fail "$what: keymgr left a volume behind"
}

head -c 1M /dev/urandom > data

# write_read VOLUME PLUGIN-PARAMS...: write data at 4096 through one server,
# read it back through a second one (the restart).
write_read () {
  local vol=$1; shift
  serve "$vol" "$@" -- nbdsh -u '$uri' -c "h.pwrite(open('data','rb').read(), 4096)" 2>>"$allerr"
  serve "$vol" "$@" -- nbdsh -u '$uri' \
    -c "assert h.pread(1048576, 4096) == open('data','rb').read(), 'data differs'" 2>>"$allerr"
}

# --- AES key on the token (aes-kwp) -----------------------------------------
"$KEYMGR" create aesvol --size 16M --wrap "$AES" --pin-file "$PIN" >/dev/null 2>>"$allerr"
write_read aesvol pin=+"$PIN"
pass "AES key on the token: created, written, restarted, read back"
"$KEYMGR" info aesvol > info
grep -q "token 'cv-test' (serial [0-9a-f]*), object 'aes-kek' id 01, mechanism aes-kwp (CKM_AES_KEY_WRAP_PAD)" info ||
  { cat info; fail "info does not show the token, object and mechanism"; }
pass "info shows: $(grep "token 'cv-test'" info | sed 's/^ *//')"

# --- RSA key pair, enrolled from the token's public key without a PIN ---------
"$KEYMGR" create rsavol --size 16M --wrap "$RSA" >/dev/null 2>>"$allerr"
write_read rsavol pin=+"$PIN"
"$KEYMGR" info rsavol | grep -q "object 'rsa-kek' id 02, mechanism rsa-oaep-sha256" ||
  fail "info does not show the RSA wrap"
pass "RSA key pair: enrolled without a PIN, written, restarted, read back"

# --- RSA enrolment from a PEM public key, the token out of reach -------------
pkcs11-tool --module "$P11_MODULE" --token-label "$P11_TOKEN" --read-object \
  --type pubkey --label rsa-kek -o pub.der >/dev/null 2>&1
openssl pkey -pubin -inform DER -in pub.der -out pub.pem
SOFTHSM2_CONF=/nonexistent/softhsm2.conf \
  "$KEYMGR" create pemvol --size 16M --wrap "$RSA&x-public-key=$tmp/pub.pem" >/dev/null 2>>"$allerr"
"$KEYMGR" info pemvol --json > pem.json
python3 - <<'EOS'
import json
w = json.load(open("pem.json"))["wraps"][0]
assert "x-public-key" not in w["ref"], w["ref"]
assert w["mech"] == "rsa-oaep-sha256" and w["object_label"] == "rsa-kek", w
EOS
write_read pemvol pin=+"$PIN"
pass "RSA enrolment from a PEM public key (token unreachable), unlock on the token"

# --- a pkcs11 wrap and a passphrase wrap: either opens alone ------------------
printf 'correct horse battery staple' > pass
"$KEYMGR" create twovol --size 16M --wrap "$AES" --wrap passphrase --pin-file "$PIN" \
  --passphrase-file pass "${FAST_KDF[@]}" >/dev/null 2>>"$allerr"
write_read twovol pin=+"$PIN"
serve twovol passphrase=+pass -- nbdsh -u '$uri' \
  -c "assert h.pread(1048576, 4096) == open('data','rb').read()" 2>>"$allerr"
pass "volume with a pkcs11 and a passphrase wrap: opens with the PIN alone and the passphrase alone"

# --- add-wrap: a pkcs11 wrap added to a key-file volume -----------------------
new_volume addvol 16M
"$KEYMGR" add-wrap addvol --wrap "$RSA" --keyfile addvol.kek --pin-file "$PIN" >/dev/null 2>>"$allerr"
write_read addvol pin=+"$PIN"
pass "add-wrap with a pkcs11 URI; the volume then opens with the PIN alone"

# --- pin-source= (RFC 7512) is for the URI an operator gives, never stored ----
"$KEYMGR" create srcvol --size 16M --wrap "$AES&pin-source=$PIN" >/dev/null 2>>"$allerr"
"$KEYMGR" info srcvol | grep -q "pin-source" && fail "pin-source kept in the stored reference"
refuses "a header's pin-source is not used" "cannot unlock volume [^ ]*srcvol: .*no PIN given" srcvol
write_read srcvol pin=+"$PIN"
pass "PIN read from the given URI's pin-source at create; not stored, not used at unlock"

# --- a module-path stored in a header is loaded only from a safe place --------
install -m 0666 "$P11_MODULE" "$tmp/module-copy.so"
"$KEYMGR" create modvol --size 16M --pin-file "$PIN" \
  --wrap "pkcs11:token=$P11_TOKEN;object=aes-kek?module-path=$tmp/module-copy.so" >/dev/null 2>>"$allerr"
refuses "stored module-path writable by others" \
  "refusing to load module-path .*module-copy.so from the volume header: it or its directory can be written by others" \
  modvol pin=+"$PIN"
serve modvol pin=+"$PIN" pkcs11-module="$P11_MODULE" -- nbdinfo --size '$uri' >/dev/null 2>>"$allerr"
pass "an operator's pkcs11-module= overrides the header's module-path"

# --- bad input ----------------------------------------------------------------
# Wrong PIN: named, tried once even with two wraps on the token, no lock.
"$KEYMGR" create bothvol --size 16M --wrap "$AES" --wrap "$RSA" --pin-file "$PIN" >/dev/null 2>>"$allerr"
SPY=$(ls /usr/lib/*/pkcs11/pkcs11-spy.so /usr/lib/pkcs11/pkcs11-spy.so 2>/dev/null | head -n 1 || true)
[ -n "$SPY" ] || fail "pkcs11-spy.so (opensc) not found"
export PKCS11SPY=$P11_MODULE PKCS11SPY_OUTPUT=$tmp/spy.log
refuses "wrong PIN" "wrong PIN for token 'cv-test' \(CKR_PIN_INCORRECT\); not retried" \
  bothvol pin=+"$WRONG" pkcs11-module="$SPY"
grep -q "already refused this PIN" "$allerr" || fail "the second wrap did not skip the refused PIN"
logins=$(grep -c "C_Login" "$tmp/spy.log" || true)
[ "$logins" = 1 ] || fail "wrong PIN: $logins C_Login calls for two wraps, want 1"
opened=$(grep -c "C_OpenSession" "$tmp/spy.log" || true)
closed=$(grep -c "C_CloseSession" "$tmp/spy.log" || true)
inits=$(grep -c "C_Initialize" "$tmp/spy.log" || true)
finis=$(grep -c "C_Finalize" "$tmp/spy.log" || true)
[ "$opened" = "$closed" ] && [ "$inits" = "$finis" ] ||
  fail "sessions $opened opened / $closed closed, $inits initialised / $finis finalised"
pass "wrong PIN: one C_Login for two wraps; every session closed, module finalised ($opened/$inits)"
unset PKCS11SPY PKCS11SPY_OUTPUT
pkcs11-tool --module "$P11_MODULE" -L 2>/dev/null | grep -qi "locked" && fail "the token's PIN is locked"
serve bothvol pin=+"$PIN" -- nbdinfo --size '$uri' >/dev/null 2>>"$allerr"
pass "after the wrong PIN the right one still unlocks (token not locked)"

refuses "no PIN given" "cannot unlock volume [^ ]*aesvol: .*no PIN given" aesvol
refuses "module that is not a PKCS#11 module" "libcrypto.so.3 is not a PKCS#11 module \(it has no C_GetFunctionList\)" \
  aesvol pin=+"$PIN" pkcs11-module=libcrypto.so.3
refuses "module path that does not exist" "PKCS#11 module /nonexistent/p11.so does not exist" \
  aesvol pin=+"$PIN" pkcs11-module=/nonexistent/p11.so
mkdir empty-tokens
printf 'directories.tokendir = %s\nobjectstore.backend = file\n' "$tmp/empty-tokens" > empty.conf
SOFTHSM2_CONF=$tmp/empty.conf softhsm2-util --init-token --free --label other-hsm \
  --so-pin 12345678 --pin 12345678 >/dev/null
SOFTHSM2_CONF=$tmp/empty.conf refuses "token not present" \
  "token not present: no token matches the URI; tokens present: 'other-hsm' \(serial [0-9a-f]+\)" \
  aesvol pin=+"$PIN"

# A wrap copied from another volume (same token key) does not open this one.
for v in aes rsa; do
  "$KEYMGR" create "${v}2" --size 16M --wrap "$( [ $v = aes ] && echo "$AES" || echo "$RSA")" \
    --pin-file "$PIN" >/dev/null 2>>"$allerr"
  cp "${v}2" "${v}stolen" && "$TAMPER" "${v}stolen" set-wraps "${v}vol"
  refuses "$v wrap made for another volume" "made for another volume|copied from another volume" \
    "${v}stolen" pin=+"$PIN"
done

# A key whose use was withdrawn after enrolment.
keytool genaes temp-kek 06 wrap=1 unwrap=1
"$KEYMGR" create tempvol --size 16M --wrap "$(uri object=temp-kek)" --pin-file "$PIN" >/dev/null 2>>"$allerr"
keytool set secret temp-kek unwrap=0
refuses "AES key that does not allow unwrap" "temp-kek.*does not allow this use \(CKA_UNWRAP is false" \
  tempvol pin=+"$PIN"
keytool set private rsa-kek decrypt=0
refuses "RSA key that does not allow decrypt" "rsa-kek.*does not allow this use \(CKA_DECRYPT is false" \
  rsavol pin=+"$PIN"
keytool set private rsa-kek decrypt=1

# A key replaced under the same label: its check value tells it apart.
keytool genaes swap-kek 07 wrap=1 unwrap=1
"$KEYMGR" create swapvol --size 16M --wrap "$(uri object=swap-kek)" --pin-file "$PIN" >/dev/null 2>>"$allerr"
pkcs11-tool --module "$P11_MODULE" --token-label "$P11_TOKEN" --login --pin "$SECRET" \
  --delete-object --type secrkey --label swap-kek >/dev/null 2>&1
keytool genaes swap-kek 07 wrap=1 unwrap=1
refuses "key replaced under the same URI" "swap-kek.*is not the key this wrap was made with \(its kcv differs\)" \
  swapvol pin=+"$PIN"

create_refused "object not found" "object not found: no AES or RSA key on token 'cv-test' matches the URI; keys on the token: .*aes-kek" \
  --wrap "$(uri object=no-such-key)" --pin-file "$PIN"
create_refused "ambiguous URI" "ambiguous: 2 keys on token 'cv-test' match it \(secret key label 'dup-kek' id 03, secret key label 'dup-kek' id 04\)" \
  --wrap "$(uri object=dup-kek)" --pin-file "$PIN"
create_refused "key that does not allow wrapping" "nowrap-kek.*does not allow this use \(CKA_WRAP is false" \
  --wrap "$(uri object=nowrap-kek)" --pin-file "$PIN"
create_refused "token not present (create)" "token not present: no token matches the URI; tokens present: 'cv-test'" \
  --wrap "pkcs11:token=no-such-token;object=aes-kek?module-path=$P11_MODULE" --pin-file "$PIN"
create_refused "wrong PIN (create)" "CKR_PIN_INCORRECT" --wrap "$AES" --pin-file "$WRONG"
create_refused "no PIN for a secret key (create)" "no PIN given" --wrap "$AES"
create_refused "pin-value in the URI" "must not contain pin-value" --wrap "$AES&pin-value=0000"
create_refused "module that is not a PKCS#11 module (create)" "/etc/hostname is not a PKCS#11 module" \
  --wrap "$AES" --pin-file "$PIN" --pkcs11-module /etc/hostname
create_refused "unknown URI attribute" "attribute p11-kit does not know" \
  --wrap "pkcs11:token=cv-test;objekt=aes-kek?module-path=$P11_MODULE" --pin-file "$PIN"

# --- the KEKs never became extractable ----------------------------------------
for k in aes-kek rsa-kek; do
  keytool show "$k" | grep -v '^public' > attrs
  [ -s attrs ] || fail "$k: not found"
  if grep -v "sensitive=1 extractable=0 never_extractable=1" attrs; then
    fail "$k is extractable or was"
  fi
done
pass "after all operations aes-kek and rsa-kek are sensitive, CKA_EXTRACTABLE false, CKA_NEVER_EXTRACTABLE true"

if grep -qF -- "$SECRET" "$allerr"; then fail "the PIN appears in a message"; fi
pass "no message contains the PIN"
