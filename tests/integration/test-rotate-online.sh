#!/bin/bash
# DEK rotation while the volume is served (issue 12), with the real nbdkit:
# - a 256 MiB volume under fio (nbd engine, crc32c verify: random writes and
#   random reads of 4 KiB and 1 MiB, QD 16, on its first 64 MiB) and a
#   writer of ours (shadow-writer.py: random writes into the next 64 MiB,
#   read back against a shadow copy of the whole volume) while
#   `rotate-dek --control` runs to the end: no verify error, the whole
#   volume's sha256 equals the shadow, before and after a restart; no
#   rotation state nor old key left; the key file still opens it;
# - --rate 50 on an idle volume: the rate measured from status polls is
#   within 20% of 50 MiB/s;
# - --detach returns while the rotation runs and `status` shows it
#   progressing; --pause stops it (done does not move while clients do I/O),
#   --resume and a second rotate-dek --control follow it to the end (the same
#   rotation, not a new one); --rate changes the limit of a running rotation;
# - after the key was locked for a while, the rotation goes on at its rate
#   (no burst to catch up);
# - a 512-byte-sector volume whose size is no multiple of the step, under
#   the shadow writer (read-modify-write of partial sectors);
# - a server stopped mid-rotation: rotate=manual serves it without rotating,
#   rotate-rate= sets the rate of the continued rotation, and rotate-dek
#   --control without a key continues it;
# - each refusal and missing-secret message: rotate-dek without --control on
#   a served volume, bad --rate values, --pause with no rotation, a
#   passphrase wrap without --passphrase-file, and --drop-wrap.
# States are read by polling `cryptvol-keymgr status --control`, never by
# sleeping.
source "$(dirname "$0")/functions.sh"
source "$CV_SRCDIR/tests/integration/keywatch-lib.sh"
requires nbdkit nbdcopy nbdsh fio jq
fio --enghelp 2>/dev/null | grep -qw nbd || { echo "SKIP: this fio has no nbd engine"; exit 77; }

MIB=1048576
SIZE=256          # MiB, the volume
FIO_LEN=64        # MiB at 0: fio's region
WR_OFF=64 WR_LEN=64 # MiB: the shadow writer's region; the rest is not written
HARD=60           # s: how long any rotation here may take at all

rot_json () { status_json | jq -c '.rotation // {}'; }
rot_state () { status_json | jq -r '.rotation.state // "none"'; }

# wait_rot WANT: poll until the rotation's state is WANT; fails on "failed"
# (unless wanted) and past $HARD s.
wait_rot () {
  local want=$1 t0 st
  t0=$(now_ms)
  while :; do
    st=$(rot_state 2>/dev/null) || st="(status failed)"
    [ "$st" = "$want" ] && return 0
    [ "$st" = failed ] && fail "the rotation failed: $(rot_json)"
    [ $(( $(now_ms) - t0 )) -lt $((HARD * 1000)) ] ||
      fail "the rotation is \"$st\", not \"$want\", after $HARD s: $(rot_json)"
    sleep 0.05
  done
}

# volume_sum: the sha256 of the whole served volume.
volume_sum () { nbdcopy "$URI" - | sha256sum | cut -d' ' -f1; }
file_sum () { sha256sum < "$1" | cut -d' ' -f1; }

# no_rotation_left VOLUME KEYFILE: info shows no rotation, neither header
# copy holds the sealed old DEK, the journal record is cleared, and the key
# file opens the volume.
no_rotation_left () {
  "$KEYMGR" info "$1" --json >info.json
  jq -e '.volume | has("rotation") | not' info.json >/dev/null ||
    { jq .volume info.json; fail "$1: info still shows a rotation"; }
  ! head -c 131072 "$1" | grep -aq old_dek || fail "$1: a header copy still holds old_dek"
  ! head -c $((131072 + 4096)) "$1" | tail -c 4096 | grep -aq CVROTJ01 ||
    fail "$1: the rotation journal record is still there"
  "$KEYMGR" verify "$1" --keyfile "$2" >/dev/null || fail "$1: $2 no longer opens it"
}

