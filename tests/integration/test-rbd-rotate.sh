#!/bin/bash
# DEK rotation of volumes on Ceph RBD (issue 17), offline, against a
# throw-away cluster:
# - rotate-dek on rbd:rbd/... killed (SIGKILL, CV_FAULT_KILL_AT as in
#   test-crash.sh) at its fault points: after each kill the volume reads
#   back (through a server with takeover=true) and rotate-dek continues it
#   to the end (or rotate-dek --takeover continues it first), the data is
#   intact and no rotation is left; the first point of each kind and the
#   last three, or every point with CV_RBD_KILL_POINTS=all;
# - a rotation interrupted by a killed keymgr is continued by the server
#   that opens the volume next (takeover=true, rotate=auto) while a client
#   writes (shadow-writer.py): the whole volume equals the shadow, no
#   rotation is left, the key file opens it.
source "$(dirname "$0")/functions.sh"
source "$CV_SRCDIR/tests/integration/keywatch-lib.sh"
requires nbdkit nbdcopy nbdsh jq xargs
PY=/usr/bin/python3
MIB=1048576
ceph_start

"$KEYMGR" genkey a.kek >/dev/null
rot_json () { status_json | jq -c '.rotation // {}'; }
rot_state () { status_json | jq -r '.rotation.state // "none"'; }
volume_sum () { nbdcopy "$URI" - | sha256sum | cut -d' ' -f1; }
no_rotation () { "$KEYMGR" info "$1" --json | jq -e '.volume | has("rotation") | not' >/dev/null; }

# --- offline rotation, killed at its fault points -------------------------------
# 1 MiB of data in steps of 256 KiB: every kind of fault point, several
# steps (26 points; test-crash.sh runs the 200 of a bigger volume on files).
"$KEYMGR" create rbd:rbd/base --size 1M --wrap file:a.kek >/dev/null || fail "create rbd:rbd/base"
head -c $MIB /dev/urandom >data
rserve rbd:rbd/base keyfile=a.kek -- nbdcopy data '$uri' || fail "filling rbd/base"
sum=$(sha256sum <data | cut -d' ' -f1)
ROTATE=(rotate-dek --keyfile "$tmp/a.kek" --hotzone 256K)

rbd cp --no-progress rbd/base rbd/count >/dev/null
n=$(CV_FAULT_TRACE=1 "$KEYMGR" "${ROTATE[0]}" rbd:rbd/count "${ROTATE[@]:1}" 2>&1 >/dev/null |
  grep -c '^fault point') || true
[ "$n" -ge 20 ] || fail "rotate-dek on rbd:rbd/count passed only $n fault points"
no_rotation rbd:rbd/count || fail "the traced rotation left a rotation"
# Each kill costs ~5 s of waiting (below), so by default the first point of
# every kind (header copy, seal, begun, journal, hotzone piece, step
# committed: points 1-8) and the last three (the final commit and
# "finished"); CV_RBD_KILL_POINTS=all: every one.
if [ "${CV_RBD_KILL_POINTS:-}" = all ]; then
  points=$(seq 1 "$n")
else
  points=$( (seq 1 8; seq $((n - 2)) "$n") | sort -nu)
fi
echo "fault points of rotate-dek: $n; killing at: $(echo $points)"

# One kill point, in its own directory and image. The killed keymgr still
# holds the image's exclusive lock (librbd waits out its watch, 5 s on the
# test cluster, before it counts it as dead): an odd point is first read by
# a server with takeover=true (which, read-write, may finish the step), an
# even one first continued by rotate-dek --takeover.
cat >one.sh <<EOS
#!/bin/bash
set -u
k=\$1 img=run-\$1 vol=rbd:rbd/run-\$1
d=$tmp/run-\$k; mkdir -p \$d; cd \$d
# readsum PARAMS...: the sha256 of the volume served with PARAMS (nbdkit -f:
# a volume that fails to open ends the server). It waits for a handshake, as
# nbd_wait: nbdkit binds the socket file before it listens.
readsum () {
  rm -f s.sock
  nbdkit -f -U s.sock "$PLUGIN" \$vol keyfile=$tmp/a.kek "\$@" 2>>err &
  local p=\$! s=none u="nbd+unix:///?socket=\$d/s.sock"
  until nbdsh --opt-mode -u "\$u" -c 'h.opt_abort()' >/dev/null 2>&1; do
    kill -0 \$p 2>/dev/null || break
    sleep 0.02
  done
  kill -0 \$p 2>/dev/null && s=\$(timeout 60 nbdcopy "\$u" - 2>>err | sha256sum | cut -d' ' -f1)
  kill \$p 2>/dev/null; wait \$p 2>/dev/null
  echo \$s
}
rotate () { "$KEYMGR" ${ROTATE[0]} \$vol ${ROTATE[*]:1} "\$@" >>out 2>&1; }
rbd cp --no-progress rbd/base rbd/\$img >/dev/null 2>&1 || { echo "FAIL \$k: rbd cp"; exit 0; }
CV_FAULT_KILL_AT=\$k rotate
rc=\$?
[ \$rc = 137 ] || { echo "FAIL \$k: not killed (exit \$rc): \$(tail -n 1 out)"; exit 0; }
if [ \$((k % 2)) = 1 ]; then
  s=\$(readsum takeover=true)
  [ "\$s" = "$sum" ] || { echo "FAIL \$k: after the kill the volume reads \$s: \$(tail -n 2 err)"; exit 0; }
  rotate || { echo "FAIL \$k: rotate-dek after the read failed: \$(tail -n 1 out)"; exit 0; }
