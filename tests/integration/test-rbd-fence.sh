#!/bin/bash
# One host at a time on a Ceph RBD volume (issue 17), against a throw-away
# cluster:
# - a served rbd: volume holds the image's exclusive lock; a second server
#   opening it is refused, quickly, with a message naming the holder (the
#   lock owner librbd reports); the first serves on;
# - keymgr's offline changes (add-wrap, remove-wrap, rotate-dek,
#   restore-header) are refused while it is served, naming the holder (and,
#   for the wrap commands, saying to give --control), and change nothing;
#   info, list-wraps and backup-header work;
# - with --control the server commits them: add-wrap, rewrap, remove-wrap (one that
#   would leave the server no wrap it can open is refused, nothing changed),
#   and rotate-dek while a client writes, every write read back afterwards
#   (and by the servers that take over below);
# - kill -9 of the server while a client writes with FUA: a second server
#   with takeover=true serves, the dead holder is blocklisted, and every
#   write the first acknowledged reads back;
# - a partitioned host: the serving process is stopped (SIGSTOP) with a
#   client connected; a second server takes over (takeover=true) and
#   writes; the first is continued (SIGCONT) and its client's writes fail
#   (fenced: blocklisted) and are not in the image; the second's data and
#   the first's acknowledged writes are intact;
# - takeover=true from a live holder: warns naming it, blocklists it, its
#   next FUA write fails; a fresh server afterwards reads everything.
source "$(dirname "$0")/functions.sh"
source "$CV_SRCDIR/tests/integration/keywatch-lib.sh"
requires nbdkit nbdsh nbdinfo jq
PY=/usr/bin/python3
MIB=1048576
ceph_start

# lock_owners: the image rbd/vol's exclusive-lock owners, one a line, as
# librbd reports them (rbd_lock_get_owners), read by librados' own client.
lock_owners () {
  "$PY" -c "
import rados, rbd
c = rados.Rados(conffile=''); c.conf_read_file(); c.connect()
io = c.open_ioctx('rbd'); image = rbd.Image(io, 'vol')
for o in image.lock_get_owners(): print(o['owner'])
image.close(); io.close(); c.shutdown()" 2>>"$tmp/lock_owners.err"
}

# server NAME PARAMS...: nbdkit serving on $tmp/NAME.sock (control socket
# $tmp/NAME.ctl, log $tmp/NAME.log) in the background; returns once the
# control socket answers. Its pid in pid_NAME; killed (-9, which also ends a
# stopped process) by the cleanup.
server () {
  local name=$1 pid _; shift
  nbdkit -f -U "$tmp/$name.sock" "$PLUGIN" "$@" control="$tmp/$name.ctl" >>"$tmp/$name.log" 2>&1 &
  pid=$!
  eval "pid_$name=$pid"
  cleanup_hooks+=("kill -9 $pid 2>/dev/null")
  for _ in $(seq 1 400); do
    "$KEYMGR" status --control "$tmp/$name.ctl" --json >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  tail -n 30 "$tmp/$name.log" >&2
  fail "server $name did not start serving"
}
uri () { echo "nbd+unix:///?socket=$tmp/$1.sock"; }
rot_state () { "$KEYMGR" status --control "$tmp/$1.ctl" --json | jq -r '.rotation.state // "none"'; }
# blocklisted OWNER: the client OWNER (an address as lock_owners prints it)
# is on the cluster's blocklist.
blocklisted () { ceph osd blocklist ls 2>/dev/null | grep -qF "$1 "; }

"$KEYMGR" genkey vol.kek >/dev/null
"$KEYMGR" genkey b.kek >/dev/null
"$KEYMGR" create rbd:rbd/vol --size 8M --wrap file:vol.kek >/dev/null || fail "create rbd:rbd/vol"
[ -z "$(lock_owners)" ] || fail "after create the image is still locked by $(lock_owners)"

# --- a second server is refused, naming the holder -------------------------------
server a rbd:rbd/vol keyfile=vol.kek
owner_a=$(lock_owners)
[ "$(wc -l <<<"$owner_a")" = 1 ] && [ -n "$owner_a" ] ||
  fail "the serving server does not hold the exclusive lock (owners: '$owner_a')"
ms serve_fails rbd:rbd/vol keyfile=vol.kek
[ "$rc" != 0 ] || fail "a second server served rbd:rbd/vol beside the first"
grep -qF "$owner_a" "$tmp/err" || { cat "$tmp/err"; fail "the second server's refusal does not name the holder $owner_a"; }
grep -q 'takeover' "$tmp/err" || { cat "$tmp/err"; fail "the refusal does not say what to do (takeover=true)"; }
[ "$ms" -lt 15000 ] || fail "the second server took $ms ms to be refused"
pass "a second server refused in $ms ms: $(grep -m1 -F "$owner_a" "$tmp/err")"
[ "$(lock_owners)" = "$owner_a" ] || fail "the refused server changed the lock owner"
nbdsh -u "$(uri a)" -c "h.pwrite(b'A' * 4096, 0, nbd.CMD_FLAG_FUA); assert h.pread(4096, 0) == b'A' * 4096" ||
  fail "the first server does not serve after the refusal"

