#!/bin/bash
# Many volumes on one host (issue 16's measurement; `make bench-many`, not
# run by make check): N small file-backed volumes, each wrapped by a key of
# the local KMS (tests/kms/kms-server.py, SigV4-verifying), served
#   eager-pP  by ONE nbdkit: volumes=FILE unlock=eager unlock-parallel=P
#   dir       by ONE nbdkit: dir=DIR unlock=eager (the first P)
#   lazy      by ONE nbdkit: volumes=FILE unlock=lazy
#   single    by SINGLE processes, one nbdkit per volume, SINGLE of them
#             started at once (default 100), extrapolated to N
# and for each: the time from starting the server(s) until they listen (eager
# unlocks every volume before nbdkit listens, so that is the time until all
# are unlocked), server CPU seconds (utime + stime) until then, the KMS calls
# the local KMS served until then (its call log), memory (peak RSS VmHWM,
# RSS, RssAnon, RssFile, PSS from smaps_rollup, summed over the processes of
# `single`) and threads; then, while a client holds its connections, again
# with SAMPLE random exports connected and touched (connect by export name,
# write a 4 KiB block, read it back; for lazy the first open also unlocks),
# and with every export connected and touched.
#
# Usage: bench/many-volumes.sh [-n N] [-c CACHE] [-r RUNS] [-p "P ..."]
#          [-s SINGLE] [-S SAMPLE] [-j JOBS] [-k KEYS] [-C "CONFIGS"] [-A 0] [-t T] [-w PREFIX]
#          [-K SECONDS]
#   -n N        volumes (default 1000)
#   -c CACHE    where the volume set, the KMS state and volumes.conf are kept
#               between runs (default build/bench/many-volumes); a new N
#               adds the volumes missing
#   -r RUNS     rounds (default 3); each round runs the configurations in
#               another order (rotated)
#   -p "P ..."  unlock-parallel values, one eager configuration each
#               (default 32)
#   -s SINGLE   single-volume processes (default 100)
#   -S SAMPLE   exports touched after start-up (default 20)
#   -j JOBS     parallel `cryptvol-keymgr create` while making the set
#               (default 8)
#   -k KEYS     KMS keys, volume i wrapped by key i mod KEYS (default 100)
#   -C CONFIGS  which of "eager dir lazy single" (default all; eager means
#               one configuration per -p value)
#   -A 0        skip the phase with a client connected to every export
#   -t T        nbdkit --threads T (worker threads per connection; nbdkit's
#               default is 16) for every server
#   -K SECONDS  for one-server configurations, after start-up: the KMS
#               Decrypt calls and server CPU seconds of SECONDS idle (the
#               key watch: key-check = 60 in every stanza), before clients
#   -w PREFIX   run every nbdkit under this command, e.g. "setpriv
#               --bounding-set -ipc_lock" (root without CAP_IPC_LOCK: the
#               RLIMIT_MEMLOCK of `ulimit -l` applies as to a service user)
# Output: per-run lines, then a Markdown table of medians (min-max) on
# stdout; raw figures in CACHE/results.tsv. Build first (`make`).
SELF=$(readlink -f "$0")
source "$(dirname "$0")/../tests/integration/functions.sh"
source "$CV_SRCDIR/tests/integration/aws-lib.sh"
requires nbdkit nbdinfo curl jq openssl shuf
"$PY" -c 'import nbd' 2>/dev/null || { echo "SKIP: python3-libnbd is not installed"; exit 77; }

N=1000 CACHE=$CV_BUILD/bench/many-volumes RUNS=3 PARS=32 SINGLE=100 SAMPLE=20
JOBS=8 KEYS=100 CONFIGS="eager dir lazy single" ALL=1 NBDKIT_OPTS=() WRAP=() WATCH=0
while getopts hn:c:r:p:s:S:j:k:C:A:t:w:K: opt; do
  case $opt in
    n) N=$OPTARG ;; c) CACHE=$OPTARG ;; r) RUNS=$OPTARG ;; p) PARS=$OPTARG ;;
    s) SINGLE=$OPTARG ;; S) SAMPLE=$OPTARG ;; j) JOBS=$OPTARG ;; k) KEYS=$OPTARG ;;
    C) CONFIGS=$OPTARG ;; A) ALL=$OPTARG ;; t) NBDKIT_OPTS=(--threads "$OPTARG") ;;
    w) read -ra WRAP <<<"$OPTARG" ;; K) WATCH=$OPTARG ;; h) sed -n '/^# Usage/,/Build first/s/^# \{0,1\}//p' "$SELF"; exit 0 ;;
    *) sed -n '/^# Usage/,/Build first/s/^# \{0,1\}//p' "$SELF" >&2; exit 2 ;;
  esac
