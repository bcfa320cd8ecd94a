#!/bin/bash
# The key watch against the local KMS, through the real nbdkit (key-check=1,
# key-grace=4): the customer's key decisions reach a running volume.
# DisableKey -> reads and writes fail with EPERM; EnableKey -> served again;
# data written before reads back identical, and a client writing FUA blocks
# all along loses no acknowledged write. ScheduleKeyDeletion -> revoked;
# CancelKeyDeletion + EnableKey -> resumed. KMS stopped -> served through
# key-grace, then refused; KMS back on the same port -> resumed. 30% of KMS
# calls failing (throttling, 500s, dropped connections) -> no revocation, no
# failed request. resume=false: revoked until restart. on-unreachable=serve:
# served past key-grace. Key deleted -> stays revoked.
#
# Bounds: 3 s from the KMS call to the state change is the issue's bound
# (key-check=1); states are read by polling `cryptvol-keymgr status
# --control`. Each figure is printed.
source "$(dirname "$0")/functions.sh"
source "$CV_SRCDIR/tests/integration/keywatch-lib.sh"
requires nbdkit nbdsh curl jq openssl

BOUND=3   # the issue's bound, seconds, at key-check=1
HARD=30   # how long to wait for a state at all before failing

start_kms
key1=$(new_key) key2=$(new_key)
KP=(kms-endpoint="$EP" ca-bundle="$CA" key-check=1 key-grace=4)
"$KEYMGR" create vol --size 16M --wrap "kms:$(key_arn "$key1")" \
  --kms-endpoint "$EP" --ca-bundle "$CA" >/dev/null
head -c 1M /dev/urandom >before

start_nbd vol "${KP[@]}"
nbdsh -u "$URI" -c "h.pwrite(open('before', 'rb').read(), 0)"
checks_after 1
[ "$(key_state)" = unlocked ] || fail "not unlocked at start: $(status_json)"
status_json >st.json
jq -e '.ok and .wrap.type == "kms" and .wrap.id == 0 and .last_check.outcome == "ok"
  and (.last_check.request_id | length > 0) and .requests.served > 0' st.json >/dev/null ||
  { cat st.json; fail "status after a check does not show the kms wrap, outcome ok, its request id, requests served"; }
pass "served with key-check=1; status: $(jq -c '{state, wrap, last_check}' st.json)"

# --- DisableKey / EnableKey, with a FUA writer running through both ----------
# The writer writes blocks 1 MiB..14 MiB (before and 15 MiB stay apart).
rm -f stop
"$PY" "$FUA_WRITER" write "$URI" 1048576 3328 stop fua.log 2>fua.err &
writer=$!
cleanup_hooks+=("touch $tmp/stop; wait $writer")
wait_log () {  # PATTERN WHAT: the writer's log gets a line matching PATTERN
  local t0 _; t0=$(now_ms)
  while ! grep -q "$1" fua.log 2>/dev/null; do
    kill -0 "$writer" 2>/dev/null || { cat fua.err; fail "the FUA writer died"; }
    [ $(( $(now_ms) - t0 )) -lt $(( HARD * 1000 )) ] || fail "the FUA writer: no $2 in $HARD s"
    sleep 0.05
  done
}
wait_log '^ack' "acknowledged write"
t0=$(now_ms); disable_key "$key1"
ms=$(wait_state revoked "$t0" "$HARD")
io_refused
within "DisableKey -> revoked, reads and writes fail with EPERM" "$ms" "$BOUND"
jq -e '.cause | test("disabled|DisabledException"; "i")' <(status_json) >/dev/null ||
  fail_later "status does not say the key is disabled: cause \"$(status_json | jq -r .cause)\""
rid=$(admin "$EP/_admin/calls" |
  jq -r '[.calls[] | select(.op == "Decrypt" and .result == "DisabledException")][0].request_id')
grep -q "request id $rid" "$tmp/nbdkit.log" ||
  fail_later "the failed check's KMS request id $rid is not in nbdkit's log"
