#!/bin/bash
# A reader of the header (keymgr info) that runs while keymgr commits a
# header change must not warn that "a header update was interrupted": the
# commit is not interrupted, it is in progress (finding 4 of issue 15: 10 of
# 90 concurrent reads warned). 100 info runs during a loop of commits.
# Passes once readers take the commit lock (a shared OFD lock that
# cv_hdr_commit holds exclusive while it writes the copies); fails before.
source "$(dirname "$0")/functions.sh"

new_volume vol 8M
"$KEYMGR" genkey k2.kek >/dev/null
seq0=$("$KEYMGR" info vol --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["seqid"])')

# Commits in a loop until told to stop: add a wrap, remove it (4 commits).
(
  while [ ! -e stop ]; do
    "$KEYMGR" add-wrap vol --keyfile vol.kek --wrap file:k2.kek --wait 30 >/dev/null 2>>committer.err || exit 1
    "$KEYMGR" remove-wrap vol --keyfile vol.kek --id "$("$KEYMGR" list-wraps vol --json |
      python3 -c 'import json,sys; print(max(w["id"] for w in json.load(sys.stdin)))')" --wait 30 >/dev/null 2>>committer.err || exit 1
  done
) &
committer=$!
cleanup_hooks+=('touch "$tmp/stop"; wait "$committer" 2>/dev/null')

warned=0
for i in $(seq 1 100); do
  "$KEYMGR" info vol >"info$i.out" 2>"info$i.err" || { cat "info$i.err"; fail "info run $i failed during commits"; }
  grep -q "interrupted" "info$i.err" && warned=$((warned + 1))
done
touch stop
wait "$committer" || { cat committer.err; fail "the committing loop failed"; }
seq1=$("$KEYMGR" info vol --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["seqid"])')
[ $((seq1 - seq0)) -ge 20 ] || fail "only $((seq1 - seq0)) commits ran during the 100 info runs: the test proves nothing"
if [ "$warned" -ne 0 ]; then
  grep -h "interrupted" info*.err | head -n 2 >&2
  fail "$warned of 100 info runs during $((seq1 - seq0)) commits warned that a header update was interrupted"
fi
pass "100 info runs during $((seq1 - seq0)) commits: no 'interrupted' warning"