# --- keymgr while served ----------------------------------------------------------
"$KEYMGR" backup-header rbd:rbd/vol hdr.bak >/dev/null || fail "backup-header of the served volume"
for cmd in "add-wrap --wrap file:b.kek --keyfile vol.kek" "remove-wrap --id 0 --keyfile vol.kek" \
           "rotate-dek --keyfile vol.kek" "restore-header hdr.bak --keyfile vol.kek"; do
  set -- $cmd
  c=$1; shift
  expect_fail "$c $* while served" 'rbd:rbd/vol' "$KEYMGR" "$c" rbd:rbd/vol "$@"
  grep -qF "$owner_a" "$tmp/err" || { cat "$tmp/err"; fail "$c: the refusal does not say the volume is in use"; }
  case $c in *-wrap) grep -q 'give --control' "$tmp/err" || { cat "$tmp/err"; fail "$c: the refusal does not say to give --control"; } ;; esac
done
"$KEYMGR" info rbd:rbd/vol >/dev/null || fail "info of the served volume"
[ "$("$KEYMGR" list-wraps rbd:rbd/vol --json | jq length)" = 1 ] || fail "a refused change changed the wraps"
[ "$(lock_owners)" = "$owner_a" ] || fail "a refused keymgr command changed the lock owner"
pass "offline keymgr changes refused while served, naming the holder; nothing changed; info, list-wraps, backup-header work"

# --- keymgr's changes through the server (--control) ------------------------------
seqid () { "$KEYMGR" info rbd:rbd/vol --json | jq .seqid; }
{ printf 'A%.0s' $(seq 4096); head -c $((8 * MIB - 4096)) /dev/urandom; } >model.bin
nbdcopy model.bin "$(uri a)" || fail "filling the served volume"
s0=$(seqid)
"$KEYMGR" add-wrap rbd:rbd/vol --wrap file:b.kek --keyfile vol.kek --control "$tmp/a.ctl" >add.out 2>&1 ||
  { cat add.out; tail -n 5 a.log; fail "add-wrap --control of the served rbd: volume"; }
[ "$("$KEYMGR" list-wraps rbd:rbd/vol --json | jq length)" = 2 ] || fail "add-wrap --control: no second wrap"
"$KEYMGR" verify rbd:rbd/vol --keyfile b.kek >/dev/null || fail "the wrap added through the server does not open the volume"
[ "$(seqid)" -gt "$s0" ] || fail "add-wrap --control: the header's seqid did not move"
"$KEYMGR" genkey c.kek >/dev/null
"$KEYMGR" rewrap rbd:rbd/vol --id 1 --to file:c.kek --keyfile b.kek --control "$tmp/a.ctl" >rew.out 2>&1 ||
  { cat rew.out; fail "rewrap --control of the served rbd: volume"; }
"$KEYMGR" verify rbd:rbd/vol --keyfile c.kek >/dev/null && ! "$KEYMGR" verify rbd:rbd/vol --keyfile b.kek >/dev/null 2>&1 ||
  fail "after rewrap --control the added wrap is not under c.kek alone"
idc=$("$KEYMGR" list-wraps rbd:rbd/vol --json | jq '.[] | select(.ref | endswith("/c.kek")) | .id')
[ -n "$idc" ] || fail "after rewrap --control no wrap is under c.kek"
expect_fail "remove-wrap --control with no server there" 'no cryptvol server listens' \
  "$KEYMGR" remove-wrap rbd:rbd/vol --id "$idc" --keyfile vol.kek --control "$tmp/nobody.ctl"
# Removing the wrap the server uses, leaving one it cannot open: refused.
expect_fail "remove-wrap of the server's only wrap" 'removes the wrap in use' \
  "$KEYMGR" remove-wrap rbd:rbd/vol --id 0 --keyfile c.kek --control "$tmp/a.ctl"
[ "$("$KEYMGR" list-wraps rbd:rbd/vol --json | jq length)" = 2 ] || fail "a refused remove-wrap --control changed the wraps"
"$KEYMGR" remove-wrap rbd:rbd/vol --id "$idc" --keyfile vol.kek --control "$tmp/a.ctl" >rm.out 2>&1 ||
  { cat rm.out; fail "remove-wrap --control of the served rbd: volume"; }
