#!/bin/bash
# How fast the key watch acts (issue 11's measurement; not run by make check):
# the time from DisableKey to the first refused request and from EnableKey to
# the first served request, TRIALS times each at key-check=1 and key-check=5,
# against the local KMS (tests/kms/kms-server.py) and the real nbdkit; and the
# KMS requests the watch makes per volume per hour.
#
# Usage: bench/key-watch-latency.sh [TRIALS]   (default 20; build first)
#
# A trial: a client connected beforehand notes the time, sends the KMS call
# (curl, SigV4), then issues a 4 KiB read every 5 ms until the first one is
# refused (EPERM) / served; the figure is the time from just before the KMS
# call to that request's reply. Before each trial the script waits a random
# fraction of the interval, so that trials do not all start at the same
# point of the check cycle.
source "$(dirname "$0")/../tests/integration/functions.sh"
source "$CV_SRCDIR/tests/integration/keywatch-lib.sh"
requires nbdkit nbdsh curl jq openssl
TRIALS=${1:-20}

start_kms
key=$(new_key)
"$KEYMGR" create vol --size 16M --wrap "kms:$(key_arn "$key")" \
  --kms-endpoint "$EP" --ca-bundle "$CA" >/dev/null

cat >probe.py <<'EOF'
import errno, subprocess, sys, time
import nbd
uri, want, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
h = nbd.NBD()
h.connect_uri(uri)
t0 = time.monotonic()
subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
while time.monotonic() - t0 < 120:
    try:
        h.pread(4096, 0)
        served = True
    except nbd.Error as e:
        assert e.errnum == errno.EPERM, e
        served = False
    if served == (want == "served"):
        print(round((time.monotonic() - t0) * 1000))
        sys.exit(0)
    time.sleep(0.005)
sys.exit("no change in 120 s")
EOF
# kms_argv OP KEY: the curl command of a KMS call on KEY, for the probe.
kms_argv () {
  printf '%s\n' curl -sS --fail-with-body -K "$tmp/curl-auth" --cacert "$CA" \
    --aws-sigv4 "aws:amz:us-east-1:kms" -H "Content-Type: application/x-amz-json-1.1" \
    -H "X-Amz-Target: TrentService.$1" --data-binary "{\"KeyId\": \"$2\"}" "$EP/"
}
# A second volume under another key, served all along at the default
# key-check (60 s): its Decrypt calls, counted at the end, are the rate of
# the default interval as measured rather than computed.
dkey=$(new_key)
"$KEYMGR" create dvol --size 16M --wrap "kms:$(key_arn "$dkey")" \
  --kms-endpoint "$EP" --ca-bundle "$CA" >/dev/null
nbdkit -f -U "$tmp/dvol.sock" "$PLUGIN" dvol kms-endpoint="$EP" ca-bundle="$CA" \
  >>"$tmp/nbdkit-dvol.log" 2>&1 &
dvol_pid=$!
cleanup_hooks+=("kill $dvol_pid; wait $dvol_pid")
for _ in $(seq 1 400); do  # listening: the unlock's Decrypt is done
  [ -S "$tmp/dvol.sock" ] && break
  sleep 0.05
done
[ -S "$tmp/dvol.sock" ] || fail "nbdkit did not serve dvol"
dvol_t0=$(now_ms)
# decrypts KEY SINCE_MS: the Decrypt calls naming KEY logged since SINCE_MS.
decrypts () {
  admin "$EP/_admin/calls" | jq --arg k "$1" --argjson t "$2" \
    '[.calls[] | select(.op == "Decrypt" and (.key_id // "" | endswith($k)) and .time * 1000 >= $t)] | length'
}

mapfile -t disable_cmd < <(kms_argv DisableKey "$key")
mapfile -t enable_cmd < <(kms_argv EnableKey "$key")

# rate N MS: "N KMS Decrypt calls in S s = R per volume per hour".
rate () { awk -v n="$1" -v ms="$2" 'BEGIN {printf "%d KMS Decrypt calls in %.0f s = %.0f per volume per hour", n, ms / 1000, n * 3600000 / ms}'; }

# stats FILE: "median max" of the numbers in FILE (ms).
stats () { sort -n "$1" | awk '{a[NR]=$1} END {m = NR % 2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; print m, a[NR]}'; }

rows=()
for interval in 1 5; do
  start_nbd vol kms-endpoint="$EP" ca-bundle="$CA" key-check="$interval"
  run_t0=$(now_ms)
  : >"off-$interval" ; : >"on-$interval"
  for i in $(seq 1 "$TRIALS"); do
    sleep "$(awk -v s="$RANDOM" -v n="$interval" 'BEGIN {srand(s); printf "%.3f", rand() * n}')"
    "$PY" probe.py "$URI" refused "${disable_cmd[@]}" >>"off-$interval" || fail "trial $i: no refusal"
    sleep "$(awk -v s="$RANDOM" -v n="$interval" 'BEGIN {srand(s); printf "%.3f", rand() * n}')"
    "$PY" probe.py "$URI" served "${enable_cmd[@]}" >>"on-$interval" || fail "trial $i: not served again"
  done
  run_ms=$(( $(now_ms) - run_t0 ))
  n=$(decrypts "$key" "$run_t0")
  stop_nbd
  read -r m x < <(stats "off-$interval")
  rows+=("| $interval s | DisableKey -> first refused request | $TRIALS | $m | $x |")
  read -r m x < <(stats "on-$interval")
  rows+=("| $interval s | EnableKey -> first served request | $TRIALS | $m | $x |")
  rates+=("key-check=$interval: $(rate "$n" "$run_ms") (3600/$interval = $((3600 / interval)) expected)")
  echo "key-check=$interval: off $(tr '\n' ' ' <"off-$interval")" >&2
  echo "key-check=$interval: on  $(tr '\n' ' ' <"on-$interval")" >&2
done

echo
echo "| key-check | transition | trials | median (ms) | max (ms) |"
echo "|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
printf '%s\n' "${rates[@]}"
echo "key-check=60 (default): $(rate "$(decrypts "$dkey" "$dvol_t0")" $(( $(now_ms) - dvol_t0 ))) (3600/60 = 60 expected; the first check at a random point of the first minute)"