wait_log '^err' "refused write"
t0=$(now_ms); enable_key "$key1"
ms=$(wait_state unlocked "$t0" "$HARD")
io_served
within "EnableKey -> served again" "$ms" "$BOUND"
n=$(grep -c . fua.log)
t0=$(now_ms)
while [ "$(grep -c . fua.log)" -le $((n + 10)) ]; do  # some writes after resume
  [ $(( $(now_ms) - t0 )) -lt $(( HARD * 1000 )) ] || fail "the FUA writer made no progress after resume"
  sleep 0.05
done
touch stop; wait "$writer" || { cat fua.err; fail "the FUA writer failed"; }
same_data before 0
out=$("$PY" "$FUA_WRITER" verify "$URI" 1048576 3328 fua.log aea) || fail "FUA writes: $out"
pass "data written before reads back identical; FUA writer through both transitions: $out"

# --- pending deletion, cancelled -------------------------------------------------
t0=$(now_ms); kms ScheduleKeyDeletion "{\"KeyId\": \"$key1\", \"PendingWindowInDays\": 7}" >/dev/null
ms=$(wait_state revoked "$t0" "$HARD")
io_refused
within "ScheduleKeyDeletion -> revoked" "$ms" "$BOUND"
t0=$(now_ms)
kms CancelKeyDeletion "{\"KeyId\": \"$key1\"}" >/dev/null
enable_key "$key1"
ms=$(wait_state unlocked "$t0" "$HARD")
io_served
same_data before 0
within "CancelKeyDeletion + EnableKey -> served again, data identical" "$ms" "$BOUND"

# --- KMS unreachable: key-grace, then refused; back -> resumed -------------------
t0=$(now_ms); local_aws_stop
ms=$(wait_state grace "$t0" "$HARD")
io_served
pass "KMS stopped: state grace after $ms ms, still served"
ms=$(wait_state revoked "$t0" "$HARD")
io_refused
# key-grace=4 counts from the last good check: at most one interval (1 s)
# before the stop, on a clock of whole seconds (1 s more).
[ "$ms" -ge 2000 ] || fail "refused $ms ms after the KMS stopped: key-grace=4 not honoured"
within "KMS stopped -> refused after key-grace=4" "$ms" $((4 + BOUND))
status_json | jq -e '.last_check.outcome != "ok"' >/dev/null || fail "status: last check still ok"
t0=$(now_ms); start_kms "$KMS_PORT"
ms=$(wait_state unlocked "$t0" "$HARD")
io_served
same_data before 0
within "KMS back on the same port -> served again" "$ms" "$BOUND"
stop_nbd

# --- 30% KMS faults: no revocation, no failed request ----------------------------
# The default key-grace (900 s): a check that fails after its retries is
# unreachable, not revoked. A reader/writer runs all along; states are
# polled all along; the run ends after 40 checks (bounded by time).
start_nbd vol kms-endpoint="$EP" ca-bundle="$CA" key-check=1
clear_calls
fault '{"random": {"rate": 0.3, "seed": 11}, "ops": ["Decrypt"]}'
rm -f stop
nbdsh -u "$URI" -c "
import os, time
n = 0
while not os.path.exists('stop'):
    b = h.pread(65536, 15728640)
    h.pwrite(b, 15728640)
    n += 1
    time.sleep(0.002)  # pacing: leave the 2 cores to the server and the KMS
print(n)
" >io.out 2>io.err &
io=$!
cleanup_hooks+=("touch $tmp/stop; wait $io")
t0=$(now_ms); states=
while [ "$(count_calls 'select(.op == "Decrypt")')" -lt 40 ]; do
  states+=" $(key_state)"
  [ $(( $(now_ms) - t0 )) -lt 120000 ] || fail "fewer than 40 checks in 120 s"
  kill -0 "$io" 2>/dev/null || { cat io.err; fail "a request failed while KMS calls were failing"; }
  sleep 0.1
