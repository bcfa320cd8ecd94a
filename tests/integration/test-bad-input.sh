#!/bin/bash
# Bad input, each with a clear message and nothing served or written: nbdkit
# must exit before it listens (the --run command never starts), naming the
# volume and the reason.
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdsh
TAMPER=$CV_BUILD/tools/cv-tamper

# refuses WHAT PATTERN PLUGIN-PARAMS...: nbdkit must not start serving.
refuses () {
  local what=$1 pattern=$2; shift 2
  rm -f ran
  expect_fail "$what" "$pattern" nbdkit -U - "$PLUGIN" "$@" --run 'touch ran'
  [ ! -e ran ] || fail "$what: nbdkit served the volume"
}

new_volume vol 16M
"$KEYMGR" genkey other.kek >/dev/null
printf 'correct horse battery staple' > pass
printf 'wrong passphrase' > wrongpass
"$KEYMGR" create pvol --size 8M --wrap passphrase --passphrase-file pass "${FAST_KDF[@]}" >/dev/null
head -c 16M /dev/urandom > random.img
sum_before=$(sha256sum vol | cut -d' ' -f1)

refuses "wrong key file" "vol.*(not this wrap's key|wrong key)" vol keyfile=other.kek
refuses "key file of the wrong size" "32" vol keyfile=pass
refuses "missing key file" "other-missing.kek.*(No such file|cannot)" vol keyfile=other-missing.kek
refuses "wrong passphrase" "pvol.*wrong passphrase" pvol passphrase=+wrongpass
refuses "unknown XTS implementation" "xts-engine=nettle: expected auto, openssl or gcrypt" vol keyfile=vol.kek xts-engine=nettle
refuses "passphrase on the command line" "must not be given on the command line" pvol passphrase=secret
refuses "no key at all" "cannot unlock volume [^ ]*vol: .*no key file given" vol
refuses "not a cryptvol volume" "random.img is not a cryptvol volume" random.img keyfile=vol.kek
refuses "backing file missing" "cannot open volume [^ ]*nothere.img: No such file" nothere.img keyfile=vol.kek
refuses "unknown parameter" "unknown parameter 'colour'" vol keyfile=vol.kek colour=blue
[ "$(sha256sum vol | cut -d' ' -f1)" = "$sum_before" ] || fail "a refused open changed the volume"
pass "refused opens left the volume byte-for-byte unchanged"

# A data file shorter than the header says.
cp vol short && truncate -s 20M short
refuses "data file shorter than the header says" "short is .* shorter than its header says" short keyfile=vol.kek

# Header damage: one copy is recovered from the other; both is refused.
cp vol onebad && "$TAMPER" onebad corrupt-copy 0
serve onebad keyfile=vol.kek -- nbdinfo --size '$uri' >size 2>err
grep -q "primary.*corrupt" err || { cat err; fail "no warning about the corrupt primary copy"; }
[ "$(cat size)" = 16777216 ] || fail "volume with one corrupt copy did not open"
pass "corrupt primary header copy: opened from the secondary, with a warning"
cp vol twobad && "$TAMPER" twobad corrupt-copy 0 && "$TAMPER" twobad corrupt-copy 1
refuses "both header copies corrupt" "both header copies .*(corrupt|invalid)" twobad keyfile=vol.kek

# An attacker edits the metadata and fixes the checksums: the MAC catches it.
cp vol tampered && "$TAMPER" tampered set-size 8388608
refuses "header altered (MAC)" "MAC does not match.*tampered" tampered keyfile=vol.kek

# A wrap copied from another volume (same key file!) does not open this one.
new_volume vol2 16M
cp vol2.kek vol2-copy.kek
cp vol2 stolen && "$TAMPER" stolen set-wraps vol
refuses "wrap copied from another volume" "stolen.*copied from another volume|copied from another volume" stolen keyfile=vol.kek

# I/O beyond the end is an error the client sees, not a crash.
cat > beyond.py <<'EOS'
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
try:
    h.pread(4096, h.get_size() - 100)
    sys.exit("read beyond the end succeeded")
except nbd.Error as e:
    print("beyond end:", e)
h.pread(100, h.get_size() - 100)   # the server is still there
EOS
serve vol keyfile=vol.kek -- python3 beyond.py '$uri'
pass "read beyond the end fails cleanly"

# keymgr refuses bad sizes before writing anything.
expect_fail "size not a multiple of the sector size" "not a multiple of the sector size" \
  "$KEYMGR" create odd --size 1000000 --wrap file:vol.kek
[ ! -e odd ] || fail "a refused create left a file behind"
expect_fail "create over an existing volume without --yes" "not blank.*--yes" \
  "$KEYMGR" create vol --wrap file:vol.kek
[ "$(sha256sum vol | cut -d' ' -f1)" = "$sum_before" ] || fail "refused create changed the volume"
pass "refused create left the volume unchanged"