[ "$("$KEYMGR" list-wraps rbd:rbd/vol --json | jq -r '.[].id')" = 0 ] || fail "remove-wrap --control: wraps are $("$KEYMGR" list-wraps rbd:rbd/vol --json | jq -c '[.[].id]')"
pass "add-wrap, rewrap and remove-wrap of a served rbd: volume committed by its server; one that leaves the server no wrap refused"

# rotate-dek --control, limited to 4 MiB/s so that a client writes through it.
cat >writer.py <<'EOS'
import os, random, sys
import nbd
uri, stop, model = sys.argv[1:4]
h = nbd.NBD(); h.connect_uri(uri)
f = open(model, 'r+b'); n = 0
while not os.path.exists(stop) or n < 50:
    off = random.randrange(1, 2048) * 4096
    data = os.urandom(4096)
    h.pwrite(data, off)
    f.seek(off); f.write(data); n += 1
h.flush(); f.close()
print(n)
EOS
"$PY" writer.py "$(uri a)" stopw model.bin >writer.out 2>&1 &
wr=$!
cleanup_hooks+=("touch $tmp/stopw")
kcv0=$("$KEYMGR" info rbd:rbd/vol --json | jq -r .volume.kcv)
"$KEYMGR" rotate-dek rbd:rbd/vol --keyfile vol.kek --control "$tmp/a.ctl" --rate 4 >rot.out 2>&1 ||
  { cat rot.out; tail -n 10 a.log; fail "rotate-dek --control of the served rbd: volume"; }
touch stopw
wait $wr || { cat writer.out; fail "the client writing during the rotation failed"; }
grep -q 'DEK rotated online' rot.out || { cat rot.out; fail "rotate-dek --control did not report the rotation"; }
[ "$(rot_state a)" = done ] || fail "the server's rotation is $(rot_state a), not done"
nbdcopy "$(uri a)" - | cmp - model.bin || fail "after rotate-dek --control the volume does not read back what was written"
"$KEYMGR" info rbd:rbd/vol --json | jq -e --arg k "$kcv0" '.rotation == null and .volume.kcv != $k' >/dev/null ||
  fail "after rotate-dek --control the header records a rotation, or the same DEK"
pass "rotate-dek --control of a served rbd: volume while a client wrote $(cat writer.out) blocks: every write reads back"

# --- kill -9 of the server; takeover; every acknowledged write present -------------
"$PY" "$FUA_WRITER" write "$(uri a)" $MIB 256 stop1 w1.log --stride 37 --until-gone >w1.out 2>&1 &
w1=$!
cleanup_hooks+=("touch $tmp/stop1")
t0=$(now_ms)
until [ "$(cat w1.log 2>/dev/null | grep -c '^ack')" -ge 100 ]; do
  kill -0 $w1 2>/dev/null || { cat w1.out; fail "the FUA writer stopped"; }
  [ $(($(now_ms) - t0)) -lt 20000 ] || fail "the FUA writer got no 100 acknowledgements in 20 s"
  sleep 0.02
done
kill -9 "$pid_a"
wait $w1 || { cat w1.out; fail "the FUA writer failed"; }
touch stop1
# takeover=true breaks the dead holder's lock at once, not after its watch
# expires (which a server without takeover waits for).
t0=$(now_ms)
server b rbd:rbd/vol keyfile=vol.kek takeover=true
took=$(($(now_ms) - t0))
grep "taking over the exclusive lock from" b.log | grep -qF "$owner_a" ||
  { cat b.log; fail "takeover=true after kill -9 did not break $owner_a's lock itself"; }
pass "takeover=true broke the killed holder's lock itself; serving after $took ms"
owner_b=$(lock_owners)
[ -n "$owner_b" ] && [ "$owner_b" != "$owner_a" ] || fail "after takeover the lock is held by '$owner_b'"
blocklisted "$owner_a" || fail "after the takeover the killed server ($owner_a) is not blocklisted"
"$PY" "$FUA_WRITER" verify "$(uri b)" $MIB 256 w1.log --stride 37 --gone-ok >v1.out 2>&1 ||
  { cat v1.out; fail "after kill -9 and takeover an acknowledged write is lost"; }
pass "kill -9, takeover=true: serves, the dead holder blocklisted; $(cat v1.out)"
nbdsh -u "$(uri b)" -c "assert h.pread(4096, 0) == b'A' * 4096" || fail "the first FUA write is lost"

# --- a partitioned host: stopped, taken over, continued; its writes fail -----------
# The client of server b writes EARLY (FUA, acknowledged) and waits; b is
# stopped; c takes over and writes SECOND; b is continued and the client
# writes LATE (FUA, then plain) and flushes.
cat >late.py <<'EOF'
import os, sys, time
import nbd
uri, ready, go, out = sys.argv[1:5]
h = nbd.NBD()
h.connect_uri(uri)
h.pwrite(b'EARLY...' * 512, 2 * 1048576, nbd.CMD_FLAG_FUA)
open(ready, 'w').close()
while not os.path.exists(go):
    time.sleep(0.01)
