#!/bin/bash
# Online DEK rotation of a volume on Ceph RBD (issue 17), against a
# throw-away cluster:
# - rotate-dek --control on a served rbd: volume while a client writes
#   (shadow-writer.py, checked against its shadow): the whole volume equals
#   the shadow, before and after a restart; no rotation left; the key file
#   opens it;
# - a server killed (-9) mid-rotation: the server that takes the volume over
#   (takeover=true) continues the rotation to the end, the data intact.
source "$(dirname "$0")/functions.sh"
source "$CV_SRCDIR/tests/integration/keywatch-lib.sh"
requires nbdkit nbdcopy nbdsh jq
PY=/usr/bin/python3
MIB=1048576
ceph_start
# The test cluster's OSD drops a watch after 5 s (so that a killed holder's
# lock expires fast); clients must ping it more often than librados' default
# every 5 s, or a live server's image watch lapses and it looks dead.
export CEPH_ARGS="--objecter_tick_interval 1"

# rserve: serve (functions.sh) bounded by 120 s: an rbd: volume is opened
# after nbdkit forks, and a failed open leaves a --run command waiting.
rserve () {
  local args=() cmd
  while [ "$1" != "--" ]; do args+=("$1"); shift; done
  shift
  cmd=$(printf '%q ' "$@")
  cmd=${cmd//\\\$uri/\"\$uri\"}
  timeout -k 5 120 nbdkit -U - "$PLUGIN" "${args[@]}" --run "$cmd"
}
# serve_fails PARAMS...: nbdkit -f serving PARAMS must end by itself (exit
# status nbdkit's; after 60 s it is killed and this succeeds, so that
# expect_fail reports it).
serve_fails () {
  local rc=0
  rm -f "$tmp/refused.sock"
  timeout -k 5 60 nbdkit -f -U "$tmp/refused.sock" "$PLUGIN" "$@" || rc=$?
  if [ $rc = 124 ]; then echo "nbdkit did not end in 60 s" >&2; return 0; fi
  return $rc
}

"$KEYMGR" genkey a.kek >/dev/null
rot_json () { status_json | jq -c '.rotation // {}'; }
rot_state () { status_json | jq -r '.rotation.state // "none"'; }
volume_sum () { nbdcopy "$URI" - | sha256sum | cut -d' ' -f1; }
no_rotation () { "$KEYMGR" info "$1" --json | jq -e '.volume | has("rotation") | not' >/dev/null; }

# --- online rotation under a writer ---------------------------------------------
"$KEYMGR" create rbd:rbd/vol --size 8M --wrap file:a.kek >/dev/null || fail "create rbd:rbd/vol"
head -c $((8 * MIB)) /dev/urandom >shadow
start_nbd rbd:rbd/vol keyfile=a.kek
nbdcopy shadow "$URI"
"$PY" "$CV_SRCDIR/tests/integration/shadow-writer.py" "$URI" shadow \
  $((2 * MIB)) $((4 * MIB)) stop ready >writer.log 2>&1 &
writer_pid=$!
cleanup_hooks+=("touch $tmp/stop")
t0=$(now_ms)
until [ -e ready ]; do
  kill -0 $writer_pid 2>/dev/null || { cat writer.log; fail "the shadow writer stopped"; }
  [ $(($(now_ms) - t0)) -lt 20000 ] || fail "the shadow writer wrote nothing in 20 s"
  sleep 0.05
done
"$KEYMGR" rotate-dek rbd:rbd/vol --control "$CTL" --keyfile a.kek --rate 8 >rot.out 2>&1 ||
  { cat rot.out; fail "rotate-dek --control on the served rbd:rbd/vol"; }
[ "$(rot_state)" = "done" ] || fail "rotate-dek returned, the rotation is $(rot_json)"
kill -0 $writer_pid 2>/dev/null || { cat writer.log; fail "the writer stopped before the rotation ended"; }
touch stop
wait $writer_pid || { cat writer.log; fail "the shadow writer read data that differs from its shadow"; }
want=$(sha256sum <shadow | cut -d' ' -f1)
[ "$(volume_sum)" = "$want" ] || fail "after the online rotation the volume differs from the shadow"
stop_nbd
no_rotation rbd:rbd/vol || fail "rotation state left after the online rotation"
"$KEYMGR" verify rbd:rbd/vol --keyfile a.kek >/dev/null || fail "the key file no longer opens rbd:rbd/vol"
start_nbd rbd:rbd/vol keyfile=a.kek
[ "$(volume_sum)" = "$want" ] || fail "after a restart the volume differs from the shadow"
pass "online rotate-dek on rbd under a writer ($(tail -n 1 writer.log)): volume equals the shadow, after a restart too"

# --- the server killed mid-rotation; the next one takes over and continues ------
"$KEYMGR" rotate-dek rbd:rbd/vol --control "$CTL" --keyfile a.kek --rate 2 --detach >rot.out 2>&1 ||
  { cat rot.out; fail "rotate-dek --detach"; }
t0=$(now_ms)
until [ "$(rot_json | jq '.done // 0')" -gt 0 ]; do
  [ $(($(now_ms) - t0)) -lt 20000 ] || fail "the rotation made no progress in 20 s: $(rot_json)"
  sleep 0.05
done
stop_nbd KILL
"$KEYMGR" info rbd:rbd/vol --json | jq -e '.volume | has("rotation")' >/dev/null ||
  fail "killed mid-rotation, the header shows no rotation"
start_nbd rbd:rbd/vol keyfile=a.kek takeover=true rotate-rate=64
t0=$(now_ms)
until [ "$(rot_state)" = "done" ] || [ "$(rot_state)" = none ]; do
  [ "$(rot_state)" != failed ] || fail "the continued rotation failed: $(rot_json)"
  [ $(($(now_ms) - t0)) -lt 30000 ] || fail "the continued rotation did not end in 30 s: $(rot_json)"
  sleep 0.05
done
[ "$(volume_sum)" = "$want" ] || fail "after the continued rotation the volume differs"
stop_nbd
no_rotation rbd:rbd/vol || fail "rotation state left after the continued rotation"
pass "a server killed mid-rotation: takeover=true continued the rotation to the end, data intact"
