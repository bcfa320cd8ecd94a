#!/bin/bash
# Wrap metadata is authenticated (doc/format.md, "Wrap binding"): every edit
# of a wrap's members, of its id, an inserted wrap or a lowered next_wrap_id
# is refused as tampering once any wrap's key unlocks the volume. One header
# copy tampered with while the other is intact opens from the intact copy
# with a warning, and the next commit repairs it. Volumes made before the
# seal keep opening and `upgrade` protects them, or says there is no room.
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdsh python3

TAMPER=$CV_BUILD/tools/cv-tamper
"$KEYMGR" genkey a.kek >/dev/null
"$KEYMGR" genkey b.kek >/dev/null
printf 'binding test passphrase' > pw
"$KEYMGR" create base --size 8M --wrap file:a.kek --wrap file:b.kek >/dev/null
"$KEYMGR" add-wrap base --wrap passphrase --new-passphrase-file pw --keyfile a.kek \
  "${FAST_KDF[@]}" >/dev/null
# A wrap added and removed: next_wrap_id (4) is above the largest id + 1.
"$KEYMGR" genkey c.kek >/dev/null
"$KEYMGR" add-wrap base --wrap file:c.kek --keyfile a.kek >/dev/null
"$KEYMGR" remove-wrap base --id 3 --keyfile a.kek >/dev/null
"$KEYMGR" verify base --keyfile b.kek >/dev/null || fail "the fresh volume does not verify"

# edited WHAT PATH VALUE: PATH set to VALUE in both copies (valid checksums)
# is refused as tampering by verify and by nbdkit, unlocking with b.kek
# (wrap 1), whichever wrap was edited.
edited () {
  local what=$1 path=$2 value=$3
  cp base v
  "$TAMPER" v set-json both "$path" "$value"
  expect_fail "$what: verify" "tampered" "$KEYMGR" verify v --keyfile b.kek
  [ "$(cat "$tmp/err" | grep -c 'wrap\|next_wrap_id')" -ge 1 ] || fail "$what: the message names nothing"
  expect_fail "$what: nbdkit" "tampered" nbdkit -U - "$PLUGIN" v keyfile=b.kek --run true
}
edited "a key file wrap's reference" wraps.0.ref '"/etc/cryptvol/other.kek"'
edited "a wrap's creation time" wraps.0.created '"2020-01-01T00:00:00Z"'
edited "a wrap's verified time" wraps.0.verified '"2020-01-01T00:00:00Z"'
edited "a wrap's key id" wraps.0.kek_id '"0011223344556677"'
edited "a wrap's id" wraps.2.id 9
edited "a member added to a wrap" wraps.0.note '"hello"'
edited "the passphrase KDF memory" wraps.2.kdf.m 4096
edited "the passphrase KDF passes" wraps.2.kdf.t 2
edited "next_wrap_id lowered (a removed id would be reused)" next_wrap_id 3
cp base v
"$TAMPER" v set-json both wraps.3 "$("$KEYMGR" list-wraps base --json | python3 -c '
import json, sys; w = json.load(sys.stdin)[0]; w["id"] = 7; print(json.dumps(w))')"
expect_fail "a wrap inserted (a copy of wrap 0 as id 7)" "wrap 7 was not sealed.*tampered" \
  "$KEYMGR" verify v --keyfile b.kek
pass "every wrap metadata edit is refused as tampering"

# One copy tampered with, the other intact: opened from the intact copy.
for copy in 0 1; do
  name=$([ $copy = 0 ] && echo primary || echo secondary)
  other=$([ $copy = 0 ] && echo secondary || echo primary)
  for edit in "volume.size 4096" "wraps.0.ref \"/x\""; do
    cp base v
    # shellcheck disable=SC2086
    "$TAMPER" v set-json $copy $edit
    "$KEYMGR" verify v --keyfile a.kek >out 2>err || { cat err; fail "$name copy edited ($edit): refused"; }
    grep -q "$name header copy of v .*altered\|$name header copy of v .*authenticat" err ||
      { cat err; fail "$name copy edited ($edit): no warning"; }
    nbdkit -U - "$PLUGIN" v keyfile=a.kek --run 'nbdinfo --size "$uri"' >size 2>err ||
      { cat err; fail "$name copy edited ($edit): nbdkit refused"; }
    [ "$(cat size)" = $((8 << 20)) ] || fail "$name copy edited ($edit): served the edited size"
    # The next commit rewrites both copies from the intact one.
    "$KEYMGR" remove-wrap v --id 1 --keyfile a.kek >/dev/null 2>err || { cat err; fail "commit after $name edit"; }
    "$KEYMGR" verify v --keyfile a.kek >/dev/null 2>err || { cat err; fail "after repair"; }
    [ ! -s err ] || { cat err; fail "$name copy edited ($edit): still warned after a commit"; }
  done
  pass "the $name copy tampered with (MAC-covered field, wrap): opens from the $other with a warning; the next commit repairs it"
done

