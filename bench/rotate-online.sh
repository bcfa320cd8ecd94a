#!/bin/bash
# DEK rotation while the volume is served (issue 12), part of `make bench`;
# runs alone too: bench/rotate-online.sh DIR (files, sockets and results in
# DIR). Two measurements over one cryptvol volume (attached header, data
# area pre-filled with random bytes), each alternating its configurations in
# a shuffled order, round after round, a fresh server per measurement:
#
# 1. The rotation's rate, in DIR/rotate.jsonl: the same volume rotated
#    online without a rate limit (`rotate-dek --control --detach`, timed to
#    the status "done"), offline (`rotate-dek`, server stopped), and copied
#    plainly: dd of the data area onto itself, the same bytes of the same
#    file rewritten in place as rotate-dek does, conv=fdatasync. Each starts
#    from the same state: no dirty pages, the whole file in the page cache.
# 2. A client during a rotation, in DIR/rotate-online.jsonl: each workload of
#    build/cryptvol-bench against the idle volume ("idle"), and started right
#    after an online rotation without a limit ("rot-unl") or at --rate
#    BENCH_ROT_RATE ("rot-rate"). The rotation's own bytes and rate over the
#    client's run are recorded, and whether it ran all along ("covered");
#    then it is finished unlimited and the server stopped.
#
# Every record has the server's CPU seconds (/proc/PID/stat of nbdkit).
# Environment (defaults): BENCH_ROUNDS (3), BENCH_ROT_CLIENT_ROUNDS (part
# 2's rounds, BENCH_ROUNDS), BENCH_ROT_DURATION (client seconds per
# measurement, 2: an unlimited rotation must outlast it),
# BENCH_ROTATE_SIZE (1536M), BENCH_ROT_RATE (100, MiB/s),
# BENCH_ROT_WORKLOADS (name:mode:qd:conns, as run-bench.sh), BENCH_QUICK=1
# (smoke test: 32M, one short round), BENCH_ROT_PARTS ("rate client").
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
build=$src/build
BENCH=$build/cryptvol-bench
PLUGIN=$build/nbdkit-cryptvol-plugin.so
KEYMGR=$build/cryptvol-keymgr
ROTCTL=$src/bench/rotctl.py

dir=${1:?usage: rotate-online.sh DIR}
rounds=${BENCH_ROUNDS:-3}
client_rounds=${BENCH_ROT_CLIENT_ROUNDS:-$rounds}
duration=${BENCH_ROT_DURATION:-2}
size=${BENCH_ROTATE_SIZE:-1536M}
rate=${BENCH_ROT_RATE:-100}
parts=${BENCH_ROT_PARTS:-rate client}
workloads=${BENCH_ROT_WORKLOADS:-rand-read:rand-read:32:1 rand-write:rand-write:32:1 \
seq-read:seq-read:16:1 seq-write:seq-write:16:1}
if [ -n "${BENCH_QUICK:-}" ]; then
  rounds=1 client_rounds=1 duration=${BENCH_ROT_DURATION:-0.3} size=${BENCH_ROTATE_SIZE:-32M}
fi
warmup=$(python3 -c "print(min(0.5, $duration / 2))")

mkdir -p "$dir"
cd "$dir"
server_pid=
cleanup () {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -f rot.img rot.kek timed.* rate.err
}
trap cleanup EXIT
: >rotate.jsonl
: >rotate-online.jsonl

