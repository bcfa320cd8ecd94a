#!/bin/bash
# The key lifecycle as an operator runs it: add, list, move (rewrap) and
# remove wraps, some while the volume is served; rotate the DEK; back up and
# restore the header; shred. Every refusal of the issue is checked with its
# message, and the data reads back throughout. The audit log records every
# command and no key material.
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdcopy python3

for k in a b c; do "$KEYMGR" genkey $k.kek >/dev/null; done
printf 'first recovery passphrase' > p1
printf 'second recovery passphrase' > p2
AUDIT=(--audit-log audit.jsonl)
"$KEYMGR" create vol --size 16M --wrap file:a.kek "${AUDIT[@]}" >/dev/null
head -c 16M /dev/urandom > data
serve vol keyfile=a.kek -- nbdcopy data '$uri'
sum=$(sha256sum < data)
readsum () { serve vol "$@" -- nbdcopy '$uri' - | sha256sum; }

# add-wrap: a passphrase (with the key file to unlock), then list.
"$KEYMGR" add-wrap vol --wrap passphrase --keyfile a.kek --new-passphrase-file p1 \
  "${FAST_KDF[@]}" "${AUDIT[@]}" | grep -q "added wrap 1 (passphrase), verified" ||
  fail "add-wrap passphrase"
"$KEYMGR" list-wraps vol --json | python3 -c '
import json, sys; w = json.load(sys.stdin)
assert [(x["id"], x["type"]) for x in w] == [(0, "file"), (1, "passphrase")], w
assert all("verified" in x for x in w), w'
[ "$(readsum passphrase=+p1)" = "$sum" ] || fail "passphrase wrap does not open the data"
pass "add-wrap: the new passphrase wrap is verified and opens the volume"
expect_fail "add-wrap of a key already wrapped" "already uses that key" \
  "$KEYMGR" add-wrap vol --wrap file:a.kek --keyfile a.kek

# rewrap while the volume is served: the server keeps serving, and after a
# restart only the new key opens it.
cat > online.sh <<EOS
set -e
"$KEYMGR" rewrap vol --id 0 --to file:b.kek --keyfile a.kek ${AUDIT[*]}
"$KEYMGR" add-wrap vol --wrap file:c.kek --keyfile b.kek ${AUDIT[*]}
nbdcopy "\$uri" - | sha256sum > online.sum
EOS
serve vol keyfile=a.kek -- 'uri=$uri' bash online.sh > online.out
grep -q "wrap 0 moved to file:/.*/b.kek as wrap 2" online.out || { cat online.out; fail "rewrap output"; }
[ "$(cat online.sum)" = "$sum" ] || fail "data changed while re-wrapping online"
[ "$(readsum keyfile=b.kek)" = "$sum" ] || fail "new key does not open after rewrap"
expect_fail "the old key after rewrap" "cannot unlock volume [^ ]*vol" \
  nbdkit -U - "$PLUGIN" vol keyfile=a.kek --run true
pass "rewrap and add-wrap while served; after restart the new key opens, the old one not"
expect_fail "rewrap to the same key" "already uses .*same key" \
  "$KEYMGR" rewrap vol --id 2 --to file:b.kek --keyfile b.kek
"$KEYMGR" rewrap vol --id 1 --to passphrase --passphrase-file p1 --new-passphrase-file p2 \
  "${AUDIT[@]}" >/dev/null
[ "$(readsum passphrase=+p2)" = "$sum" ] || fail "changed passphrase does not open"
pass "rewrap changes a passphrase"

# A wrap that no longer unlocks when adding another: say what each wrap did.
expect_fail "adding a wrap with a key that no longer unlocks" \
  "no wrap could be unlocked: .*wrap 2 \(file /.*/b.kek\): wrong key file" \
  "$KEYMGR" add-wrap vol --wrap file:a.kek --keyfile a.kek

# remove-wrap needs proof that another wrap still opens the volume.
expect_fail "remove-wrap proven only by the wrap removed" "needs proof that another wrap" \
  "$KEYMGR" remove-wrap vol --id 3 --keyfile c.kek
"$KEYMGR" remove-wrap vol --id 3 --keyfile b.kek "${AUDIT[@]}" | grep -q "removed wrap 3" ||
  fail "remove-wrap"
pass "remove-wrap refuses without proof, works with another wrap's key"

# rotate-dek is offline: refused while served, with nothing changed.
before=$(sha256sum < vol)
cat > rot.sh <<EOS
"$KEYMGR" rotate-dek vol --keyfile b.kek --passphrase-file p2 2>&1; echo "exit \$?"
EOS
serve vol keyfile=b.kek -- bash rot.sh > rot.out
grep -q "in use (being served" rot.out && grep -q "exit 5" rot.out ||
  { cat rot.out; fail "rotate-dek while served was not refused with exit 5"; }
[ "$(sha256sum < vol)" = "$before" ] || fail "refused rotate-dek changed the volume"
pass "rotate-dek while served: refused (exit 5), nothing changed"

# rotate-dek needs every wrap's key: one it cannot re-make is named, with the
# reason and what to do, without --debug; nothing is changed.
expect_fail "rotate-dek with another wrap's passphrase" \
  "cannot re-make wrap 4 \(passphrase\) for the new DEK: wrong passphrase.*remove-wrap --id 4" \
  "$KEYMGR" rotate-dek vol --keyfile b.kek --passphrase-file p1