# --- the volume, pre-filled; its shadow --------------------------------------
new_volume vol ${SIZE}M
head -c ${SIZE}M /dev/urandom >shadow
start_nbd vol keyfile=vol.kek
nbdcopy shadow "$URI"

# --- fio + the shadow writer while rotate-dek --control runs to the end ------
# fio: "writer" writes every block of the region once (random order, random
# map) with crc32c headers, verified as it goes (verify_backlog) and at its
# end; "reader" reads at random in the same region meanwhile and stops with
# it (exitall). The rates make fio last about 8 s, longer than the rotation.
fio_job () {
  cat <<EOF
[global]
ioengine=nbd
uri=$URI
offset=0
size=${FIO_LEN}m
bssplit=4k/50:1m/50
iodepth=16
randseed=4242
[writer]
rw=randwrite
verify=crc32c
verify_fatal=1
$(printf '%s\n' "$@")
[reader]
rw=randread
time_based
runtime=300
rate=16m
EOF
}
fio_job verify_backlog=64 rate=,8m exitall >rw.fio
fio_job verify_only=1 | sed '/^\[reader\]/,$d' >verify.fio

# check_fio LOG WHAT: fio's jobs ran without errors or verify failures.
check_fio () {
  ! grep -qiE 'verify.*(bad|failed)|bad magic|crc32c: verify failed' "$1" ||
    { cat "$1"; fail "$2: fio's verify failed"; }
  [ "$(grep -c 'err= 0' "$1")" = "$3" ] || { cat "$1"; fail "$2: not $3 clean fio jobs"; }
}

fio rw.fio >fio.log 2>&1 &
fio_pid=$!
cleanup_hooks+=("kill $fio_pid 2>/dev/null")
"$PY" "$CV_SRCDIR/tests/integration/shadow-writer.py" "$URI" shadow \
  $((WR_OFF * MIB)) $((WR_LEN * MIB)) stop ready >writer.log 2>&1 &
writer_pid=$!
cleanup_hooks+=("touch $tmp/stop")
# Both clients are at work before the rotation starts.
written0=$(status_json | jq .bytes.written)
t0=$(now_ms)
until [ -e ready ] && [ "$(status_json | jq .bytes.written)" -gt $((written0 + 16 * MIB)) ]; do
  kill -0 $fio_pid 2>/dev/null || { cat fio.log; fail "fio ended before it wrote"; }
  kill -0 $writer_pid 2>/dev/null || { cat writer.log; fail "the shadow writer stopped"; }
  [ $(( $(now_ms) - t0 )) -lt 30000 ] || fail "the clients wrote nothing in 30 s"
  sleep 0.05
done
"$KEYMGR" rotate-dek vol --control "$CTL" --keyfile vol.kek --rate 50 >rot.out 2>&1 &
rot_pid=$!
cleanup_hooks+=("kill $rot_pid 2>/dev/null")
# The rotation makes progress while fio still runs (the overlap is checked,
# not assumed).
t0=$(now_ms)
while :; do
  r=$(rot_json)
  st=$(jq -r '.state // "none"' <<<"$r") done=$(jq -r '.done // 0' <<<"$r")
  [ "$st" = running ] && [ "$done" -gt 0 ] && break
  [ "$st" = failed ] && fail "the rotation failed: $r"
  kill -0 $rot_pid 2>/dev/null || { cat rot.out; fail "rotate-dek ended before the rotation ran: $r"; }
  [ $(( $(now_ms) - t0 )) -lt $((HARD * 1000)) ] || fail "the rotation did not start: $r"
  sleep 0.05
