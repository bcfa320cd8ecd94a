#!/bin/bash
# Many rbd: volumes in one server (issue 17's measurement; not run by make
# check): on a throw-away Ceph cluster (tests/ceph/cluster.sh), N images of
# 8 MiB made by cryptvol-keymgr create, served by ONE nbdkit (volumes=FILE
# unlock=eager). Prints the time until it listens (every volume unlocked),
# then its threads, descriptors and RSS; then writes 8 MiB through every
# tenth export, reads it back and compares, and prints RSS again.
#
# Usage: bench/rbd-many.sh [N] (default 100). NOFILE=SOFT:HARD runs nbdkit
# under prlimit --nofile (to see the descriptor limit at work).
set -u
cd "$(dirname "$0")/.."
src=$PWD
n=${1:-100}
build=$src/build
export PATH=$build:/usr/sbin:/usr/bin:/sbin:/bin
work=$(mktemp -d "${TMPDIR:-/tmp}/cv-rbd-many.XXXXXX")
pid=
cleanup () {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  "$src/tests/ceph/cluster.sh" stop "$work/ceph" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
now () { date +%s.%N; }
since () { echo "$(now) - $1" | bc; }

"$src/tests/ceph/cluster.sh" start "$work/ceph" >/dev/null || { echo "the Ceph cluster did not start" >&2; exit 1; }
# shellcheck disable=SC1091
. "$work/ceph/env"
cd "$work"
cryptvol-keymgr genkey k.kek >/dev/null
t0=$(now)
for i in $(seq 1 "$n"); do
  cryptvol-keymgr create "rbd:rbd/v$i" --size 8M --wrap file:k.kek >/dev/null || exit 1
  printf '[v%d]\nvolume = rbd:rbd/v%d\nkeyfile = k.kek\nkey-check = 0\n\n' "$i" "$i"
done >volumes.conf
echo "created $n volumes in $(since "$t0") s"

t0=$(now)
${NOFILE:+prlimit --nofile="$NOFILE" --} nbdkit -f -U s.sock "$build/nbdkit-cryptvol-plugin.so" \
  volumes=volumes.conf unlock=eager control="$work/c.ctl" 2>nbdkit.log &
pid=$!
until nbdsh --opt-mode -u "nbd+unix:///?socket=$work/s.sock" -c 'h.opt_abort()' >/dev/null 2>&1; do
  kill -0 "$pid" 2>/dev/null || { pid=; echo "nbdkit ended:"; tail -n 3 nbdkit.log; exit 1; }
  sleep 0.1
done
echo "serving $n rbd: exports after $(since "$t0") s"
unlocked=$(cryptvol-keymgr status --control c.ctl --json | jq '[.exports[] | select(.state == "unlocked")] | length')
usage () {
  echo "threads $(ls "/proc/$pid/task" | wc -l), descriptors $(ls "/proc/$pid/fd" | wc -l)," \
       "RSS $(awk '/VmRSS/ {print $2}' "/proc/$pid/status") kB"
}
echo "unlocked $unlocked of $n; $(usage)"
for i in $(seq 1 10 "$n"); do
  head -c 8M /dev/urandom >d.bin
  u="nbd+unix:///v$i?socket=$work/s.sock"
  nbdcopy d.bin "$u" && nbdcopy "$u" - | cmp -s - d.bin || echo "export v$i: the data does not read back"
done
echo "after 8 MiB through every tenth export: $(usage)"