with open(out, 'w') as f:
    for what, op in (("write", lambda: h.pwrite(b'LATE....' * 512, 3 * 1048576, nbd.CMD_FLAG_FUA)),
                     ("write", lambda: h.pwrite(b'LATE....' * 512, 4 * 1048576, 0)),
                     ("flush", lambda: h.flush())):
        try:
            op()
            f.write("%s ok\n" % what)
        except nbd.Error as e:
            f.write("%s failed %s\n" % (what, e.errnum))
EOF
"$PY" late.py "$(uri b)" ready go late.out >late.log 2>&1 &
late=$!
cleanup_hooks+=("kill $late 2>/dev/null")
t0=$(now_ms)
until [ -e ready ]; do
  kill -0 $late 2>/dev/null || { cat late.log; fail "the client of b stopped"; }
  [ $(($(now_ms) - t0)) -lt 20000 ] || fail "the client of b wrote nothing in 20 s"
  sleep 0.02
done
kill -STOP "$pid_b"
server c rbd:rbd/vol keyfile=vol.kek takeover=true
owner_c=$(lock_owners)
[ -n "$owner_c" ] && [ "$owner_c" != "$owner_b" ] || fail "after the second takeover the lock is held by '$owner_c'"
blocklisted "$owner_b" || fail "after the takeover the stopped server ($owner_b) is not blocklisted"
nbdsh -u "$(uri c)" -c "
h.pwrite(b'SECOND..' * 1024, 3 * 1048576, nbd.CMD_FLAG_FUA)
h.pwrite(b'SECOND..' * 512, 4 * 1048576)
h.flush()" || fail "writing through the server that took over"
kill -CONT "$pid_b"
touch go
wait $late || { cat late.log; fail "the client of the fenced server failed"; }
# The FUA write and the flush must fail; the plain write may be acknowledged
# (librbd's default writearound cache completes it at once), and must not be
# in the image either (checked below).
[ "$(sed -n 1p late.out | cut -d' ' -f1,2)" = "write failed" ] && grep -q '^flush failed' late.out ||
  { cat late.out; tail -n 20 b.log; fail "the fenced server acknowledged a late write or flush"; }
pass "the fenced server's late writes and flush failed: $(tr '\n' ';' <late.out)"
cat >check.py <<'EOS'
assert h.pread(4096, 2 * 1048576) == b'EARLY...' * 512, 'the EARLY write (acknowledged before the partition) is lost'
assert h.pread(8192, 3 * 1048576) == b'SECOND..' * 1024, "the second server's write at 3 MiB is not intact"
assert h.pread(4096, 4 * 1048576) == b'SECOND..' * 512, "the second server's write at 4 MiB is not intact"
assert h.pread(4096, 0) == b'A' * 4096
EOS
nbdsh -u "$(uri c)" -c "exec(open('check.py').read())" || fail "after the fenced writes, the data through the second server"
kill -9 "$pid_b"
pass "the second server's data and the acknowledged writes are intact"

# --- takeover from a live holder: named, fenced ---------------------------------------
# c serves (alive, not stopped): d with takeover=true warns naming c's
# client, takes the lock, and c's next FUA write fails.
server d rbd:rbd/vol keyfile=vol.kek takeover=true
grep -F "$owner_c" d.log | grep -qi 'taking over' ||
  { cat d.log; fail "taking over from a live holder does not warn naming it ($owner_c)"; }
[ "$(lock_owners)" != "$owner_c" ] || fail "after takeover=true the lock is still $owner_c's"
blocklisted "$owner_c" || fail "the live holder ($owner_c) is not blocklisted by the takeover"
! nbdsh -u "$(uri c)" -c "h.pwrite(b'LATE....' * 512, 3 * 1048576, nbd.CMD_FLAG_FUA)" 2>c-late.err ||
  fail "the taken-over live server acknowledged a FUA write"
nbdsh -u "$(uri d)" -c "exec(open('check.py').read())" || fail "after the live takeover, the data through d"
pass "takeover=true from a live holder: $(grep -m1 -F "$owner_c" d.log); its FUA write then failed"
kill -TERM "$pid_d" "$pid_c"
wait "$pid_d" 2>/dev/null || true
wait "$pid_c" 2>/dev/null || true
[ -z "$(lock_owners)" ] || fail "a stopped server left the lock held by $(lock_owners)"
rserve rbd:rbd/vol keyfile=vol.kek -- nbdsh -u '$uri' -c "exec(open('check.py').read())" ||
  fail "the data through a fresh server"
pass "a fresh server (no takeover) opens the volume and reads every acknowledged write"