done
kill -0 $fio_pid 2>/dev/null || { cat fio.log; fail "fio ended before the rotation made progress: no overlap"; }
rot_id=$(jq -r .id <<<"$r")
wait $rot_pid || { cat rot.out; fail "rotate-dek --control failed"; }
fio_at_end=ended; kill -0 $fio_pid 2>/dev/null && fio_at_end=running
[ "$(rot_state)" = done ] || fail "rotate-dek returned, the rotation is $(rot_json)"
touch stop
wait $writer_pid || { cat writer.log; fail "the shadow writer read data that differs from its shadow"; }
wait $fio_pid || { cat fio.log; fail "fio failed"; }
check_fio fio.log "fio during the rotation" 2
pass "rotation $rot_id to the end under fio (QD 16, 4K/1M, crc32c: no verify error) and the writer's$(tail -n 1 writer.log | cut -d: -f2-); fio was $fio_at_end when it ended"

# The whole volume: fio's region as fio verified it, the rest as the shadow.
check_whole () {
  fio verify.fio >verify.log 2>&1 || { cat verify.log; fail "$1: fio verify_only failed"; }
  check_fio verify.log "$1: fio verify_only" 1
  nbdcopy "$URI" volume.img
  dd if=volume.img of=shadow bs=1M count=$FIO_LEN conv=notrunc status=none
  [ "$(file_sum volume.img)" = "$(file_sum shadow)" ] ||
    fail "$1: the volume's sha256 differs from the shadow's (first difference at byte $(cmp volume.img shadow | awk '{print $5}'))"
  rm -f volume.img
  pass "$1: fio's region verified by fio, the whole volume's sha256 equals the shadow's"
}
check_whole "after the rotation"
no_rotation_left vol vol.kek
pass "after the rotation: no rotation state, no old DEK in the header, no journal record, the key file opens"
stop_nbd
start_nbd vol keyfile=vol.kek
[ "$(rot_state)" = none ] || fail "after a restart the server shows a rotation: $(rot_json)"
check_whole "after a restart"
sum=$(file_sum shadow)

# --- --rate 50, on an idle volume ---------------------------------------------
# Samples "ms done state rate limit" every 0.1 s until done; the rate is
# taken between the first sample past the first step and the last one before
# the end; the rate status reports, as the mean of its samples after 2 s.
"$KEYMGR" rotate-dek vol --control "$CTL" --keyfile vol.kek --rate 50 --detach >rot.out 2>&1 ||
  { cat rot.out; fail "rotate-dek --rate 50 --detach"; }
t0=$(now_ms)
: >samples
while :; do
  r=$(rot_json)
  echo "$(now_ms) $(jq -r '"\(.done) \(.state) \(.rate_mib_s) \(.limit_mib_s)"' <<<"$r")" >>samples
  st=$(jq -r .state <<<"$r")
  [ "$st" = done ] && break
  [ "$st" = running ] || fail "the rotation at --rate 50 is $r"
  [ $(( $(now_ms) - t0 )) -lt $((HARD * 1000)) ] || fail "the rotation at --rate 50 did not end"
  sleep 0.1