done
[ "$SINGLE" -le "$N" ] || SINGLE=$N
[ "$SAMPLE" -le "$SINGLE" ] || SAMPLE=$SINGLE
mkdir -p "$CACHE/vols"
CACHE=$(cd "$CACHE" && pwd)
VOLS=$CACHE/vols
TICK=$(getconf CLK_TCK)
RES=$CACHE/results.tsv
LOGS=$CACHE/logs  # nbdkit's stderr of each configuration and run
rm -rf "$LOGS" && mkdir -p "$LOGS"

now_ns () { date +%s%N; }
secs () { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'; }
name_of () { printf 'v%04d' "$1"; }

# --- the local KMS, its state kept in the cache ---------------------------
if [ ! -e "$CACHE/kms-state/config.json" ]; then
  mkdir -p "$CACHE/kms-state" && chmod 700 "$CACHE/kms-state"
  akid=AKIA$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)
  secret=$(head -c 30 /dev/urandom | base64 | tr -d '\n/+')
  (umask 077 && cat >"$CACHE/kms-state/config.json" <<EOF
{"account_id": "111122223333", "regions": ["us-east-1"],
 "credentials": [{"access_key_id": "$akid", "secret_access_key": "$secret"}]}
EOF
  )
fi
akid=$(jq -r '.credentials[0].access_key_id' "$CACHE/kms-state/config.json")
secret=$(jq -r '.credentials[0].secret_access_key' "$CACHE/kms-state/config.json")
local_aws_start "$CACHE/kms-state" --quiet
local_aws_signer "$akid" "$secret"
local_aws_env ""
export AWS_ACCESS_KEY_ID=$akid AWS_SECRET_ACCESS_KEY=$secret
export AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_CONFIG_FILE=/dev/null
unset secret
KP=(kms-endpoint="$EP" ca-bundle="$CA")

# --- the volume set (cached) ----------------------------------------------
touch "$CACHE/keys.txt"
while [ "$(wc -l <"$CACHE/keys.txt")" -lt "$KEYS" ]; do
  kms CreateKey '{"Description": "cryptvol many-volumes bench"}' |
    jq -r .KeyMetadata.Arn >>"$CACHE/keys.txt"
done
missing=()
for i in $(seq 1 "$N"); do
  [ -e "$VOLS/$(name_of "$i")" ] || missing+=("$i")