done
touch stop; wait "$io" || { cat io.err; fail "a request failed while KMS calls were failing"; }
fault '{"clear": true}'
faulted=$(count_calls 'select(.op == "Decrypt" and .fault != null)')
total=$(count_calls 'select(.op == "Decrypt")')
[[ $states != *revoked* ]] || fail "revoked while 30% of KMS calls failed: $states"
[ "$faulted" -gt 0 ] || fail "no KMS call was faulted"
pass "30% KMS faults ($faulted of $total Decrypt calls failed): never revoked, $(cat io.out) read+write pairs all served; states seen: $(tr ' ' '\n' <<<"$states" | grep . | sort | uniq -c | xargs)"
stop_nbd

# --- resume=false: a revocation is final until restart -----------------------------
start_nbd vol "${KP[@]}" resume=false
checks_after 1
disable_key "$key1"
wait_state revoked "$(now_ms)" "$HARD" >/dev/null
enable_key "$key1"
t0=$(now_ms)
while [ $(( $(now_ms) - t0 )) -lt 3000 ]; do  # three check intervals
  [ "$(key_state)" = revoked ] || fail "resume=false: resumed when the key was enabled again"
  sleep 0.1
done
io_refused
if "$KEYMGR" unlock --control "$CTL" --json >unlock.out 2>&1; then
  cat unlock.out; fail "resume=false: keymgr unlock succeeded"
fi
stop_nbd
start_nbd vol "${KP[@]}" resume=false
io_served
same_data before 0
pass "resume=false: revoked stays revoked (3 s with the key usable, unlock refused) until restart"
stop_nbd

# --- on-unreachable=serve: served past key-grace while KMS is down ------------------
start_nbd vol kms-endpoint="$EP" ca-bundle="$CA" key-check=1 key-grace=2 on-unreachable=serve
checks_after 1
local_aws_stop
wait_state grace "$(now_ms)" "$HARD" >/dev/null
checks_after 4   # 4 failed checks: past key-grace=2
[ "$(key_state)" = grace ] || fail "on-unreachable=serve: state $(key_state) past key-grace"
io_served
t0=$(now_ms); start_kms "$KMS_PORT"
wait_state unlocked "$t0" "$HARD" >/dev/null
stop_nbd
pass "on-unreachable=serve: served through 4 failed checks past key-grace=2; unlocked when KMS is back"

# --- key deleted: stays revoked ---------------------------------------------------
start_nbd vol "${KP[@]}"
t0=$(now_ms)
kms ScheduleKeyDeletion "{\"KeyId\": \"$key1\", \"PendingWindowInDays\": 7}" >/dev/null
ms=$(wait_state revoked "$t0" "$HARD")
# The waiting period ended at once (the test KMS's admin call): the key is
# gone, and every Decrypt naming it gets NotFoundException, as in AWS.
admin -X POST -d "{\"KeyId\": \"$key1\"}" "$EP/_admin/delete-key" >/dev/null
t0=$(now_ms)
clear_calls
while [ "$(count_calls 'select(.op == "Decrypt")')" -lt 3 ]; do  # 3 more checks
  [ $(( $(now_ms) - t0 )) -lt $(( HARD * 1000 )) ] || fail "the watch stopped checking a revoked volume"
  sleep 0.1
done
[ "$(count_calls 'select(.op == "Decrypt" and .result == "NotFoundException")')" -ge 3 ] ||
  fail "checks of a deleted key: $(admin "$EP/_admin/calls" | jq -c '[.calls[] | .result]')"
[ "$(key_state)" = revoked ] || fail "a deleted key's volume left the revoked state"
io_refused
if "$KEYMGR" unlock --control "$CTL" --json >unlock.out 2>&1; then
  cat unlock.out; fail "keymgr unlock succeeded with the key deleted"
fi
pass "key pending deletion then deleted: revoked in $ms ms, stays revoked over 3 more checks (NotFoundException); unlock refused: $(head -c 200 unlock.out)"
stop_nbd

# --- nothing secret in the logs ------------------------------------------------------
if grep -sqF -e "$KMS_SECRET" "$tmp/nbdkit.log" "$tmp/aws.log"; then
  fail "the secret access key appears in a log"
fi
grep -q "revoked" "$tmp/nbdkit.log" || fail "nbdkit's log does not record the revocations"
pass "state changes in nbdkit's log; no secret in any log"
finish
