#!/bin/bash
# cryptvol-keymgr as a user drives it: create in its forms, info (human and
# JSON), verify, and the documented exit codes. No secret is ever printed.
source "$(dirname "$0")/functions.sh"
requires nbdkit python3

"$KEYMGR" genkey a.kek >/dev/null
expect_fail "genkey never overwrites" "exists|File exists" "$KEYMGR" genkey a.kek
[ "$(stat -c %a a.kek)" = 400 ] || fail "key file mode is not 0400"
pass "genkey writes a 0400 key file"

printf 'recovery words for the test\n' > pass
"$KEYMGR" create v.img --size 32M --wrap file:a.kek --wrap passphrase \
  --passphrase-fd 3 "${FAST_KDF[@]}" 3<pass > create.out
"$KEYMGR" info v.img --json > info.json
python3 - <<'EOS'
import json
j = json.load(open("info.json"))
v = j["volume"]
assert v["cipher"] == "aes-xts-plain64" and v["sector_size"] == 4096, v
assert v["size"] == 32 << 20 and v["data_offset"] == 16 << 20, v
assert [w["type"] for w in j["wraps"]] == ["file", "passphrase"], j["wraps"]
assert j["header_copies_valid"] == [True, True]
assert j["wraps"][1]["kdf"]["type"] == "argon2id"
EOS
pass "info --json describes the volume and both wraps"
"$KEYMGR" info v.img | grep -q "primary valid, secondary valid" || fail "info (human) header state"

# verify: each wrap alone; exit codes 0, 2 (no key unlocks), 3 (not a volume).
"$KEYMGR" verify v.img --keyfile a.kek | grep -q "wrap 0 unlocks" || fail "verify with key file"
"$KEYMGR" verify v.img --passphrase-file pass | grep -q "wrap 1 unlocks" || fail "verify with passphrase"
"$KEYMGR" verify v.img --passphrase-file pass --json | python3 -c '
import json, sys; j = json.load(sys.stdin); assert j["mac_ok"] and j["unlocked_by_wrap"] == 1'
pass "verify unlocks with either wrap alone"
"$KEYMGR" genkey b.kek >/dev/null
set +e
"$KEYMGR" verify v.img --keyfile b.kek 2>err; rc=$?
set -e
[ $rc = 2 ] || fail "wrong key: exit $rc, expected 2"
head -c 1M /dev/urandom > junk
set +e
"$KEYMGR" info junk 2>err; rc=$?
set -e
[ $rc = 3 ] || fail "not a volume: exit $rc, expected 3"
pass "exit codes: 2 for a key that does not unlock, 3 for not a volume"

# No secret in any output: not the passphrase, not the key file's bytes.
key_hex=$(od -An -tx1 a.kek | tr -d ' \n')
for f in create.out info.json err; do
  ! grep -q "recovery words" "$f" || fail "passphrase printed in $f"
  ! grep -q "$key_hex" "$f" || fail "key printed in $f"
done
pass "no secret printed"

# Detached header: the data file is its seal sector (4096 bytes) and then
# pure ciphertext, and the plugin needs header= to open it.
"$KEYMGR" create data.img --size 8M --detached-header data.hdr --wrap file:a.kek >/dev/null
[ "$(stat -c %s data.img)" = $((8388608 + 4096)) ] || fail "detached: data file size"
"$KEYMGR" info data.img --header data.hdr --json | python3 -c '
import json, sys; v = json.load(sys.stdin)["volume"]
assert v["data_offset"] == 4096 and v["seal"]["offset"] == 0, v'
serve data.img header=data.hdr keyfile=a.kek -- nbdsh -u '$uri' -c 'h.pwrite(b"x" * 4096, 0)'
expect_fail "detached volume without header=" "not a cryptvol volume.*header" \
  nbdkit -U - "$PLUGIN" data.img keyfile=a.kek --run true
pass "detached header volume serves with header= and says what is missing without it"

# Formatting an existing blank file keeps its size; --yes is needed when it
# is not blank; a passphrase is never read from the command line.
truncate -s 40M blank.img
"$KEYMGR" create blank.img --wrap file:a.kek >/dev/null
[ "$(nbdkit -U - "$PLUGIN" blank.img keyfile=a.kek --run 'nbdinfo --size $uri')" = $((24 << 20)) ] ||
  fail "formatted file does not offer its size less the data offset"
pass "formatting an existing file uses its size"
expect_fail "unknown wrap type" "file:PATH|passphrase" "$KEYMGR" create z.img --size 8M --wrap frob:x
expect_fail "import key of the wrong size" "64-byte" "$KEYMGR" create z.img --size 8M --import-key a.kek --wrap file:a.kek
[ ! -e z.img ] || fail "a refused create left z.img behind"
pass "refused creates leave nothing behind"

# rotate-dek: options that go only with --control, and the refusals that
# change nothing.
before=$(sha256sum < v.img)
expect_fail "rotate-dek --pause offline" "error: --pause needs --control PATH" \
  "$KEYMGR" rotate-dek v.img --pause
expect_fail "rotate-dek --detach offline" "error: --detach needs --control PATH" \
  "$KEYMGR" rotate-dek v.img --detach --keyfile a.kek
expect_fail "rotate-dek --rate offline" "error: --rate needs --control PATH" \
  "$KEYMGR" rotate-dek v.img --rate 50 --keyfile a.kek
expect_fail "rotate-dek --rate negative" "error: --rate: '-1' is not MiB/s" \
  "$KEYMGR" rotate-dek v.img --control ctl --rate -1
expect_fail "rotate-dek --pause --resume" "error: --pause and --resume: give one" \
  "$KEYMGR" rotate-dek v.img --control ctl --pause --resume
expect_fail "rotate-dek --pause with a drop" "error: --pause only changes the server's rotation" \
  "$KEYMGR" rotate-dek v.img --control ctl --pause --drop-wrap 1
expect_fail "rotate-dek --drop-wrap not an id" "error: --drop-wrap: 'one' is not a wrap id" \
  "$KEYMGR" rotate-dek v.img --drop-wrap one --keyfile a.kek
expect_fail "rotate-dek --drop-wrap of no wrap" "error: --drop-wrap 9: v.img has no such wrap" \
  "$KEYMGR" rotate-dek v.img --drop-wrap 9 --keyfile a.kek
expect_fail "rotate-dek without a wrap's passphrase" \
  "cannot re-make wrap 1 \(passphrase\) for the new DEK: no passphrase given.*--passphrase-file FILE.*--drop-wrap 1" \
  "$KEYMGR" rotate-dek v.img --keyfile a.kek </dev/null
expect_fail "rotate-dek --control with no server" "no cryptvol server listens on $PWD/none.sock" \
  "$KEYMGR" rotate-dek v.img --control "$PWD/none.sock" --keyfile a.kek
[ "$(sha256sum < v.img)" = "$before" ] || fail "a refused rotate-dek changed the volume"
"$KEYMGR" rotate-dek --help | grep -q -- "--control PATH" || fail "rotate-dek --help does not show --control"
pass "refused rotate-deks leave the volume as it was"
expect_fail "plugin rotate=" "rotate=sometimes: expected auto or manual" \
  nbdkit -U - "$PLUGIN" v.img keyfile=a.kek rotate=sometimes --run true
expect_fail "plugin rotate-rate=" "rotate-rate=-5: expected MiB/s" \
  nbdkit -U - "$PLUGIN" v.img keyfile=a.kek rotate-rate=-5 --run true