done
if [ ${#missing[@]} -gt 0 ]; then
  # create I: volume vNNNN (16 MiB, sparse) wrapped by key I mod KEYS; made
  # under a dot name (which dir= skips) and renamed when complete.
  mapfile -t keys <"$CACHE/keys.txt"
  for i in "${missing[@]}"; do
    echo "$i ${keys[$((i % KEYS))]}"
  done >create.list
  rm -f "$VOLS"/.tmp-*
  t0=$(now_ns)
  # shellcheck disable=SC2016
  xargs -P "$JOBS" -L 1 sh -c 'n=$(printf "v%04d" "$4")
    "$0" create "$1/.tmp-$n" --size 16M --wrap "kms:$5" --kms-endpoint "$2" \
      --ca-bundle "$3" >/dev/null && mv "$1/.tmp-$n" "$1/$n"' \
    "$KEYMGR" "$VOLS" "$EP" "$CA" <create.list 2>create.err || true
  t1=$(now_ns)
  for i in "${missing[@]}"; do
    [ -e "$VOLS/$(name_of "$i")" ] || { head create.err; fail "volume $(name_of "$i") was not created"; }
  done
  echo "created ${#missing[@]} volumes (16 MiB sparse, cryptvol-keymgr create --wrap kms:ARN, $JOBS at a time) in $(secs "$t0" "$t1") s"
fi
echo "volume set: $N volumes in $VOLS, $(du -sh "$VOLS" | cut -f1) on disk, $KEYS KMS keys"

# volumes=FILE: one stanza per volume, paths relative to the file; the KMS
# endpoint and CA on the command line are the defaults of every stanza.
{
  echo "# $N volumes for bench/many-volumes.sh"
  for i in $(seq 1 "$N"); do
    printf '\n[%s]\nvolume = vols/%s\nkey-check = 60\n' "$(name_of "$i")" "$(name_of "$i")"
  done
} >"$CACHE/volumes.conf"
# dir=DIR: exactly the first N volumes (the cache may hold more).
rm -rf "$CACHE/dir-$N" && mkdir "$CACHE/dir-$N"
for i in $(seq 1 "$N"); do ln -s "../vols/$(name_of "$i")" "$CACHE/dir-$N/$(name_of "$i")"; done

# --- measuring ------------------------------------------------------------
# mem PID...: "hwm rss anon file pss threads cpu_s lck fds", memory in MiB
# (lck: VmLck, mlock'ed), summed over the processes.
mem () {
  local p
  for p in "$@"; do
    awk '/^VmHWM:/ {h=$2} /^VmRSS:/ {r=$2} /^RssAnon:/ {a=$2} /^RssFile:/ {f=$2}
         /^VmLck:/ {l=$2} /^Threads:/ {t=$2} END {printf "%d %d %d %d %d ", h, r, a, f, t; print l}' "/proc/$p/status"
    awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup"
    awk '{print $14 + $15}' "/proc/$p/stat"
    find "/proc/$p/fd" -mindepth 1 -maxdepth 1 | wc -l
  done | paste - - - - | awk -v tick="$TICK" '
    {h+=$1; r+=$2; a+=$3; f+=$4; t+=$5; l+=$6; p+=$7; c+=$8; d+=$9}
    END {printf "%.1f %.1f %.1f %.1f %.1f %d %.2f %.1f %d\n", h/1024, r/1024, a/1024, f/1024, p/1024, t, c/tick, l/1024, d}'
}
kms_cpu () { awk -v tick="$TICK" '{printf "%.2f", ($14 + $15) / tick}' "/proc/$aws_pid/stat"; }
kms_calls () {  # "Decrypt-ok Decrypt-other all" since clear_calls
  admin "$EP/_admin/calls" | jq -r '[.calls[] | select(.op == "Decrypt" and .result == "ok")] as $ok
    | [.calls[] | select(.op == "Decrypt")] as $d | "\($ok | length) \(($d | length) - ($ok | length)) \(.calls | length)"'
}
# record CONFIG RUN KEY VALUE...: the figures of one run.
record () {
  local c=$1 r=$2; shift 2
  while [ $# -gt 0 ]; do printf '%s\t%s\t%s\t%s\n' "$c" "$r" "$1" "$2" >>"$RES"; shift 2; done
}
record_mem () {  # CONFIG RUN PHASE "hwm rss anon file pss threads cpu"
  local v; read -ra v <<<"$4"
  record "$1" "$2" "$3.hwm_mib" "${v[0]}" "$3.rss_mib" "${v[1]}" "$3.anon_mib" "${v[2]}" \
    "$3.file_mib" "${v[3]}" "$3.pss_mib" "${v[4]}" "$3.threads" "${v[5]}" "$3.cpu_s" "${v[6]}" \
    "$3.locked_mib" "${v[7]}" "$3.fds" "${v[8]}"
}

# The client: touch.py OUT SOCKET:EXPORT...: for each, connect by export
# name, write a 4 KiB block at a random offset and read it back (the
# connection stays open); then writes to OUT the median and largest time
# from connect to the read's reply, in ms, and holds every connection until
# its stdin closes.
cat >touch.py <<'EOF2'
import os, random, statistics, sys, time
import nbd
times, handles = [], []
for arg in sys.argv[2:]:
    sock, name = arg.split(":", 1)
    t0 = time.monotonic()
    h = nbd.NBD()
    h.set_export_name(name)
    h.connect_unix(sock)
    off = random.randrange(h.get_size() // 4096) * 4096
    buf = os.urandom(4096)
    h.pwrite(buf, off)
    assert h.pread(4096, off) == buf, f"{name}: read back differs"
    times.append((time.monotonic() - t0) * 1000)
    handles.append(h)
with open(sys.argv[1] + ".tmp", "w") as f:
    print(f"{statistics.median(times):.1f} {max(times):.1f}", file=f)
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
sys.stdin.read()
for h in handles:
    h.shutdown()
EOF2
# hold_clients SOCKET:EXPORT...: touch.py in the background, connected to
# each; returns once it has done its I/O, with its figures in $touched.
# release_clients closes the connections.
client_pid=
hold_clients () {
  rm -f touched.out clients.fifo && mkfifo clients.fifo
  exec {client_fd}<>clients.fifo
  "$PY" touch.py touched.out "$@" <clients.fifo {client_fd}>&- &
  client_pid=$!
  while [ ! -e touched.out ]; do
    if ! kill -0 "$client_pid" 2>/dev/null; then
      wait "$client_pid" || true
      client_pid=
      grep -v "debug: " "$LOGS"/*.log | tail -n 20 >&2
      fail "the client failed (nbdkit's errors above; logs in $LOGS)"
    fi
    sleep 0.05
  done
  touched=$(cat touched.out)
}
release_clients () {  # returns the client's exit status
  local rc=0
  if [ -n "$client_pid" ]; then
    exec {client_fd}>&-
    wait "$client_pid" || rc=$?
    client_pid=
  fi
  return $rc
}
cleanup_hooks=("release_clients || true" "${cleanup_hooks[@]}")

SERVERS=()  # every nbdkit this script started; the trap stops them
stop_servers () {
  local p
  for p in "${SERVERS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${SERVERS[@]}"; do wait "$p" 2>/dev/null || true; done
  SERVERS=()
}
cleanup_hooks=(stop_servers "${cleanup_hooks[@]}")

# wait_socks LIMIT_S SOCK...: until every socket exists (10 ms polls), or
# fail naming how many did, with the servers' logs.
wait_socks () {
  local limit=$(( $1 * 1000000000 )) t0 s left; shift
  t0=$(now_ns)
  left=("$@")
  while [ ${#left[@]} -gt 0 ]; do
    local next=()
    for s in "${left[@]}"; do [ -S "$s" ] || next+=("$s"); done
    left=("${next[@]}")
    [ ${#left[@]} -eq 0 ] && return 0
    for s in "${SERVERS[@]}"; do
      kill -0 "$s" 2>/dev/null || { tail -n 20 "$LOGS"/*.log >&2; fail "nbdkit $s exited"; }
    done
    [ $(( $(now_ns) - t0 )) -lt $limit ] ||
      { tail -n 20 "$LOGS"/*.log >&2; fail "${#left[@]} of $# servers not listening after $((limit / 1000000000)) s"; }
    sleep 0.01
  done
}

# clients CONFIG RUN "PID..." SOCKET:EXPORT...: the client phases, each
# measured while its connections are open: "touched", SAMPLE random ones of
# the exports given; "all" (unless -A 0), every one of them.
clients () {
  local c=$1 r=$2 pids m; read -ra pids <<<"$3"; shift 3
  local targets=("$@") sample=()
  mapfile -t sample < <(printf '%s\n' "${targets[@]}" | shuf -n "$SAMPLE")
  hold_clients "${sample[@]}"
  m=$(mem "${pids[@]}")
  release_clients || fail "the client failed to disconnect"
  record "$c" "$r" touch_ms_median "${touched% *}" touch_ms_max "${touched#* }"
  record_mem "$c" "$r" touched "$m"
  echo "  $SAMPLE exports touched (first I/O median/max ${touched/ //} ms), connected: $m"
  [ "$ALL" = 1 ] || return 0
  local t0 t1; t0=$(now_ns)
  hold_clients "${targets[@]}"
  t1=$(now_ns)
  m=$(mem "${pids[@]}")
  release_clients || fail "the client failed to disconnect"
  record "$c" "$r" all_s "$(secs "$t0" "$t1")" all_ms_median "${touched% *}" all_ms_max "${touched#* }"
  record_mem "$c" "$r" all "$m"
  echo "  all ${#targets[@]} exports connected and touched in $(secs "$t0" "$t1") s (first I/O median/max ${touched/ //} ms): $m"
}

# multi CONFIG RUN PLUGIN-PARAMS...: one nbdkit serving N exports.
multi () {
  local c=$1 r=$2; shift 2
  local sock=$tmp/multi.sock ctl=$tmp/multi.ctl t0 t1 m calls listed pid kc0 i
  rm -f "$sock" "$ctl"
  clear_calls
  kc0=$(kms_cpu)
  t0=$(now_ns)
  "${WRAP[@]}" nbdkit -f -v "${NBDKIT_OPTS[@]}" -U "$sock" "$PLUGIN" "$@" "${KP[@]}" control="$ctl" >"$LOGS/nbdkit-$c-$r.log" 2>&1 &
  pid=$!
  SERVERS+=("$pid")
  wait_socks 600 "$sock"
  t1=$(now_ns)
  m=$(mem "$pid")
  calls=$(kms_calls)
  # The export list, without opening any (nbdinfo --list opens each one to
  # show its size, which would unlock them all with unlock=lazy).
  listed=$("$PY" -c 'import nbd, sys
h = nbd.NBD(); h.set_opt_mode(True); h.connect_unix(sys.argv[1])
names = []; h.opt_list(lambda name, desc: names.append(name)); h.opt_abort(); print(len(names))' "$sock")
  [ "$listed" = "$N" ] || fail "$c: the server lists $listed exports, not $N"
  # Unlocked exports: nbdkit -v's line per export.
  local unlocked; unlocked=$(grep -c 'debug: export "[^"]*": volume .* unlocked' "$LOGS/nbdkit-$c-$r.log" || true)
  record "$c" "$r" ready_s "$(secs "$t0" "$t1")" decrypt_ok "${calls%% *}" \
    decrypt_failed "$(echo "$calls" | cut -d' ' -f2)" kms_calls "${calls##* }" \
    kms_cpu_s "$(awk -v a="$kc0" -v b="$(kms_cpu)" 'BEGIN {printf "%.2f", b - a}')" \
    unlocked_at_ready "$unlocked"
  record_mem "$c" "$r" start "$m"
  echo "$c run $r: listening after $(secs "$t0" "$t1") s; KMS Decrypt ok/failed, all calls: $calls;" \
    "unlocked (nbdkit -v): $unlocked; hwm rss anon file pss threads cpu lck fds: $m"
  if [ "$WATCH" -gt 0 ]; then
    local w0 w1 d
    clear_calls
    w0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    sleep "$WATCH"
    w1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    d=$(kms_calls)
    record "$c" "$r" watch_decrypt_ok "${d%% *}" watch_decrypt_failed "$(echo "$d" | cut -d' ' -f2)" \
      watch_cpu_s "$(awk -v a="$w0" -v b="$w1" -v t="$TICK" 'BEGIN {printf "%.2f", (b - a) / t}')"
    echo "$c run $r: idle ${WATCH} s (key watch): KMS Decrypt ok/failed, all calls: $d;" \
      "server CPU $(awk -v a="$w0" -v b="$w1" -v t="$TICK" 'BEGIN {printf "%.2f", (b - a) / t}') s"
  fi
  local targets=()
  for i in $(seq 1 "$N"); do targets+=("$sock:$(name_of "$i")"); done
  clients "$c" "$r" "$pid" "${targets[@]}"
  # The control socket over every export: status and metrics, timed.
  local what
  for what in status metrics; do
    t0=$(now_ns)
    if "$KEYMGR" "$what" --control "$ctl" >"$what.out" 2>"$what.err"; then
      t1=$(now_ns)
      record "$c" "$r" "${what}_s" "$(secs "$t0" "$t1")" "${what}_bytes" "$(wc -c <"$what.out")"
      echo "  cryptvol-keymgr $what --control: $(secs "$t0" "$t1") s, $(wc -c <"$what.out") bytes, $(wc -l <"$what.out") lines"
    else
      echo "  cryptvol-keymgr $what --control failed: $(head -c 300 "$what.err")"
    fi
  done
  t0=$(now_ns)
  listed=$(nbdinfo --list --json "nbd+unix:///?socket=$sock" | jq '.exports | length')
  t1=$(now_ns)
  [ "$listed" = "$N" ] || fail "$c: nbdinfo --list shows $listed exports, not $N"
  record "$c" "$r" nbdinfo_list_s "$(secs "$t0" "$t1")"
  echo "  nbdinfo --list (opens every export for its size): $(secs "$t0" "$t1") s"
  record "$c" "$r" unlocked_at_end "$(grep -c 'debug: export "[^"]*": volume .* unlocked' "$LOGS/nbdkit-$c-$r.log" || true)"
  grep -o 'debug: unlocked [0-9]* of [0-9]* exports in .*' "$LOGS/nbdkit-$c-$r.log" | sed 's/^/  nbdkit: /' || true
  if grep -v "debug: " "$LOGS/nbdkit-$c-$r.log" | grep -Eiq "error|warning"; then
    echo "  nbdkit-$c-$r.log: $(grep -v 'debug: ' "$LOGS/nbdkit-$c-$r.log" | grep -Eic 'error|warning') error/warning lines, e.g.:"
    grep -v "debug: " "$LOGS/nbdkit-$c-$r.log" | grep -Ei -m 3 "error|warning" | sed 's/^/    /'
  fi
  stop_servers
}

# single RUN: SINGLE nbdkit processes, one volume each, started at once.
single () {
  local r=$1 c=single t0 t1 socks=() m calls i kc0
  rm -f "$tmp"/single-*.sock
  clear_calls
  kc0=$(kms_cpu)
  t0=$(now_ns)
  for i in $(seq 1 "$SINGLE"); do
    "${WRAP[@]}" nbdkit -f "${NBDKIT_OPTS[@]}" -U "$tmp/single-$i.sock" "$PLUGIN" "$VOLS/$(name_of "$i")" "${KP[@]}" \
      >>"$LOGS/nbdkit-single-$r.log" 2>&1 &
    SERVERS+=($!)
    socks+=("$tmp/single-$i.sock")
  done
  wait_socks 600 "${socks[@]}"
  t1=$(now_ns)
  m=$(mem "${SERVERS[@]}")
  calls=$(kms_calls)
  record "$c" "$r" ready_s "$(secs "$t0" "$t1")" decrypt_ok "${calls%% *}" \
    decrypt_failed "$(echo "$calls" | cut -d' ' -f2)" kms_calls "${calls##* }" \
    kms_cpu_s "$(awk -v a="$kc0" -v b="$(kms_cpu)" 'BEGIN {printf "%.2f", b - a}')"
  record_mem "$c" "$r" start "$m"
  echo "single run $r: $SINGLE processes listening after $(secs "$t0" "$t1") s; KMS Decrypt ok/failed, all calls: $calls;" \
    "hwm rss anon file pss threads cpu lck fds (sums): $m"
  clients "$c" "$r" "${SERVERS[*]}" "${socks[@]/%/:}"
  if grep -v "debug: " "$LOGS/nbdkit-single-$r.log" | grep -Eiq "error|warning"; then
    echo "  nbdkit-single-$r.log: error/warning lines, e.g.:"
    grep -v "debug: " "$LOGS/nbdkit-single-$r.log" | grep -Ei -m 3 "error|warning" | sed 's/^/    /'
  fi
  stop_servers
}

# --- the rounds ------------------------------------------------------------
configs=()
for c in $CONFIGS; do
  case $c in
    eager) for p in $PARS; do configs+=("eager-p$p"); done ;;
    dir | lazy | single) configs+=("$c") ;;
    *) fail "unknown configuration $c (eager dir lazy single)" ;;
  esac
done
P1=${PARS%% *}
mv -f "$RES" "$RES.old" 2>/dev/null || true
printf 'config\trun\tmetric\tvalue\n' >"$RES"
echo "# $(date -u +%FT%TZ) $(uname -r), $(nproc) CPUs, nbdkit $(nbdkit --version | cut -d' ' -f2)," \
  "N=$N SINGLE=$SINGLE SAMPLE=$SAMPLE RUNS=$RUNS ${WRAP[*]} ${NBDKIT_OPTS[*]}; ulimit -n $(ulimit -n), -l $(ulimit -l)"
for r in $(seq 1 "$RUNS"); do
  k=${#configs[@]}
  for j in $(seq 0 $((k - 1))); do
    c=${configs[$(( (j + r - 1) % k ))]}
    case $c in
      eager-p*) multi "$c" "$r" volumes="$CACHE/volumes.conf" unlock=eager unlock-parallel="${c#eager-p}" ;;
      dir) multi "dir-p$P1" "$r" dir="$CACHE/dir-$N" unlock=eager unlock-parallel="$P1" ;;
      lazy) multi lazy "$r" volumes="$CACHE/volumes.conf" unlock=lazy ;;
      single) single "$r" ;;
    esac
  done
done
"$PY" "$CV_SRCDIR/bench/many-volumes-report.py" "$RES" "$N" "$SINGLE" "$SAMPLE"
