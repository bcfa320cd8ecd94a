#!/bin/bash
# Crash safety of the online DEK rotation (issue 12): nbdkit is killed with
# SIGKILL (CV_FAULT_KILL_AT) at >= 200 fault points of rotations it runs
# itself while a client writes numbered 4 KiB blocks with FUA around the
# rotation's boundary (fua-writer.py --window: the pieces being rewritten).
# Each life of the server: it starts (rotate=auto continues the rotation the
# volume holds; when none is left, rotate-dek --control --detach starts the
# next one), the client writes, the server dies at the k-th fault point
# (k at random; in the last step 1, 2, 3, ... so that the end of a rotation
# is hit too). After each kill a server that does not rotate (rotate=manual)
# checks that every acknowledged write reads back and that every other block
# still holds what it held before. At the end each rotation completes and the
# data still matches. Two chains of lives run at once, each on its own copy.
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdcopy jq
PY=/usr/bin/python3
FUA_WRITER=$CV_SRCDIR/tests/integration/fua-writer.py
[ -x "$PY" ] || { echo "SKIP: $PY is not installed"; exit 77; }

SIZE=$((16 << 20)) # the volume
HOTZONE=256K       # a step: 64 steps per rotation (the traced one, chain 1)
RATE=4             # MiB/s: a step every 64 ms, so the client gets its writes in
# Chain 2 begins its rotations with 2 MiB steps at 16 MiB/s (a step every
# 125 ms): the engine halves a step that clients waited for, down to 256 KiB,
# and doubles it back.
HOTZONE2=2M RATE2=16
KMAX=12            # a life ends at a fault point between 1 and KMAX
CHAINS=2
KILLS=$((200 / CHAINS)) # per chain
MAX_LIVES=300           # per chain, to end a chain that makes no progress
WINDOW=256              # blocks the client writes, from the boundary on
seed=${CV_TEST_SEED:-$RANDOM}
echo "seed $seed (CV_TEST_SEED=$seed repeats the kill points)"

now_ms () { echo $(( $(date +%s%N) / 1000000 )); }

new_volume vol 16M
head -c 16M /dev/urandom >data
serve vol keyfile=vol.kek -- nbdcopy data '$uri'

# How many fault points a served rotation passes (and which), once.
rm -f nbd.sock ctl.sock
CV_FAULT_TRACE=1 nbdkit -f -U "$tmp/nbd.sock" "$PLUGIN" vol keyfile=vol.kek \
  control="$tmp/ctl.sock" >trace.log 2>&1 &
trace_pid=$!
cleanup_hooks+=("kill $trace_pid 2>/dev/null")
t0=$(now_ms)
until "$KEYMGR" status --control ctl.sock --json >/dev/null 2>&1; do
  kill -0 $trace_pid 2>/dev/null || { cat trace.log; fail "nbdkit did not start"; }
  [ $(( $(now_ms) - t0 )) -lt 30000 ] || fail "nbdkit did not start in 30 s"
  sleep 0.02
done
"$KEYMGR" rotate-dek vol --control ctl.sock --keyfile vol.kek --hotzone $HOTZONE --detach >rot.out 2>&1 ||
  { cat rot.out; fail "rotate-dek --control --detach"; }
until [ "$("$KEYMGR" status --control ctl.sock --json | jq -r .rotation.state)" = done ]; do
  [ $(( $(now_ms) - t0 )) -lt 60000 ] || fail "the traced rotation did not end in 60 s"
  sleep 0.05
done
kill $trace_pid; wait $trace_pid || true
grep '^fault point' trace.log | cut -d: -f2- | sort | uniq -c >kinds
n_points=$(grep -c '^fault point' trace.log)
echo "fault points of one online rotation ($((SIZE >> 10)) KiB, hotzone $HOTZONE): $n_points"
sed 's/^/    /' kinds
for kind in "rotate: journal written" "rotate: hotzone piece written" "rotate: step committed" \
            "rotate: finished"; do
  grep -q " $kind\$" kinds || fail "no fault point \"$kind\" in a served rotation"
