#!/bin/bash
# A throw-away single-node Ceph cluster for tests, on 127.0.0.1: one monitor
# (msgr v2 only), one memstore OSD, no manager. Everything (data, keyrings,
# pid files, admin sockets, logs) lives in DIR; nothing is written elsewhere.
#
#   tests/ceph/cluster.sh start DIR [PORT]   (PORT: a free one when omitted)
#   tests/ceph/cluster.sh stop DIR           (SIGKILL of the daemons' pids)
#
# After start: DIR/ceph.conf (clients time out after 10 s), DIR/keyring
# (client.admin), pool "rbd" created and initialised, and DIR/env to source:
# `export CEPH_CONF=DIR/ceph.conf CEPH_KEYRING=DIR/keyring; unset CEPH_ARGS`.
# What makes it quick: paxos propose interval 0.1 (each map change otherwise
# waits ~1 s: start-up ~1.6 s instead of ~11 s), memstore, pool size 1, no
# manager; osd client watch timeout 5 on the OSD: a killed client's
# exclusive lock is broken after ~5 s instead of 30. The daemons fork into
# the background; where PID 1 does not reap orphans they stay as zombies
# once killed (harmless).
# CEPH_START_TIMEOUT (seconds, 60) bounds the start; on failure the script
# prints what did not come up and the tail of the daemon logs, stops what it
# started and exits 1.
set -euo pipefail

usage () { echo "usage: $0 start DIR [PORT] | stop DIR" >&2; exit 2; }

# Stop the daemons whose pid files are in DIR: SIGKILL (SIGTERM takes ~2 s
# per daemon and the data is throw-away).
stop () {
  local dir=$1 f pid
  for f in "$dir"/run/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f" 2>/dev/null) || continue
    if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi
    rm -f "$f"
  done
}