done
read -r rate reported limit < <(awk -v total=$((SIZE * MIB)) '
  $3 == "running" && $2 > 0 && $2 < total {
    if (!n++) { t1 = $1; d1 = $2 }
    t2 = $1; d2 = $2; if ($1 - t1 >= 2000) { rep += $4; m++ }; lim = $5 }
  END { if (t2 > t1 && m) printf "%.1f %.1f %s\n", (d2 - d1) / 1048576 / ((t2 - t1) / 1000), rep / m, lim
        else print "none none none" }' samples)
[ "$rate" != none ] || { cat samples; fail "too few samples of the rotation at --rate 50"; }
awk -v r="$rate" 'BEGIN { exit !(r >= 40 && r <= 60) }' ||
  { cat samples; fail "--rate 50: the rotation ran at $rate MiB/s"; }
awk -v r="$reported" -v l="$limit" 'BEGIN { exit !(r >= 40 && r <= 60 && l == 50) }' ||
  { cat samples; fail "--rate 50: status reports rate $reported, limit $limit"; }
[ "$(volume_sum)" = "$sum" ] || fail "the data changed in the rotation at --rate 50"
pass "--rate 50: measured $rate MiB/s (status: $reported MiB/s, limit $limit), data unchanged"

# --- --detach, pause, resume, --rate while running, follow --------------------
t0=$(now_ms)
"$KEYMGR" rotate-dek vol --control "$CTL" --keyfile vol.kek --rate 40 --detach >rot.out 2>&1 ||
  { cat rot.out; fail "rotate-dek --detach"; }
ms=$(( $(now_ms) - t0 ))
r=$(rot_json)
jq -e --argjson total $((SIZE * MIB)) '.state == "running" and .done < .total and .total == $total
  and (.id | length) == 16 and (.started | test("Z$")) and .limit_mib_s == 40
  and (.eta_s | type) == "number" and (.journal == "clean" or .journal == "step")' <<<"$r" >/dev/null ||
  fail "after rotate-dek --detach ($ms ms) the status is $r"
rot_id=$(jq -r .id <<<"$r") done0=$(jq -r .done <<<"$r")
t0=$(now_ms)
until [ "$(rot_json | jq .done)" -gt "$done0" ]; do
  [ $(( $(now_ms) - t0 )) -lt 10000 ] || fail "status shows no progress in 10 s: $(rot_json)"
  sleep 0.05
done
"$KEYMGR" status --control "$CTL" >st.txt
grep -qi rotat st.txt || { cat st.txt; fail "status (text) does not show the rotation"; }
pass "--detach returned in $ms ms with the rotation running; status shows it progressing"

"$KEYMGR" rotate-dek vol --control "$CTL" --pause >pause.out 2>&1 || { cat pause.out; fail "rotate-dek --pause"; }
t0=$(now_ms)
until r=$(rot_json) && jq -e '.state == "paused" and .journal == "clean"' <<<"$r" >/dev/null; do
  [ $(( $(now_ms) - t0 )) -lt 10000 ] || fail "not paused 10 s after --pause: $r"
  sleep 0.05
done
done1=$(jq .done <<<"$r")
[ "$done1" -lt $((SIZE * MIB)) ] || fail "the rotation ended before the pause took effect"
# Clients are served while it is paused, and nothing moves: at the limit
# (40 MiB/s) a second of running would move done by 40 MiB.
nbdsh -u "$URI" -c "
import time
t = time.monotonic() + 1
while time.monotonic() < t:
    for off in range(0, $SIZE << 20, 32 << 20):
        h.pwrite(h.pread(65536, off), off)
" || fail "clients are not served while the rotation is paused"
r=$(rot_json)
jq -e --argjson d "$done1" '.state == "paused" and .done == $d' <<<"$r" >/dev/null ||
  fail "paused at $done1 bytes, a second of client I/O later: $r"
pass "--pause: paused at $done1 of $((SIZE * MIB)) bytes; done unchanged over 1 s of client I/O"

"$KEYMGR" rotate-dek vol --control "$CTL" --resume >out 2>&1 || { cat out; fail "rotate-dek --resume"; }
"$KEYMGR" rotate-dek vol --control "$CTL" --rate 60 --detach >out 2>&1 || { cat out; fail "rotate-dek --rate 60 --detach (running)"; }
r=$(rot_json)
jq -e --arg id "$rot_id" '.state == "running" and .id == $id and .limit_mib_s == 60' <<<"$r" >/dev/null ||
  fail "after --resume and --rate 60: $r"
# rotate-dek --control while this one runs follows it: same id, to the end.
"$KEYMGR" rotate-dek vol --control "$CTL" --keyfile vol.kek >follow.out 2>&1 ||
  { cat follow.out; fail "rotate-dek --control with a rotation running"; }
r=$(rot_json)
jq -e --arg id "$rot_id" '.state == "done" and .id == $id and .done == .total' <<<"$r" >/dev/null ||
  fail "a second rotate-dek --control did not follow rotation $rot_id to its end: $r"
[ "$(volume_sum)" = "$sum" ] || fail "the data changed in the paused and resumed rotation"
no_rotation_left vol vol.kek
pass "--resume, --rate 60 while running, and a second rotate-dek --control followed rotation $rot_id to its end; data unchanged"

# --- --rate holds after the rotation waited for a locked key -----------------------
# While the key is locked the rotation waits; once unlocked it goes on at
# its rate, without catching up for the time it waited. Measured over 2 s
# after the unlock: at least a step (8 MiB), at most 20 MiB/s + 20% + a step.
"$KEYMGR" rotate-dek vol --control "$CTL" --keyfile vol.kek --rate 20 --detach >rot.out 2>&1 ||
  { cat rot.out; fail "rotate-dek --rate 20 --detach"; }
"$KEYMGR" lock --control "$CTL" >/dev/null
wait_rot waiting
held_ms=5000   # how long the key stays locked: a measurement, not a synchronisation
t0=$(now_ms); until [ $(( $(now_ms) - t0 )) -ge $held_ms ]; do sleep 0.1; done
"$KEYMGR" unlock --control "$CTL" >/dev/null
t0=$(now_ms) d0=$(rot_json | jq .done)
until [ $(( $(now_ms) - t0 )) -ge 2000 ]; do sleep 0.1; done
d1=$(rot_json | jq .done) t1=$(now_ms)
after=$(awk -v d=$((d1 - d0)) -v ms=$((t1 - t0)) 'BEGIN { printf "%.1f", d / 1048576 / (ms / 1000) }')
if [ $((d1 - d0)) -lt $((8 * MIB)) ]; then
  fail_later "--rate 20: after $((held_ms / 1000)) s locked, no step in the 2 s after the unlock ($(rot_json))"
elif [ $((d1 - d0)) -le $(( (24 * (t1 - t0) / 1000 + 8) * MIB )) ]; then
  pass "--rate 20 after $((held_ms / 1000)) s locked: $after MiB/s over the 2 s after the unlock"
else
  fail_later "--rate 20: after $((held_ms / 1000)) s locked, the rotation ran $((( d1 - d0) / MIB)) MiB in $((t1 - t0)) ms ($after MiB/s) once unlocked"
fi
"$KEYMGR" rotate-dek vol --control "$CTL" --rate 0 --detach >/dev/null
wait_rot done
[ "$(volume_sum)" = "$sum" ] || fail "the data changed in the rotation that waited for a locked key"

# --- refusals --------------------------------------------------------------------
expect_fail "rotate-dek without --control on a served volume" "[-]-control" \
  "$KEYMGR" rotate-dek vol --keyfile vol.kek
[ "$(volume_sum)" = "$sum" ] || fail "a refused rotate-dek changed the data"
for bad in -1 abc nan inf 1e999 ""; do
  expect_fail "--rate '$bad'" "[-]-rate" \
    "$KEYMGR" rotate-dek vol --control "$CTL" --keyfile vol.kek --rate "$bad"
done
[ "$(rot_state)" = done ] || fail "a refused --rate changed the rotation: $(rot_json)"
expect_fail "--pause with no rotation running" "rotation" \
  "$KEYMGR" rotate-dek vol --control "$CTL" --pause
stop_nbd
start_nbd vol keyfile=vol.kek
expect_fail "--resume with no rotation recorded" "rotation" \
  "$KEYMGR" rotate-dek vol --control "$CTL" --resume
stop_nbd

# --- 512-byte sectors, a size that is no multiple of the step -------------------
# The shadow writer over the whole volume (a quarter of its writes at any
# byte: read-modify-write of 512-byte sectors) while the rotation runs in
# 1 MiB steps, the last one 4 KiB.
new_volume svol 65540K --sector-size 512
head -c 65540K /dev/urandom >sshadow
start_nbd svol keyfile=svol.kek
nbdcopy sshadow "$URI"
rm -f stop ready
"$PY" "$CV_SRCDIR/tests/integration/shadow-writer.py" "$URI" sshadow 0 $((65540 * 1024)) stop ready 2 \
  >writer.log 2>&1 &
writer_pid=$!
t0=$(now_ms)
until [ -e ready ]; do
  kill -0 $writer_pid 2>/dev/null || { cat writer.log; fail "the shadow writer stopped"; }
  [ $(( $(now_ms) - t0 )) -lt 30000 ] || fail "the shadow writer wrote nothing in 30 s"
  sleep 0.05
done
"$KEYMGR" rotate-dek svol --control "$CTL" --keyfile svol.kek --hotzone 1M --rate 32 >rot.out 2>&1 ||
  { cat rot.out; fail "rotate-dek --control on a 512-byte-sector volume"; }
kill -0 $writer_pid 2>/dev/null || { cat writer.log; fail "the shadow writer ended before the rotation"; }
touch stop
wait $writer_pid || { cat writer.log; fail "512-byte sectors: a read differs from the shadow"; }
[ "$(rot_state)" = done ] || fail "rotate-dek returned, the rotation is $(rot_json)"
[ "$(volume_sum)" = "$(file_sum sshadow)" ] || fail "512-byte sectors: the volume's sha256 differs from the shadow's"
stop_nbd
no_rotation_left svol svol.kek
pass "512-byte sectors, 64 MiB + 4 KiB in 1 MiB steps: the whole volume equals the shadow after the writer's$(tail -n 1 writer.log | cut -d: -f2-)"

# --- a server stopped mid-rotation: rotate=manual, rotate-rate=, continue ------
# rotate=manual serves the volume mid-rotation without rotating ("idle");
# rotate=auto with rotate-rate= continues at that rate; rotate-dek --control
# with no key continues it on a rotate=manual server and follows it.
start_nbd svol keyfile=svol.kek
"$KEYMGR" rotate-dek svol --control "$CTL" --keyfile svol.kek --hotzone 1M --rate 16 --detach >rot.out 2>&1 ||
  { cat rot.out; fail "rotate-dek --detach (svol)"; }
rot_id=$(rot_json | jq -r .id)
t0=$(now_ms)
until [ "$(rot_json | jq .done)" -gt 0 ]; do
  [ $(( $(now_ms) - t0 )) -lt 10000 ] || fail "no progress in 10 s: $(rot_json)"
  sleep 0.05
done
stop_nbd
boundary=$("$KEYMGR" info svol --json | jq .volume.rotation.boundary)
[ "$boundary" -gt 0 ] && [ "$boundary" -lt $((65540 * 1024)) ] ||
  fail "stopped mid-rotation, the header's boundary is $boundary"
start_nbd svol keyfile=svol.kek rotate=manual
r=$(rot_json)
jq -e --arg id "$rot_id" --argjson b "$boundary" '.state == "idle" and .id == $id and .done == $b' <<<"$r" >/dev/null ||
  fail "rotate=manual, opened mid-rotation at $boundary: $r"
[ "$(volume_sum)" = "$(file_sum sshadow)" ] || fail "mid-rotation (rotate=manual) the data differs"
r=$(rot_json)
jq -e --argjson b "$boundary" '.state == "idle" and .done == $b' <<<"$r" >/dev/null ||
  fail "rotate=manual: the rotation moved while the whole volume was read: $r"
stop_nbd
start_nbd svol keyfile=svol.kek rotate-rate=16
r=$(rot_json)
jq -e --arg id "$rot_id" '(.state == "running" or .state == "done") and .id == $id and .limit_mib_s == 16' <<<"$r" >/dev/null ||
  fail "rotate=auto rotate-rate=16, opened mid-rotation: $r"
stop_nbd
start_nbd svol keyfile=svol.kek rotate=manual
"$KEYMGR" rotate-dek svol --control "$CTL" >rot.out 2>&1 </dev/null ||
  { cat rot.out; fail "rotate-dek --control (no key) on a rotate=manual server mid-rotation"; }
r=$(rot_json)
jq -e --arg id "$rot_id" '.state == "done" and .id == $id' <<<"$r" >/dev/null ||
  fail "rotate-dek --control (no key) did not continue rotation $rot_id to its end: $r"
[ "$(volume_sum)" = "$(file_sum sshadow)" ] || fail "after the continued rotation the data differs"
stop_nbd
no_rotation_left svol svol.kek
pass "stopped mid-rotation at $boundary: rotate=manual serves it idle, rotate-rate=16 continues at 16 MiB/s, rotate-dek --control (no key) continues it to the end"

# --- wraps that need a secret: a passphrase wrap -------------------------------
"$KEYMGR" genkey b.kek >/dev/null
printf 'online rotation passphrase' >pass
new_volume pvol 16M --wrap passphrase --passphrase-file pass "${FAST_KDF[@]}"
"$KEYMGR" add-wrap pvol --wrap file:b.kek --keyfile pvol.kek >/dev/null
jq -e '[.wraps[] | [.id, .type]] == [[0, "file"], [1, "passphrase"], [2, "file"]]' \
  <("$KEYMGR" info pvol --json) >/dev/null || fail "pvol's wraps: $("$KEYMGR" list-wraps pvol)"
head -c 16M /dev/urandom >pdata
start_nbd pvol keyfile=pvol.kek
nbdcopy pdata "$URI"
psum=$(file_sum pdata)
expect_fail "a passphrase wrap without --passphrase-file" "wrap 1" \
  "$KEYMGR" rotate-dek pvol --control "$CTL" --keyfile pvol.kek </dev/null
grep -q -- "--passphrase-file" err && grep -q -- "--drop-wrap" err ||
  { cat err; fail "the missing-secret message does not name --passphrase-file and --drop-wrap"; }
[ "$(rot_state)" = none ] && "$KEYMGR" info pvol --json | jq -e '.volume | has("rotation") | not' >/dev/null ||
  fail "a refused rotate-dek left a rotation: $(rot_json)"
"$KEYMGR" rotate-dek pvol --control "$CTL" --keyfile pvol.kek --drop-wrap 1 </dev/null >drop.out 2>&1 ||
  { cat drop.out; fail "rotate-dek --drop-wrap 1"; }
grep -qiE "wrap 1.*(removed|dropped)|(removed|dropped).*wrap 1" drop.out ||
  { cat drop.out; fail "rotate-dek --drop-wrap 1 does not say the wrap was removed"; }
[ "$(rot_state)" = done ] || fail "rotate-dek --drop-wrap returned, the rotation is $(rot_json)"
[ "$(volume_sum)" = "$psum" ] || fail "the data changed in the rotation with --drop-wrap"
stop_nbd
jq -e '[.wraps[] | .type] == ["file", "file"]' <("$KEYMGR" info pvol --json) >/dev/null ||
  fail "after --drop-wrap 1 the wraps are: $("$KEYMGR" list-wraps pvol)"
no_rotation_left pvol pvol.kek
no_rotation_left pvol b.kek
for key in pvol.kek b.kek; do
  [ "$(serve pvol keyfile=$key -- nbdcopy '$uri' - | sha256sum | cut -d' ' -f1)" = "$psum" ] ||
    fail "after the rotation $key does not read the data back"
done
expect_fail "the dropped passphrase" "cannot unlock" \
  nbdkit -U - "$PLUGIN" pvol passphrase=+pass --run true
pass "--drop-wrap 1: said so, the passphrase wrap is gone, both key files open the rotated volume"
finish