done
[ "$n_points" -ge $((3 * 64)) ] || fail "$n_points fault points for 64 steps"
# The points of the rotation's end (its commit, then "rotate: finished"): a
# life that starts with every sector re-encrypted is killed at the last.
fin_k=$(grep '^fault point' trace.log | awk '/rotate: step committed$/ {n = 0; next} {n++} /rotate: finished$/ {print n; exit}')
[ -n "$fin_k" ] || fail "no \"rotate: finished\" after the last step in the trace"
[ "$(serve vol keyfile=vol.kek -- nbdcopy '$uri' - | sha256sum)" = "$(sha256sum <data)" ] ||
  fail "the data changed in the traced rotation"

# chain C HOTZONE RATE: the lives of one server on its own copy of the
# volume, in chain-C/, its rotations begun with steps of HOTZONE, run at RATE
# MiB/s. Prints "kill LIFE K WHERE" per kill, then the rotations begun, the
# time taken and the last check.
chain () {
  local c=$1 hotzone=$2 rate=$3 dir=$tmp/chain-$1
  local sock=$dir/nbd.sock ctl=$dir/ctl.sock uri="nbd+unix:///?socket=$dir/nbd.sock"
  local life=0 kills=0 finished=0 lastk=0 rotations=0 n=0 k info boundary step first
  local pid wpid rc st t0 i where
  SECONDS=0
  mkdir -p "$dir"; cd "$dir"
  cp --sparse=always ../vol vol; cp ../vol.kek vol.kek
  RANDOM=$((seed + c))
  : >all.log
  while [ $kills -lt $KILLS ] || [ $finished -eq 0 ]; do
    life=$((life + 1))
    [ $life -le $MAX_LIVES ] || fail "chain $c: $MAX_LIVES lives, and still $kills kills, $finished at the end of a rotation"
    # Where the rotation is: the client writes from its boundary on.
    info=$("$KEYMGR" info vol --json)
    boundary=$(jq '.volume.rotation.boundary // 0' <<<"$info")
    step=$(jq '.volume.rotation.step // 0' <<<"$info")
    if [ "$step" -gt 0 ] && [ "$boundary" -ge $SIZE ]; then
      k=$fin_k
    elif [ "$step" -gt 0 ] && [ $((boundary + step)) -ge $SIZE ]; then
      lastk=$((lastk + 1)); k=$lastk
    else
      lastk=0; k=$((1 + RANDOM % KMAX))
    fi
    first=$((boundary / 4096))
    [ $first -le $((SIZE / 4096 - WINDOW)) ] || first=$((SIZE / 4096 - WINDOW))
    rm -f "$sock" "$ctl"
    "$PY" "$FUA_WRITER" write "$uri" 0 $((SIZE / 4096)) stop.$life w.$life \
      --first $n --window $first $WINDOW --stride 37 --until-gone 2>w.err &
    wpid=$!; echo $wpid >writer.pid
    CV_FAULT_KILL_AT=$k CV_FAULT_TRACE=1 nbdkit -f -U "$sock" "$PLUGIN" vol keyfile=vol.kek \
      control="$ctl" rotate-rate=$rate >life.log 2>&1 &
    pid=$!; echo $pid >nbd.pid
    # Until it dies: when no rotation is left, start the next one (status
    # every 8th look, to leave the CPU to the server and the client).
    t0=$SECONDS i=0
    while kill -0 $pid 2>/dev/null; do
      i=$((i + 1)) st=
      [ $((i % 8)) != 0 ] ||
        st=$("$KEYMGR" status --control "$ctl" --json 2>/dev/null | jq -r '.rotation.state // "none"') || st=
      case $st in
        none|done)
          if "$KEYMGR" rotate-dek vol --control "$ctl" --keyfile vol.kek --hotzone $hotzone \
               --rate $rate --detach >rot.out 2>&1; then
            rotations=$((rotations + 1))
          elif kill -0 $pid 2>/dev/null; then
            cat rot.out; fail "chain $c life $life: rotate-dek --control --detach failed"
          fi ;;
        failed)
          "$KEYMGR" status --control "$ctl" --json
          fail "chain $c life $life: the rotation failed" ;;
      esac
      [ $((SECONDS - t0)) -lt 30 ] ||
        { tail -n 5 life.log; fail "chain $c life $life: nbdkit not killed at fault point $k in 30 s"; }
      sleep 0.02
    done
    rc=0; wait $pid || rc=$?
    touch stop.$life; wait $wpid || { cat w.err; fail "chain $c life $life: the writer failed"; }
    [ $rc = 137 ] || { tail -n 20 life.log; fail "chain $c life $life: nbdkit exited with $rc, not killed at point $k"; }
    where=$(grep -m1 "^fault point $k: " life.log | cut -d: -f2- | sed 's/^ //') ||
      { tail -n 20 life.log; fail "chain $c life $life: killed, but not at fault point $k"; }
    kills=$((kills + 1))
    [ "$where" = "rotate: finished" ] && finished=$((finished + 1))
    echo "kill $life $k $where"
    if [ -s w.$life ]; then n=$(( $(tail -n 1 w.$life | cut -d' ' -f2) + 1 )); fi
    cat w.$life >>all.log
    # Every acknowledged write reads back; nothing else changed.
    serve vol keyfile=vol.kek rotate=manual -- \
      "$PY" "$FUA_WRITER" verify '$uri' 0 $((SIZE / 4096)) all.log --gone-ok --base ../data \
      >verify.out 2>&1 ||
      { cat verify.out; tail -n 20 life.log; fail "chain $c life $life: after the kill at fault point $k ($where)"; }
  done
  # The last rotation runs to its end, and the data is still there.
  rm -f "$sock" "$ctl"
  nbdkit -f -U "$sock" "$PLUGIN" vol keyfile=vol.kek control="$ctl" >last.log 2>&1 &
  pid=$!; echo $pid >nbd.pid
  t0=$(now_ms)
  until st=$("$KEYMGR" status --control "$ctl" --json 2>/dev/null | jq -r '.rotation.state // "none"') &&
        { [ "$st" = done ] || [ "$st" = none ]; }; do
    [ "$st" != failed ] || fail "chain $c: the last rotation failed"
    [ $(( $(now_ms) - t0 )) -lt 60000 ] || fail "chain $c: the last rotation did not end in 60 s ($st)"
    sleep 0.05
  done
  kill $pid; wait $pid || true
  "$KEYMGR" info vol --json | jq -e '.volume | has("rotation") | not' >/dev/null ||
    fail "chain $c: a rotation is still recorded at the end"
  serve vol keyfile=vol.kek -- "$PY" "$FUA_WRITER" verify '$uri' 0 $((SIZE / 4096)) all.log --gone-ok --base ../data \
    >verify.out 2>&1 || { cat verify.out; fail "chain $c: after the last rotation"; }
  echo "rotations $rotations in $SECONDS s, $(cat verify.out)"
}