[ "$(sha256sum < vol)" = "$before" ] || fail "refused rotate-dek changed the volume"

# Backup, rotate, and the stale backup is refused.
"$KEYMGR" backup-header vol old.hdr "${AUDIT[@]}" >/dev/null
"$KEYMGR" rotate-dek vol --keyfile b.kek --passphrase-file p2 --json "${AUDIT[@]}" > rot.json
python3 -c '
import json
lines = [json.loads(l) for l in open("rot.json")]
assert lines[-1]["rotated"] and lines[-1]["bytes"] == 16 << 20, lines[-1]
assert any("done" in l for l in lines), "no progress lines"'
[ "$(readsum keyfile=b.kek)" = "$sum" ] || fail "data differs after rotate-dek"
[ "$(readsum passphrase=+p2)" = "$sum" ] || fail "passphrase wrap lost in rotate-dek"
pass "rotate-dek re-encrypted 16 MiB; both wraps open the rotated volume"
set +e
"$KEYMGR" restore-header vol old.hdr --keyfile b.kek 2>err; rc=$?
set -e
[ $rc = 3 ] && grep -q "no longer uses (it was replaced by rotate-dek)" err ||
  { cat err; fail "stale backup not refused (exit $rc)"; }
pass "restore of a backup from before rotate-dek: refused, its DEK is gone"

# A current backup restores a volume whose two header copies are destroyed.
"$KEYMGR" backup-header vol new.hdr >/dev/null
"$CV_BUILD/tools/cv-tamper" vol corrupt-copy 0
"$CV_BUILD/tools/cv-tamper" vol corrupt-copy 1 2>/dev/null
expect_fail "volume with both copies corrupt" "both header copies" \
  nbdkit -U - "$PLUGIN" vol keyfile=b.kek --run true
"$KEYMGR" restore-header vol new.hdr --keyfile b.kek "${AUDIT[@]}" >/dev/null 2>&1
[ "$(readsum keyfile=b.kek)" = "$sum" ] || fail "data after restore"
pass "restore-header brings back a volume whose header was destroyed"

# --json on the commands that change wraps and headers.
"$KEYMGR" add-wrap vol --wrap file:c.kek --keyfile b.kek --json > j1
"$KEYMGR" rewrap vol --id 5 --to file:a.kek --keyfile c.kek --json > j2
"$KEYMGR" remove-wrap vol --id 6 --keyfile b.kek --json > j3
"$KEYMGR" backup-header vol j.hdr --json > j4
python3 - <<'EOS'
import json
j1, j2, j3, j4 = (json.load(open(f)) for f in ("j1", "j2", "j3", "j4"))
assert j1["id"] == 5 and j1["type"] == "file", j1
assert j2["removed"] == 5 and j2["added"] == 6 and not j2["server_side"], j2
assert j3["removed"] == 6 and j3["still_unlocked_by"] == 2, j3
assert j4["backup"] == "j.hdr" and j4["wraps"] == 2, j4
EOS
pass "add-wrap, rewrap, remove-wrap and backup-header --json"

# A backup of another volume is refused.
"$KEYMGR" create other --size 8M --wrap file:b.kek >/dev/null
"$KEYMGR" backup-header other other.hdr >/dev/null
expect_fail "restore of another volume's header" "is a header of volume .*not of" \
  "$KEYMGR" restore-header vol other.hdr --keyfile b.kek

# shred: refused without confirmation; then the volume is gone for good.
before=$(sha256sum < vol)
expect_fail "shred without confirmation" "not confirmed" "$KEYMGR" shred vol < /dev/null
[ "$(sha256sum < vol)" = "$before" ] || fail "unconfirmed shred changed the volume"
"$KEYMGR" shred vol --yes --json "${AUDIT[@]}" > shred.json
python3 - <<'EOS' || fail "shred does not say what is left to do"
import json
j = json.load(open("shred.json"))
assert j["crypto_erased"] == "vol" and j["wraps_destroyed"] == 2, j
left = " ".join(j["left_to_do"])
assert "/b.kek still exists" in left and "header backups" in left, left
EOS
expect_fail "opening a shredded volume" "not a cryptvol volume" \
  nbdkit -U - "$PLUGIN" vol keyfile=b.kek --run true
pass "shred: confirmation required; afterwards no key opens the volume"

# The audit log: one JSON line per command, results, wrap ids, no secrets.
python3 - <<'EOS'
import json
recs = [json.loads(l) for l in open("audit.jsonl")]
cmds = [r["command"] for r in recs]
for c in ["create", "add-wrap", "rewrap", "remove-wrap", "backup-header",
          "rotate-dek", "restore-header", "shred"]:
    assert c in cmds, (c, cmds)
assert all(r["result"] == "ok" and r["uuid"] for r in recs if r["command"] != "create"), recs
rw = next(r for r in recs if r["command"] == "rewrap")
assert {(w["action"], w["id"]) for w in rw["wraps"]} == {("added", 2), ("removed", 0)}, rw
EOS
for k in a b c; do
  ! grep -q "$(od -An -tx1 $k.kek | tr -d ' \n')" audit.jsonl || fail "key $k in the audit log"
done
! grep -q "recovery passphrase" audit.jsonl || fail "passphrase in the audit log"
pass "audit log: every command recorded, no key material"