"$KEYMGR" genkey rot.kek >/dev/null
"$KEYMGR" create rot.img --size "$size" --wrap file:rot.kek >/dev/null
read -r vsize offset < <(python3 -c 'import json, subprocess, sys
v = json.loads(subprocess.check_output([sys.argv[1], "info", sys.argv[2], "--json"]))["volume"]
print(v["size"], v["data_offset"])' "$KEYMGR" rot.img)
# Any ciphertext will do for timing: random bytes, every block allocated.
(set +o pipefail
 openssl enc -aes-128-ctr -nosalt -pass pass:fill -pbkdf2 -in /dev/zero 2>/dev/null \
   | head -c "$vsize" \
   | dd of=rot.img bs=16M seek="$offset" oflag=seek_bytes conv=notrunc,fdatasync status=none)

# start_server: serve rot.img on ./sock with the control socket ./ctl; sets
# server_pid.
start_server () {
  rm -f sock ctl
  nbdkit -f -U sock "$PLUGIN" rot.img keyfile=rot.kek control="$PWD/ctl" &
  server_pid=$!
  for _ in $(seq 200); do
    [ -S sock ] && [ -S ctl ] && return 0
    kill -0 "$server_pid" 2>/dev/null || { echo "rotate-online: nbdkit failed to start" >&2; exit 1; }
    sleep 0.05
  done
  echo "rotate-online: nbdkit did not start listening" >&2
  exit 1
}

stop_server () {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}

# timed CMD...: run CMD; ./timed.res gets "WALL CPU" (seconds; CPU of CMD
# and its children, user + system). Exits when CMD fails.
timed () {
  local TIMEFORMAT='%R %U %S'
  { time "$@" >/dev/null 2>timed.err; } 2>timed.out ||
    { echo "rotate-online: $* failed: $(cat timed.err)" >&2; exit 1; }
  awk '{ print $1, $2 + $3 }' timed.out >timed.res
}

# record JSON KEY=VALUE...: FILE gets JSON's object with the members added
# (VALUE is JSON: numbers as they are, strings quoted).
record () {
  local file=$1 obj=$2; shift 2
  python3 -c 'import json, sys
r = json.loads(sys.argv[1])
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    r[k] = json.loads(v)
print(json.dumps(r))' "$obj" "$@" >>"$file"
}

# --- 1. The rotation's rate: online, offline, a plain copy ------------------
rate_one () {
  local round=$1 how=$2 wall cpu r
  sync
  cat rot.img >/dev/null
  case $how in
    copy)
      timed dd if=rot.img of=rot.img bs=16M skip="$offset" seek="$offset" \
        iflag=skip_bytes,count_bytes oflag=seek_bytes count="$vsize" \
        conv=notrunc,fdatasync status=none
      read -r wall cpu <timed.res
      r="{\"wall_s\": $wall, \"cpu_s\": $cpu}" ;;
    offline)
      timed "$KEYMGR" rotate-dek rot.img --keyfile rot.kek
      read -r wall cpu <timed.res
      r="{\"wall_s\": $wall, \"cpu_s\": $cpu}" ;;
    online)
      start_server
      r=$(python3 "$ROTCTL" "$PWD/ctl" run --pid "$server_pid" -- \
            "$KEYMGR" rotate-dek rot.img --control "$PWD/ctl" --keyfile rot.kek --detach)
      stop_server ;;
  esac
  record rotate.jsonl "$r" round="$round" how="\"$how\"" bytes="$vsize"
  printf '  round %d rotation %-8s %s\n' "$round" "$how" \
    "$(python3 -c 'import json, sys; r = json.loads(sys.argv[1])
print("%.0f MiB/s" % (int(sys.argv[2]) / 2**20 / r["wall_s"]))' "$r" "$vsize")"
}

# --- 2. A client during an online rotation ----------------------------------
# rot_state: the state of the server's rotation (status "state").
rot_state () {
  python3 "$ROTCTL" "$PWD/ctl" status | python3 -c 'import json, sys
print(json.load(sys.stdin)["state"])'
}

client_one () {
  local round=$1 config=$2 name mode qd conns r
  IFS=: read -r name mode qd conns <<<"$3"
  local bench=("$BENCH" --mode "$mode" --qd "$qd" --conns "$conns"
               --duration "$duration" --warmup "$warmup" "nbd+unix:///?socket=$PWD/sock")
  sync
  start_server
  case $config in
    idle)
      r=$(python3 "$ROTCTL" "$PWD/ctl" during --pid "$server_pid" -- "${bench[@]}") ;;
    rot-*)
      local limit=()
      [ "$config" = rot-rate ] && limit=(--rate "$rate")
      "$KEYMGR" rotate-dek rot.img --control "$PWD/ctl" --keyfile rot.kek "${limit[@]}" \
        --detach >/dev/null
      r=$(python3 "$ROTCTL" "$PWD/ctl" during --pid "$server_pid" -- "${bench[@]}")
      # Finish it unlimited: the next measurement starts from a volume at
      # rest. It may end between the look and the change: without keys,
      # rotate-dek then fails to start another, and that is fine.
      if [ "$config" = rot-rate ] && [ "$(rot_state)" != done ] &&
         ! "$KEYMGR" rotate-dek rot.img --control "$PWD/ctl" --rate 0 --detach \
             >/dev/null 2>rate.err && [ "$(rot_state)" != done ]; then
        echo "rotate-online: $(cat rate.err)" >&2
        exit 1
      fi
      python3 "$ROTCTL" "$PWD/ctl" wait >/dev/null ;;
  esac
  local hwm; hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$server_pid/status")
  stop_server
  record rotate-online.jsonl "$r" round="$round" config="\"$config\"" workload="\"$name\"" \
    server_hwm_kib="$hwm" rot_limit="$([ "$config" = rot-rate ] && echo "$rate" || echo 0)"
  printf '  round %d %-9s %-11s %s\n' "$round" "$config" "$name" \
    "$(python3 -c 'import json, sys; r = json.loads(sys.argv[1])
print("%s IOPS  %s MiB/s  p99 %s us  rotation %.0f MiB/s%s" % (r["iops"], r["mib_s"],
      r["lat_p99_us"], r["rot_mib_s"], "" if r["covered"] or sys.argv[2] == "idle"
      else " (ended before the client)"))' "$r" "$config")"
}

for ((round = 1; round <= rounds || round <= client_rounds; round++)); do
  echo "rotation round $round ($size)"
  if [[ " $parts " == *" rate "* ]] && ((round <= rounds)); then
    for how in $(shuf -e copy offline online); do rate_one "$round" "$how"; done
  fi
  if [[ " $parts " == *" client "* ]] && ((round <= client_rounds)); then
    for w in $workloads; do
      for config in $(shuf -e idle rot-unl rot-rate); do client_one "$round" "$config" "$w"; done
    done
  fi
done