pids=()
for c in $(seq 1 $CHAINS); do
  cleanup_hooks+=("kill \$(cat $tmp/chain-$c/nbd.pid $tmp/chain-$c/writer.pid 2>/dev/null) 2>/dev/null")
  if [ $c = 2 ]; then chain $c $HOTZONE2 $RATE2; else chain $c $HOTZONE $RATE; fi >chain-$c.out 2>&1 &
  pids+=($!)
done
failed=0
for c in $(seq 1 $CHAINS); do
  wait "${pids[$((c - 1))]}" || { failed=1; echo "chain $c:"; tail -n 30 chain-$c.out; }
done
[ $failed = 0 ] || fail "a chain of kills failed"
cat chain-*.out | grep '^kill' | cut -d' ' -f4- | sort | uniq -c >killed
kills=$(grep -c '^kill' chain-*.out | awk -F: '{s += $2} END {print s}')
echo "kills by fault point:"; sed 's/^/    /' killed
tail -q -n 1 chain-*.out
[ "$kills" -ge 200 ] || fail "only $kills kill points"
# Every kind of fault point the traced rotation passed was a kill point.
while read -r _ kind; do
  grep -q " $kind\$" killed || fail "no kill at \"$kind\""
done <kinds
pass "$kills kills of nbdkit at fault points of online rotations: every acknowledged FUA write read back after each, every rotation completed"