die () {
  local dir=$1; shift
  echo "cluster.sh: $*" >&2
  local l
  for l in "$dir"/log/*.log; do
    [ -f "$l" ] || continue
    echo "--- tail of $l:" >&2
    tail -n 20 "$l" >&2
  done
  stop "$dir"
  exit 1
}

free_port () {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Run a client command bounded by the time left before the deadline.
left () { local l=$((deadline - $(date +%s))); [ $l -gt 0 ] && echo $l || echo 1; }
# (The daemons must not see CEPH_KEYRING: it would replace their own keyring.)
c () { CEPH_CONF=$dir/ceph.conf CEPH_KEYRING=$dir/keyring timeout "$(left)" "$@"; }

start () {
  local dir=$1 port=${2:-}
  [ -n "$port" ] || port=$(free_port)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ ! -e "$dir/run" ] || { echo "cluster.sh: $dir already holds a cluster (stop it and remove the directory)" >&2; exit 1; }
  mkdir -p "$dir/run" "$dir/log" "$dir/mon.a" "$dir/osd.0"
  deadline=$(($(date +%s) + ${CEPH_START_TIMEOUT:-60}))
  # Stale settings of another cluster make the tools hang.
  unset CEPH_ARGS CEPH_CONF CEPH_KEYRING
  local fsid; fsid=$(cat /proc/sys/kernel/random/uuid)
  cat >"$dir/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$port
mon initial members = a
ms bind msgr1 = false
ms bind ipv6 = false
public network = 127.0.0.1/32
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
run dir = $dir/run
pid file = $dir/run/\$name.pid
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
log to stderr = false
crash dir = $dir/crash
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon allow pool delete = true
osd crush chooseleaf type = 0
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon warn on pool no redundancy = false
[mon]
mon data = $dir/mon.\$id
mon keyring = $dir/mon.keyring
paxos propose interval = 0.1
mon osd reporter subtree level = osd
mon data avail warn = 1
mon data avail crit = 0
[osd]
osd data = $dir/osd.\$id
keyring = $dir/osd.\$id/keyring
osd objectstore = memstore
memstore device bytes = 2147483648
osd client watch timeout = 5
osd max object name len = 256
osd max object namespace len = 64
osd op num threads per shard = 1
osd op num shards = 2
[client]
keyring = $dir/keyring
# Many clients at once: no admin sockets (they would collide), a log each;
# librados' errors stay on stderr.
admin socket =
log file = $dir/log/\$name.\$pid.log
err to stderr = true
rados osd op timeout = 10
rados mon op timeout = 10
client mount timeout = 10
# The OSD drops a watch after 5 s without a ping (above); clients ping
# every tick (5 s by default), so a live client's watch would lapse.
objecter tick interval = 1
EOF
  # The monitor's keyring holds mon. and client.admin (imported at mkfs);
  # clients get client.admin alone.
  ceph-authtool --create-keyring "$dir/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool --create-keyring "$dir/keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
  ceph-authtool "$dir/mon.keyring" --import-keyring "$dir/keyring" >/dev/null
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$port]" "$dir/monmap" >/dev/null
  ceph-mon -c "$dir/ceph.conf" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/mon.keyring" \
    >"$dir/log/mkfs-mon.out" 2>&1 || die "$dir" "ceph-mon --mkfs failed: $(tail -n 5 "$dir/log/mkfs-mon.out")"
  ceph-mon -c "$dir/ceph.conf" -i a >>"$dir/log/mkfs-mon.out" 2>&1 || die "$dir" "ceph-mon did not start"

  # The OSD: registered with the monitor (which also waits for the monitor
  # to answer), its key, its store, then the daemon.
  local uuid; uuid=$(cat /proc/sys/kernel/random/uuid)
  ceph-authtool --create-keyring "$dir/osd.0/keyring" --gen-key -n osd.0 >/dev/null
  local key; key=$(ceph-authtool -p -n osd.0 "$dir/osd.0/keyring")
  # One client (python3-rados: a third of the ceph tool's start-up) for
  # what the monitor does: register the OSD, create the pool.
  local id
  id=$(c /usr/bin/python3 - "$uuid" "$key" "$(left)" 2>"$dir/log/client.err" <<'PY'
import json, sys

import rados

uuid, key, left = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = rados.Rados(conffile="")
c.conf_parse_env()
c.connect(timeout=left)


def mon(inbuf=b"", **cmd):
    rc, out, err = c.mon_command(json.dumps(cmd), inbuf, timeout=left)
    if rc:
        sys.exit("%s: %s (%d)" % (cmd["prefix"], err, rc))
    return out


out = mon(json.dumps({"cephx_secret": key}).encode(), prefix="osd new", uuid=uuid)
mon(prefix="osd pool create", pool="rbd", pg_num=8, pgp_num=8)
print(out.decode().strip())
PY
) || die "$dir" "the monitor on 127.0.0.1:$port did not register the OSD and the pool within the time bound: $(tail -n 3 "$dir/log/client.err")"
  [ "$id" = 0 ] || die "$dir" "osd new returned id '$id', expected 0"
  ceph-osd -c "$dir/ceph.conf" -i 0 --mkfs --osd-uuid "$uuid" >"$dir/log/mkfs-osd.out" 2>&1 ||
    die "$dir" "ceph-osd --mkfs failed: $(tail -n 5 "$dir/log/mkfs-osd.out")"
  ceph-osd -c "$dir/ceph.conf" -i 0 >>"$dir/log/mkfs-osd.out" 2>&1 || die "$dir" "ceph-osd did not start"
  # Returns once the pool's PGs are active: the OSD is up and serving.
  c rbd pool init rbd 2>"$dir/log/client.err" ||
    die "$dir" "the OSD did not come up (rbd pool init rbd) within ${CEPH_START_TIMEOUT:-60} s: $(tail -n 3 "$dir/log/client.err")"
  printf 'export CEPH_CONF=%q CEPH_KEYRING=%q; unset CEPH_ARGS\n' "$dir/ceph.conf" "$dir/keyring" >"$dir/env"
}

[ $# -ge 2 ] || usage
case $1 in
  start) [ $# -le 3 ] || usage; start "$2" "${3:-}" ;;
  stop) [ $# -eq 2 ] || usage; stop "$2" ;;
  *) usage ;;
esac
