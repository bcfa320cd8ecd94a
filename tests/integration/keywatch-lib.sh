# Helpers of the key-watch tests (test-key-watch*.sh) and of
# bench/key-watch-latency.sh; source it after functions.sh. It runs the local
# KMS (tests/kms/kms-server.py) and one nbdkit at a time in the background,
# each stopped by the trap, and waits for the server's key state by polling
# `cryptvol-keymgr status --control PATH --json`, never by sleeping.
FUA_WRITER=$CV_SRCDIR/tests/integration/fua-writer.py
source "$CV_SRCDIR/tests/integration/aws-lib.sh"

# --- the local KMS --------------------------------------------------------
# start_kms [PORT]: start the test KMS on PORT (default: any free port, then
# kept in KMS_PORT so a restart gets the same endpoint) with its state in
# $tmp/kms-state (kept across restarts). The first call makes the
# credentials (exported as the AWS_* of everything below) and the config.
KMS_PORT=
start_kms () {
  if [ ! -e "$tmp/kms-state/config.json" ]; then
    KMS_AKID=AKIA$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)
    KMS_SECRET=$(head -c 30 /dev/urandom | base64 | tr -d '\n/+')
    mkdir -p "$tmp/kms-state"
    cat >"$tmp/kms-state/config.json" <<EOF
{"account_id": "111122223333", "regions": ["us-east-1"],
 "credentials": [{"access_key_id": "$KMS_AKID", "secret_access_key": "$KMS_SECRET"}]}
EOF
    local_aws_signer "$KMS_AKID" "$KMS_SECRET"
    local_aws_env
    export AWS_ACCESS_KEY_ID=$KMS_AKID AWS_SECRET_ACCESS_KEY=$KMS_SECRET
    export AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_CONFIG_FILE=/dev/null
  fi
  local_aws_start "$tmp/kms-state" --port "${1:-0}"
  KMS_PORT=$(cat "$tmp/port")
}

# count_calls JQ-FILTER: how many logged KMS calls match (e.g.
# 'select(.op == "Decrypt" and .result == "ok")').
count_calls () { admin "$EP/_admin/calls" | jq "[.calls[] | $1] | length"; }
new_key () { kms CreateKey '{"Description": "cryptvol key-watch test"}' | jq -r .KeyMetadata.KeyId; }
key_arn () { echo "arn:aws:kms:us-east-1:111122223333:key/$1"; }
disable_key () { kms DisableKey "{\"KeyId\": \"$1\"}" >/dev/null; }
enable_key () { kms EnableKey "{\"KeyId\": \"$1\"}" >/dev/null; }

# --- the key state, by polling the control socket ---------------------------
status_json () { "$KEYMGR" status --control "$CTL" --json; }
key_state () { status_json | jq -r .state; }
now_ms () { echo $(( $(date +%s%N) / 1000000 )); }

# wait_state WANT T0_MS LIMIT_S: poll the server's state until it is WANT;
# print the milliseconds from T0_MS (now_ms taken just before the action)
# to the first status that showed WANT. Fails the test past LIMIT_S seconds.
wait_state () {
  local want=$1 t0=$2 limit_ms=$(( $3 * 1000 )) st
  while :; do
    st=$(key_state 2>/dev/null) || st="(status failed)"
    if [ "$st" = "$want" ]; then
      echo $(( $(now_ms) - t0 ))
      return 0
    fi
    if [ $(( $(now_ms) - t0 )) -gt "$limit_ms" ]; then
      status_json >&2 || true
      tail -n 20 "$tmp/nbdkit.log" >&2
      fail "the key state is \"$st\", not \"$want\", $3 s after the change"
    fi
    sleep 0.05
  done
}

# checks_after N: wait until the server has run N more checks (its
# last_check time moves N times); fails past $HARD s.
checks_after () {
  local n=$1 last cur t0; t0=$(now_ms)
  last=$(status_json | jq -r .last_check.time)
  while [ "$n" -gt 0 ]; do
    cur=$(status_json | jq -r .last_check.time)
    if [ "$cur" != "$last" ]; then n=$((n - 1)); last=$cur; fi
    [ $(( $(now_ms) - t0 )) -lt 30000 ] || fail "the watch ran no check for 30 s"
    sleep 0.05
  done
}

# fail_later MESSAGE: a failed assertion after which the test can go on
# (the later steps do not depend on it): printed now, and the test exits 1
# at the end (finish), so one gap does not hide the results of the rest.
failed_later=()
fail_later () { echo "FAIL: $*" >&2; failed_later+=("$*"); }
finish () {
  [ ${#failed_later[@]} -eq 0 ] || fail "${#failed_later[@]} assertion(s) failed: $(printf '%s; ' "${failed_later[@]}")"
}

# within WHAT MS BOUND_S: the bound the issue states (e.g. 3 s); the figure
# is printed either way.
within () {
  [ "$2" -le $(( $3 * 1000 )) ] || fail "$1 took $2 ms; the bound is $3 s"
  pass "$1 in $2 ms (bound $3 s)"
}

# io_served / io_refused [OFFSET]: a 4 KiB read and a 4 KiB write (of what
# the read gave, so the data stays) at OFFSET (default 15 MiB) are served /
# both fail with EPERM, while a new client still connects and learns the size.
io_served () {
  nbdsh -u "$URI" -c "
b = h.pread(4096, ${1:-15728640})
h.pwrite(b, ${1:-15728640})
" || fail "I/O was not served"
}
io_refused () {
  nbdsh -u "$URI" -c "
import errno
assert h.get_size() > 0
for what, f in (('read', lambda: h.pread(4096, ${1:-15728640})),
                ('write', lambda: h.pwrite(bytes(4096), ${1:-15728640}))):
    try:
        f()
    except nbd.Error as e:
        assert e.errnum == errno.EPERM, '%s failed with %s, not EPERM' % (what, e)
    else:
        raise AssertionError(what + ' was served')
" || fail "I/O was not refused with EPERM"
}

# same_data FILE OFFSET: the volume holds FILE's bytes at OFFSET.
same_data () {
  nbdsh -u "$URI" -c "
d = open('$1', 'rb').read()
assert h.pread(len(d), $2) == d, 'the data read back differs from what was written'
" || fail "data written before does not read back identical"
}