else
  rotate --takeover || { echo "FAIL \$k: rotate-dek --takeover failed: \$(tail -n 1 out)"; exit 0; }
fi
s=\$(readsum)
[ "\$s" = "$sum" ] || { echo "FAIL \$k: after the re-run the volume reads \$s: \$(tail -n 2 err)"; exit 0; }
"$KEYMGR" info \$vol --json | jq -e '.volume | has("rotation") | not' >/dev/null ||
  { echo "FAIL \$k: rotation state left after the re-run"; exit 0; }
rbd rm --no-progress rbd/\$img >/dev/null 2>&1
echo "ok \$k"
rm -rf \$d
EOS
chmod +x one.sh
# Mostly waiting (for the dead holder's watch): all at once.
echo "$points" | xargs -P 16 -L 1 ./one.sh >results 2>kill-noise.log
kills=$(wc -l <results)
failures=$(grep -c '^FAIL' results || true)
grep '^FAIL' results | head -20 || true
[ "$kills" -eq "$(echo "$points" | wc -l)" ] || fail "not every kill point ran"
[ "$failures" -eq 0 ] || fail "$failures kill points left a bad rbd volume"
pass "$kills kill points of rotate-dek on rbd: each read back, continued with --takeover, intact"

# --- an interrupted rotation continued by the server ------------------------------
"$KEYMGR" create rbd:rbd/vol --size 8M --wrap file:a.kek >/dev/null || fail "create rbd:rbd/vol"
head -c $((8 * MIB)) /dev/urandom >shadow
rserve rbd:rbd/vol keyfile=a.kek -- nbdcopy shadow '$uri' || fail "filling rbd/vol"
CV_FAULT_KILL_AT=12 "$KEYMGR" rotate-dek rbd:rbd/vol --keyfile a.kek --hotzone 1M >kill.out 2>&1 && fail "rotate-dek was not killed"
"$KEYMGR" info rbd:rbd/vol --json | jq -e '.volume | has("rotation")' >/dev/null || fail "the killed rotate-dek left no rotation"
start_nbd rbd:rbd/vol keyfile=a.kek takeover=true rotate-rate=4
"$PY" "$CV_SRCDIR/tests/integration/shadow-writer.py" "$URI" shadow \
  $((2 * MIB)) $((4 * MIB)) stop ready >writer.log 2>&1 &
writer_pid=$!
cleanup_hooks+=("touch $tmp/stop")
t0=$(now_ms)
until [ "$(rot_state)" = "done" ] || [ "$(rot_state)" = none ]; do
  [ "$(rot_state)" != failed ] || fail "the continued rotation failed: $(rot_json)"
  kill -0 $writer_pid 2>/dev/null || { cat writer.log; fail "the shadow writer stopped"; }
  [ $(($(now_ms) - t0)) -lt 30000 ] || fail "the continued rotation did not end in 30 s: $(rot_json)"
  sleep 0.05
done
[ -e ready ] || fail "the writer wrote nothing while the rotation ran"
touch stop
wait $writer_pid || { cat writer.log; fail "the shadow writer read data that differs from its shadow"; }
want=$(sha256sum <shadow | cut -d' ' -f1)
[ "$(volume_sum)" = "$want" ] || fail "after the continued rotation the volume differs from the shadow"
stop_nbd
no_rotation rbd:rbd/vol || fail "rotation state left after the continued rotation"
"$KEYMGR" verify rbd:rbd/vol --keyfile a.kek >/dev/null || fail "the key file no longer opens rbd:rbd/vol"
pass "a rotation interrupted by a killed keymgr: the next server (takeover=true) finished it under a writer ($(tail -n 1 writer.log)); data equals the shadow"