# --- Volumes made before the seal ----------------------------------------
# A legacy header: made with a known DEK, the seal and binding taken out and
# the MAC computed again with that DEK (doc/format.md, "MAC").
head -c 64 /dev/urandom > dek.bin
legacy () { # NAME HEADER [create options]
  local name=$1 hdr=$2; shift 2
  "$KEYMGR" create "$name" --size 8M --import-key dek.bin --wrap file:a.kek "$@" >/dev/null
  "$TAMPER" "$hdr" set-json both volume.seal -
  "$TAMPER" "$hdr" set-json both volume.wrap_binding -
  "$TAMPER" "$hdr" set-json both volume.requirements '[]'
  remac "$hdr" dek.bin
}
legacy old old
dd if=/dev/zero of=old bs=4096 seek=$(((16 << 20) / 4096 - 1)) count=1 conv=notrunc status=none
"$KEYMGR" verify old --keyfile a.kek >out || fail "a legacy volume no longer opens"
grep -q "no seal sector and wraps not bound" out || { cat out; fail "verify does not say the legacy volume is unprotected"; }
"$KEYMGR" backup-header old old.bak >/dev/null
"$KEYMGR" upgrade old --keyfile a.kek >out || fail "upgrade"
grep -q "seal sector at 16773120" out || { cat out; fail "upgrade output"; }
"$KEYMGR" verify old --keyfile a.kek | grep -q "the header is current" || fail "verify after upgrade"
"$KEYMGR" upgrade old --keyfile a.kek | grep -q "already up to date" || fail "second upgrade"
expect_fail "the pre-upgrade header given with header=" "before cryptvol-keymgr upgrade" \
  nbdkit -U - "$PLUGIN" old header=old.bak keyfile=a.kek --run true
pass "a legacy attached volume opens, upgrade protects it, its old header is refused"

legacy oldd oldd.hdr --detached-header oldd.hdr --data-offset 0
"$KEYMGR" upgrade oldd --header oldd.hdr --keyfile a.kek >out || fail "upgrade of a detached volume with no room"
grep -q "No room for a seal sector (data offset 0)" out || { cat out; fail "upgrade does not say there is no room"; }
"$KEYMGR" info oldd --header oldd.hdr --json | python3 -c '
import json, sys; v = json.load(sys.stdin)["volume"]
assert v["requirements"] == ["wrap-binding"] and "seal" not in v, v'
"$KEYMGR" verify oldd --header oldd.hdr --keyfile a.kek >/dev/null || fail "verify after a binding-only upgrade"
pass "upgrade without room binds the wraps and says plainly that there is no seal"

# --- The seal sector and its metadata, malformed or lost -------------------
# Malformed seal and binding members are refused by the reader (both copies
# corrupt); the key is not even needed to tell.
for edit in "volume.seal.offset 100" "volume.seal.extra 1" \
  "volume.wrap_binding.wraps.x \"00\"" "volume.wrap_binding.extra 1" \
  "volume.requirements [\"seal\",\"wrap-binding\",\"frob\"]"; do
  cp base v
  # shellcheck disable=SC2086
  "$TAMPER" v set-json both $edit
  expect_fail "malformed: $edit" "seal|wrap_binding|frob" "$KEYMGR" info v
done
cp base v
"$TAMPER" v set-json both volume.requirements '["wrap-binding"]'
expect_fail "a seal without its requirement" "volume.seal without the requirement" "$KEYMGR" info v

# A seal sector inside the header copies (authentic: the MAC made with the
# DEK) is refused rather than written over the header.
"$KEYMGR" create known --size 8M --import-key dek.bin --wrap file:a.kek >/dev/null
"$TAMPER" known set-json both volume.seal.offset 4096
remac known dek.bin
expect_fail "a seal placed inside the header copies" "inside the header copies" \
  "$KEYMGR" verify known --keyfile a.kek

# A lost seal sector: refused until the operator vouches for the header.
cp base v
dd if=/dev/zero of=v bs=4096 seek=$(((16 << 20) / 4096 - 1)) count=1 conv=notrunc status=none
expect_fail "the seal sector zeroed" "no seal sector at .*upgrade --reseal" \
  "$KEYMGR" verify v --keyfile a.kek
"$KEYMGR" upgrade v --reseal --keyfile a.kek >/dev/null || fail "upgrade --reseal"
"$KEYMGR" verify v --keyfile a.kek >/dev/null || fail "verify after --reseal"
pass "a lost seal sector is refused and written again with upgrade --reseal"

# A detached data file too short to hold its seal.
"$KEYMGR" create d --size 8M --detached-header d.hdr --wrap file:a.kek >/dev/null
: > d
expect_fail "the data file emptied" "cannot read the seal sector" \
  "$KEYMGR" verify d --header d.hdr --keyfile a.kek

# upgrade refuses a block that is not blank (an imported LUKS volume's key
# material) unless --yes, and a volume in the middle of a DEK rotation.
legacy l4 l4.hdr --detached-header l4.hdr --data-offset 4096
printf 'LUKS key material' | dd of=l4 conv=notrunc status=none
expect_fail "upgrade over a block that is not blank" "not blank.*--yes" \
  "$KEYMGR" upgrade l4 --header l4.hdr --keyfile a.kek
"$KEYMGR" upgrade l4 --header l4.hdr --keyfile a.kek --yes | grep -q "seal sector at 0" ||
  fail "upgrade --yes"
cp base v
CV_FAULT_KILL_AT=3 CV_FAULT_TRACE=1 "$KEYMGR" rotate-dek v --keyfile a.kek --passphrase-file pw >kill.out 2>&1 &&
  fail "rotate-dek was not killed"
grep -q "rotate: begun" kill.out || { cat kill.out; fail "rotate-dek not killed once begun"; }
expect_fail "upgrade during a DEK rotation" "rotation is in progress" \
  "$KEYMGR" upgrade v --keyfile a.kek

# A served volume refuses to reload a header whose wraps were edited.
cp base v
start_nbd v keyfile=a.kek
"$TAMPER" v set-json both wraps.1.ref '"/elsewhere"'
expect_fail "reload of a header with an edited wrap" "reload refused.*wrap 1 is not as" \
  "$KEYMGR" reload --control "$CTL"
stop_nbd
