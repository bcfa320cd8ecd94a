#!/bin/bash
# keymgr waits for the volume's locks (--wait SECONDS, default 5) instead of
# failing at once: twenty concurrent add-wrap all succeed; --wait 0 still
# fails at once (exit 5) on a held lock, and a wait that runs out says so.
source "$(dirname "$0")/functions.sh"
requires python3
HOLD=$CV_SRCDIR/tests/integration/lockhold.py

new_volume vol 8M
N=20
for i in $(seq 1 $N); do "$KEYMGR" genkey "k$i" >/dev/null; done

# Twenty add-wrap at once, each with its own key file.
pids=()
for i in $(seq 1 $N); do
  "$KEYMGR" add-wrap vol --keyfile vol.kek --wrap "file:k$i" --wait 60 >"add$i.out" 2>"add$i.err" &
  pids+=($!)
done
failed=0
for i in $(seq 1 $N); do
  wait "${pids[$((i - 1))]}" || { failed=$((failed + 1)); echo "add-wrap k$i: exit $?" >&2; cat "add$i.err" >&2; }
done
[ "$failed" -eq 0 ] || fail "$failed of $N concurrent add-wrap --wait 60 failed"
count=$("$KEYMGR" list-wraps vol --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$count" -eq $((N + 1)) ] || fail "the volume has $count wraps after $N concurrent add-wrap, want $((N + 1))"
# Every key file unlocks the volume, each through a wrap of its own.
ids=()
for k in vol.kek $(seq -f 'k%g' 1 $N); do
  out=$("$KEYMGR" verify vol --keyfile "$k") || fail "key file $k does not unlock the volume"
  ids+=("$(sed -n 's/.*: wrap \([0-9]*\) unlocks the volume.*/\1/p' <<<"$out")")
done
[ "$(printf '%s\n' "${ids[@]}" | sort -u | grep -c .)" -eq $((N + 1)) ] ||
  fail "the $((N + 1)) key files did not unlock through $((N + 1)) distinct wraps: ${ids[*]}"
pass "$N concurrent add-wrap --wait 60: all succeeded, $count wraps, each key file unlocks its own"

# hold WHICH MODE: hold a lock byte of vol in the background until release.
holder=
hold () {
  rm -f held
  python3 "$HOLD" vol "$1" "$2" held &
  holder=$!
  for _ in $(seq 1 200); do [ -e held ] && return 0; kill -0 "$holder" 2>/dev/null || break; sleep 0.05; done
  fail "the lock holder did not take the $1 lock"
}
release () {
  kill "$holder"
  wait "$holder" 2>/dev/null || true
  holder=
}
cleanup_hooks+=('[ -z "$holder" ] || kill "$holder"')


"$KEYMGR" genkey late.kek >/dev/null
hold header exclusive
ms "$KEYMGR" add-wrap vol --keyfile vol.kek --wrap file:late.kek --wait 0
[ "$rc" -eq 5 ] || { cat "$tmp/err"; fail "add-wrap --wait 0 on a held header lock: exit $rc, want 5"; }
[ "$ms" -lt 1000 ] || fail "add-wrap --wait 0 took $ms ms on a held lock (must fail at once)"
grep -q 'is changing the header; --wait 0 was given: not waiting; try again' "$tmp/err" ||
  { cat "$tmp/err"; fail "add-wrap --wait 0: no message saying who holds the lock"; }
pass "add-wrap --wait 0 on a held header lock: exit 5 in $ms ms"

ms "$KEYMGR" add-wrap vol --keyfile vol.kek --wrap file:late.kek --wait 1
[ "$rc" -eq 5 ] && [ "$ms" -ge 1000 ] && grep -q 'still locked after waiting 1 s; wait longer with --wait SECONDS' "$tmp/err" ||
  { cat "$tmp/err"; fail "add-wrap --wait 1 on a held lock: exit $rc after $ms ms"; }
pass "add-wrap --wait 1: gave up after $ms ms (exit 5): $(grep -o 'still locked.*SECONDS' "$tmp/err")"

# A waiter gets the lock once it is released (the default wait is 5 s).
"$KEYMGR" add-wrap vol --keyfile vol.kek --wrap file:late.kek >late.out 2>late.err &
waiter=$!
cleanup_hooks+=('kill "$waiter" 2>/dev/null')
# Once it has the volume open it tries the lock; 300 ms later it must still
# be waiting (without waiting it would have exited 5 at once).
for _ in $(seq 1 200); do
  ls -l "/proc/$waiter/fd" 2>/dev/null | grep -q "$tmp/vol\$" && break
  kill -0 "$waiter" 2>/dev/null || break
  sleep 0.02
done
sleep 0.3
kill -0 "$waiter" 2>/dev/null || { cat late.err; fail "add-wrap did not wait for the held lock"; }
release
wait "$waiter" || { cat late.err; fail "add-wrap waiting for a released lock failed"; }
"$KEYMGR" verify vol --keyfile late.kek >/dev/null || fail "the wrap added after the wait does not unlock"
pass "add-wrap waits for a held header lock and succeeds once it is released"

# The offline operations wait for the in-use lock (held shared, as a server
# or a keymgr change holds it), and --wait 0 fails at once.
hold in-use shared
"$KEYMGR" backup-header vol vol.bak >/dev/null
for cmd in "shred vol --yes" "restore-header vol vol.bak --keyfile vol.kek" "rotate-dek vol --keyfile vol.kek"; do
  # shellcheck disable=SC2086
  ms "$KEYMGR" $cmd --wait 0
  [ "$rc" -eq 5 ] && [ "$ms" -lt 1000 ] && grep -q 'in use' "$tmp/err" ||
    { cat "$tmp/err"; fail "$cmd --wait 0 with the in-use lock held: exit $rc after $ms ms"; }
done
pass "shred, restore-header, rotate-dek --wait 0 with the in-use lock held: exit 5 at once"
ms "$KEYMGR" shred vol --yes --wait 1
[ "$rc" -eq 5 ] && [ "$ms" -ge 1000 ] && grep -q 'still locked after waiting 1 s' "$tmp/err" ||
  { cat "$tmp/err"; fail "shred --wait 1: exit $rc after $ms ms"; }
release
"$KEYMGR" verify vol --keyfile vol.kek >/dev/null || fail "a refused shred touched the volume"
pass "shred --wait 1 gave up after $ms ms and left the volume intact"

# An offline change holds the in-use lock exclusive: wrap changes wait, then
# say so.
hold in-use exclusive
ms "$KEYMGR" remove-wrap vol --id 1 --keyfile vol.kek --wait 0
[ "$rc" -eq 5 ] && [ "$ms" -lt 1000 ] && grep -q 'being changed offline by another cryptvol-keymgr' "$tmp/err" ||
  { cat "$tmp/err"; fail "remove-wrap --wait 0 during an offline change: exit $rc after $ms ms"; }
release
pass "remove-wrap --wait 0 during an offline change: exit 5 at once, $(grep -o 'being changed offline[^;]*' "$tmp/err")"

expect_fail "--wait with a bad value" "error: --wait: 'soon' is not a number" "$KEYMGR" add-wrap vol --wrap file:k1 --wait soon
