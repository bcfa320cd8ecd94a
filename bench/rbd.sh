#!/bin/bash
# cryptvol on Ceph RBD against the plaintext baseline (issue 17; `make
# bench-rbd`, part of `make bench`). In one run, on one throw-away Ceph
# cluster (tests/ceph/cluster.sh: one monitor, one memstore OSD, on this
# machine) or on a cluster of yours (BENCH_RBD_CONF), one RBD image made by
# `cryptvol-keymgr create rbd:POOL/IMAGE` (header attached at the start, its
# data area pre-filled with random bytes) is served two ways, a fresh server
# per measurement, and a third line drawn for reference:
#
#   qemu-nbd   qemu-nbd, its rbd driver, raw over the image's data area
#              (driver=raw,offset=DATA_OFFSET,size=SIZE,file.driver=rbd):
#              the plaintext line to reach
#   cryptvol   nbdkit cryptvol rbd:POOL/IMAGE (librbd's aio API)
#   librbd     `rbd bench` on a second image of the same size, filled
#              alike: librbd's own rate, no NBD, no server (what the store
#              gives a librbd client on this machine; its CPU is the
#              client's)
#
# so both servers read and write the same objects of the same image. Workloads
# (build/cryptvol-bench, libnbd, one Unix socket connection): 1 MiB
# sequential read and write at queue depth 16, 4 KiB random read and write
# at queue depth 32. Order: per round and workload the two servers run in a
# seeded, balanced order (each first in about half the rounds, never the
# same order for a workload twice in a row), as in bench/run-bench.sh.
#
# Cache: the same librbd cache setting for both servers, BENCH_RBD_CACHE
# (default false): false = `rbd cache = false` in the client configuration
# both read and qemu-nbd --cache=none (qemu sets rbd_cache from its cache
# mode, after reading the configuration: none -> false); true = `rbd cache
# = true`, `rbd cache writethrough until flush = false` and qemu-nbd
# --cache=writeback. The client sends no flush.
#
# Measured per run: throughput (MiB/s, IOPS), latency p50/p99, the server's
# CPU seconds (user + system, /proc/PID/stat, from when it answers until the
# client's end) and, for a cluster this script started, the monitor's and
# OSD's CPU seconds over the same span; each per GiB moved (every request,
# the warm-up's too). Reported by bench/rbd-report.py: medians with min-max
# of the rounds, cryptvol / qemu-nbd as the median (min-max) of per-round
# ratios, target >= 0.9 judged from the median ratio.
# Out: a table on stdout, $OUT/results.json, $OUT/runs.jsonl; with
# BENCH_RBD_PERF=1 also perf profiles of one more run of each server and
# workload ($OUT/perf-SERVER-WORKLOAD.txt).
#
# Environment: BENCH_ROUNDS (5), BENCH_DURATION (2 s measured per run, after
# a 0.5 s warm-up), BENCH_SEED, BENCH_QUICK=1 (a smoke test: 64 MiB, short
# runs, one round), BENCH_RBD_SIZE (512M: the data area, and the size of
# the reference image: the throw-away OSD's memstore holds 2 GiB), BENCH_RBD_OUT
# (build/bench/rbd), BENCH_RBD_CACHE (false|true), BENCH_RBD_WORKLOADS
# (NAME:MODE:QD entries), BENCH_RBD_CONFIGS ("qemu-nbd cryptvol librbd"),
# BENCH_PLUGINS="NAME=PATH.so ..." (other cryptvol builds served like
# cryptvol, as configuration cv-NAME: a change measured in the same run),
# BENCH_RBD_PERF=1, BENCH_RBD_CONF=FILE (a running cluster's ceph.conf: no
# cluster is started; BENCH_RBD_KEYRING, BENCH_RBD_ID (admin),
# BENCH_RBD_POOL (rbd); the images cryptvol-bench-PID and
# cryptvol-bench-PID-ref are made and removed).
# Exit 77 (skipped) when Ceph, qemu-nbd's rbd driver or nbdkit is missing.
# Time here (2 cores): ~3 minutes with the defaults (60 runs of ~3 s,
# the cluster ~2 s, the fills ~10 s).
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
build=$src/build
BENCH=$build/cryptvol-bench
PLUGIN=$build/nbdkit-cryptvol-plugin.so
KEYMGR=$build/cryptvol-keymgr
CLUSTER_SH=${BENCH_RBD_CLUSTER_SH:-$src/tests/ceph/cluster.sh}
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
unset CEPH_ARGS CEPH_CONF CEPH_KEYRING  # everything below names its cluster

rounds=${BENCH_ROUNDS:-5}
duration=${BENCH_DURATION:-2}
seed=${BENCH_SEED:-$(( $(date +%s%N) % 1000000 ))}
size=${BENCH_RBD_SIZE:-512M}
out=${BENCH_RBD_OUT:-$build/bench/rbd}
cache=${BENCH_RBD_CACHE:-false}
configs=${BENCH_RBD_CONFIGS:-qemu-nbd cryptvol librbd}
for p in ${BENCH_PLUGINS:-}; do configs+=" cv-${p%%=*}"; done
workloads=${BENCH_RBD_WORKLOADS:-seq-read:seq-read:16 seq-write:seq-write:16 \
rand-read:rand-read:32 rand-write:rand-write:32}
if [ -n "${BENCH_QUICK:-}" ]; then
  rounds=${BENCH_ROUNDS:-1} duration=${BENCH_DURATION:-0.3} size=${BENCH_RBD_SIZE:-64M}
fi
warmup=$(python3 -c "print(min(0.5, $duration / 2))")
case $cache in
  false) qemu_cache=none ;;
  true)  qemu_cache=writeback ;;
  *) echo "rbd.sh: BENCH_RBD_CACHE is false or true, not $cache" >&2; exit 2 ;;
esac

skip () { echo "rbd.sh: SKIP: $*" >&2; exit 77; }
for c in nbdkit qemu-nbd nbdcopy nbdinfo rbd python3 openssl; do
  command -v "$c" >/dev/null || skip "$c is not installed"
done
for c in "$BENCH" "$KEYMGR" "$PLUGIN"; do
  [ -e "$c" ] || { echo "rbd.sh: $c is missing (make)" >&2; exit 1; }
done
ls /usr/lib/*/qemu/block-rbd.so >/dev/null 2>&1 ||
  skip "qemu-nbd has no rbd driver (apt-get install qemu-block-extra)"
if [ -z "${BENCH_RBD_CONF:-}" ]; then
  command -v ceph-mon >/dev/null && command -v ceph-osd >/dev/null ||
    skip "ceph-mon/ceph-osd are not installed (make deps)"
  [ -x "$CLUSTER_SH" ] || skip "$CLUSTER_SH is missing"
fi

mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/cv-bench-rbd.XXXXXX")
server_pid= cluster_dir= image_made=
cleanup () {
  set +e
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; fi
  if [ -n "$image_made" ] && [ -n "${BENCH_RBD_CONF:-}" ]; then
    rbd "${rbd_args[@]}" rm "$pool/$image" >/dev/null 2>&1
    rbd "${rbd_args[@]}" rm "$pool/$image-ref" >/dev/null 2>&1
  fi
  [ -n "$cluster_dir" ] && "$CLUSTER_SH" stop "$cluster_dir" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
raw=$out/runs.jsonl
: >"$raw"
t_start=$SECONDS

# --- The cluster and the client configuration both servers read ----------
bytes=$(numfmt --from=iec "$size")
if [ -n "${BENCH_RBD_CONF:-}" ]; then
  base_conf=$BENCH_RBD_CONF keyring=${BENCH_RBD_KEYRING:-}
  id=${BENCH_RBD_ID:-admin} pool=${BENCH_RBD_POOL:-rbd} image=cryptvol-bench-$$
  cluster_pids=()
else
  cluster_dir=$work/ceph
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  t0=$SECONDS
  "$CLUSTER_SH" start "$cluster_dir" "$port" >cluster.log 2>&1 ||
    { cat cluster.log >&2; echo "rbd.sh: the Ceph cluster did not start" >&2; exit 1; }
  echo "ceph cluster started in $cluster_dir on 127.0.0.1:$port ($(( SECONDS - t0 )) s)"
  base_conf=$cluster_dir/ceph.conf keyring=$cluster_dir/keyring
  id=admin pool=rbd image=cv
  mapfile -t cluster_pids < <(find "$cluster_dir" -name '*.pid' -exec cat {} \;)
fi
conf=$work/client.conf
{
  cat "$base_conf"
  # No admin socket per client: the servers and rbd bench would share its path.
  printf '\n[client]\nadmin socket =\nrbd cache = %s\n' "$cache"
  [ "$cache" = true ] && printf 'rbd cache writethrough until flush = false\n'
} >"$conf"
rbd_args=(-c "$conf" --id "$id")
[ -n "$keyring" ] && rbd_args+=(--keyring "$keyring")
ceph_params=(ceph-conf="$conf" ceph-id="$id")
[ -n "$keyring" ] && ceph_params+=(ceph-keyring="$keyring")
qemu_rbd="file.driver=rbd,file.pool=$pool,file.image=$image,file.conf=$conf,file.user=$id"

# The machine record.
machine=$(python3 - "$(nbdkit --version | head -1)" "$(qemu-nbd --version | head -1)" \
  "$(ceph --version 2>/dev/null || rbd --version)" <<'EOF'
import json, os, platform, sys
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
print(json.dumps({"cpu": cpu, "cpus": os.cpu_count(), "mem_gib": round(int(mem) / 2**20, 1),
                  "kernel": platform.release(), "nbdkit": sys.argv[1], "qemu_nbd": sys.argv[2],
                  "ceph": " ".join(sys.argv[3].split()[:3]), "loadavg": open("/proc/loadavg").read().split()[:3]}))
EOF
)
echo "machine: $machine"
echo "order seed: $seed (BENCH_SEED=$seed repeats this run's order); rbd cache = $cache"

# --- The image: cryptvol's volume, its data area filled ------------------
"$KEYMGR" genkey kek >/dev/null
t0=$SECONDS
# keymgr through Ceph's environment (create takes no --ceph-* options yet).
keymgr () {
  CEPH_CONF=$conf CEPH_ARGS="--id $id${keyring:+ --keyring $keyring}" "$KEYMGR" "$@"
}
keymgr create "rbd:$pool/$image" --size "$bytes" --wrap file:kek >/dev/null
image_made=1
data_offset=$(keymgr info "rbd:$pool/$image" --json |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["volume"]["data_offset"])')

# start_server CONFIG: serve the image on ./sock, return once it answers
# (nbdinfo); sets server_pid.
start_server () {
  rm -f sock
  case $1 in
    qemu-nbd) qemu-nbd -k "$PWD/sock" -t -e 16 --cache="$qemu_cache" --image-opts \
                "driver=raw,offset=$data_offset,size=$bytes,$qemu_rbd" 2>>server.log & ;;
    cv-*)     local so
              so=$(tr ' ' '\n' <<<"${BENCH_PLUGINS:-}" | sed -n "s|^${1#cv-}=||p")
              nbdkit -f -U sock "${so:?no plugin for $1 in BENCH_PLUGINS}" "rbd:$pool/$image" \
                keyfile=kek "${ceph_params[@]}" 2>>server.log & ;;
    cryptvol) nbdkit -f -U sock "$PLUGIN" "rbd:$pool/$image" keyfile=kek "${ceph_params[@]}" \
                2>>server.log & ;;
    *) echo "rbd.sh: unknown configuration $1" >&2; exit 2 ;;
  esac
  server_pid=$!
  local i
  for i in $(seq 400); do
    if [ -S sock ] && nbdinfo --size "nbd+unix:///?socket=$PWD/sock" >/dev/null 2>&1; then
      # The CPU counted is this process's: the server itself, no wrapper.
      local comm=nbdkit; [ "$1" = qemu-nbd ] && comm=qemu-nbd
      grep -qx "$comm" "/proc/$server_pid/comm" 2>/dev/null ||
        { echo "rbd.sh: $server_pid is not the $1 server" >&2; exit 1; }
      return 0
    fi
    kill -0 "$server_pid" 2>/dev/null ||
      { tail -n 20 server.log >&2; echo "rbd.sh: $1 failed to start" >&2; exit 1; }
    sleep 0.05
  done
  tail -n 20 server.log >&2
  echo "rbd.sh: $1 did not answer in 20 s" >&2
  exit 1
}
stop_server () {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}
# cpu_secs PID...: CPU seconds (user + system) of the processes so far.
cpu_secs () {
  local p
  for p in "$@"; do
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$p/stat" 2>/dev/null || echo 0
  done | awk '{ s += $1 } END { printf "%.2f\n", s }'
}

# Fill the data area with random bytes (reads then hit written objects; a
# never-written object is not read at all with the object map).
start_server qemu-nbd
(set +o pipefail
 openssl enc -aes-128-ctr -nosalt -pass pass:fill -pbkdf2 -in /dev/zero 2>/dev/null |
   head -c "$bytes" | nbdcopy - "nbd+unix:///?socket=$PWD/sock")
stop_server
echo "image $pool/$image: data offset $data_offset, $size data filled ($(( SECONDS - t0 )) s)"
ref_image=$image-ref
if [[ " $configs " == *" librbd "* ]]; then
  rbd "${rbd_args[@]}" create --size "${bytes}B" "$pool/$ref_image"
  rbd "${rbd_args[@]}" bench --io-type write --io-pattern seq --io-size 4M --io-threads 16 \
    --io-total "$bytes" "$pool/$ref_image" >/dev/null 2>>rbd-bench.log
  echo "image $pool/$ref_image (for rbd bench): $size filled"
fi

# measure ROUND POS CONFIG WORKLOAD: one fresh server, one benchmark; one
# line of JSON in runs.jsonl.
measure () {
  local round=$1 pos=$2 config=$3 name mode qd
  IFS=: read -r name mode qd <<<"$4"
  if [ "$config" = librbd ]; then
    measure_librbd "$@"
    return
  fi
  start_server "$config"
  local c0 k0 res
  c0=$(cpu_secs "$server_pid")
  k0=$(cpu_secs "${cluster_pids[@]}")
  if ! res=$("$BENCH" --mode "$mode" --qd "$qd" --duration "$duration" --warmup "$warmup" \
               "nbd+unix:///?socket=$PWD/sock" 2>bench.err); then
    echo "rbd.sh: $config $name failed: $(cat bench.err)" >&2
    res='{"iops": null, "mib_s": null, "bytes": 0}'
  fi
  local c1 k1
  c1=$(cpu_secs "$server_pid")
  k1=$(cpu_secs "${cluster_pids[@]}")
  stop_server
  record "$round" "$pos" "$config" "$name" "$res" "$(awk "BEGIN {print $c1 - $c0}")" \
    "$(awk "BEGIN {print $k1 - $k0}")"
}

# record ROUND POS CONFIG WORKLOAD JSON SERVER_CPU CLUSTER_CPU: the line of
# runs.jsonl and the progress line.
record () {
  python3 -c 'import json, sys
r = json.loads(sys.argv[2])
r.update(round=int(sys.argv[3]), pos=int(sys.argv[4]), config=sys.argv[5], workload=sys.argv[6],
         server_cpu_s=float(sys.argv[7]), cluster_cpu_s=float(sys.argv[8]) if sys.argv[9] != "0" else None,
         loadavg=float(open("/proc/loadavg").read().split()[0]))
with open(sys.argv[1], "a") as f:
    print(json.dumps(r), file=f)
gib = r.get("all_bytes", r["bytes"]) / 2**30
print("  round %d %-9s %-11s %9s IOPS %8s MiB/s  server %6s  cluster %6s CPU s/GiB" % (
    r["round"], r["config"], r["workload"], r.get("iops"), r.get("mib_s"),
    "%.3f" % (r["server_cpu_s"] / gib) if gib else "-",
    "%.3f" % (r["cluster_cpu_s"] / gib) if gib and r["cluster_cpu_s"] is not None else "-"))' \
    "$raw" "$5" "$1" "$2" "$3" "$4" "$6" "$7" "${#cluster_pids[@]}"
}

# measure_librbd ROUND POS librbd WORKLOAD: the reference without NBD: `rbd
# bench` (librbd's aio API, --io-threads requests in flight) on the image
# $ref_image, the same size, filled alike; sized to run about
# BENCH_DURATION + warm-up from the rate of its previous run of the
# workload (rbd bench has no time limit and no warm-up: all of it counts).
# Its CPU (the "server" column) is the rbd client's.
measure_librbd () {
  local name mode qd type pattern bs est res k0 k1 total
  IFS=: read -r name mode qd <<<"$4"
  case $mode in
    seq-read)   type=read  pattern=seq  bs=1048576 est=$(( 256 << 20 )) ;;
    seq-write)  type=write pattern=seq  bs=1048576 est=$(( 128 << 20 )) ;;
    rand-read)  type=read  pattern=rand bs=4096    est=$(( 16 << 20 )) ;;
    rand-write) type=write pattern=rand bs=4096    est=$(( 8 << 20 )) ;;
    *) echo "rbd.sh: librbd has no $mode" >&2; return 0 ;;
  esac
  [ -e "rate-$name" ] && est=$(cat "rate-$name")
  total=$(awk -v r="$est" -v d="$duration" -v w="$warmup" -v b="$bs" \
    'BEGIN { t = int(r * (d + w) / b) * b; if (t < 64 * b) t = 64 * b; printf "%d\n", t }')
  k0=$(cpu_secs "${cluster_pids[@]}")
  res=$(python3 -c 'import json, resource, subprocess, sys, time
t0 = time.monotonic()
p = subprocess.run(sys.argv[3:], capture_output=True, text=True)
secs = time.monotonic() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
total, bs = int(sys.argv[1]), int(sys.argv[2])
ok = p.returncode == 0
if not ok:
    print(p.stderr[-500:], file=sys.stderr)
print(json.dumps({"mode": "rbd bench", "seconds": round(secs, 3), "bytes": total if ok else 0,
                  "all_bytes": total if ok else 0, "ops": total // bs if ok else 0,
                  "iops": round(total / bs / secs, 1) if ok else None,
                  "mib_s": round(total / 2**20 / secs, 2) if ok else None,
                  "lat_p50_us": None, "lat_p99_us": None, "errors": 0 if ok else 1,
                  "client_cpu_s": ru.ru_utime + ru.ru_stime}))' "$total" "$bs" \
    rbd "${rbd_args[@]}" bench --io-type "$type" --io-pattern "$pattern" --io-size "$bs" \
      --io-threads "$qd" --io-total "$total" "$pool/$ref_image")
  k1=$(cpu_secs "${cluster_pids[@]}")
  python3 -c 'import json, sys; r = json.loads(sys.argv[1])
if r["mib_s"]: print(int(r["mib_s"] * 2**20))' "$res" >"rate-$name" || true
  [ -s "rate-$name" ] || rm -f "rate-$name"
  record "$1" "$2" librbd "$name" "$res" \
    "$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["client_cpu_s"])' "$res")" \
    "$(awk "BEGIN {print $k1 - $k0}")"
}

# schedule: "ROUND WORKLOAD POS CONFIG" per line, round by round; each
# workload's order in a round the permutation (of 200 drawn from the seed)
# that least repeats earlier rounds' places and successions, never the
# previous round's order when there is another.
schedule () {
  python3 -c 'import random, sys
from collections import Counter
seed, rounds = int(sys.argv[1]), int(sys.argv[2])
cfg, wls = sys.argv[3].split(), sys.argv[4].split()
plan = {}
for wi, w in enumerate(wls):
    rng = random.Random(seed * 1000 + wi)
    place, after, orders = Counter(), Counter(), []
    for r in range(rounds):
        def cost(o):
            return (sum(place[c, i] for i, c in enumerate(o)) +
                    sum(after[p] for p in zip(o, o[1:])) + 100 * (orders[-1:] == [o]))
        best = min((rng.sample(cfg, len(cfg)) for _ in range(200)), key=cost)
        place.update((c, i) for i, c in enumerate(best))
        after.update(zip(best, best[1:]))
        orders.append(best)
    plan[w] = orders
for r in range(rounds):
    for w in wls:
        for pos, c in enumerate(plan[w][r]):
            print(r + 1, w, pos, c)' "$seed" "$rounds" "$configs" "$workloads"
}

t_io=$SECONDS
mapfile -t plan < <(schedule)
cur=
for line in "${plan[@]}"; do
  read -r r w pos c <<<"$line"
  [ "$r" = "$cur" ] || { echo "round $r/$rounds"; cur=$r; }
  measure "$r" "$pos" "$c" "$w"
done
io_s=$(( SECONDS - t_io ))
echo "I/O: $(wc -l <"$raw") measurements in $io_s s"

# --- Where the servers' time goes: perf, one more run each ----------------
if [ -n "${BENCH_RBD_PERF:-}" ] && command -v perf >/dev/null; then
  for w in $workloads; do
    IFS=: read -r name mode qd <<<"$w"
    for c in $configs; do
      [ "$c" != librbd ] || continue
      start_server "$c"
      perf record -q -g -o perf.data -p "$server_pid" -- sleep "$duration" >/dev/null 2>&1 &
      perf_pid=$!
      "$BENCH" --mode "$mode" --qd "$qd" --duration "$duration" --warmup 0 \
        "nbd+unix:///?socket=$PWD/sock" >/dev/null 2>&1 || true
      wait "$perf_pid" || true
      stop_server
      (set +o pipefail  # head closes the pipes early
       echo "# perf: $c, $name (qd $qd), rbd cache = $cache; self time by DSO, then symbol"
       perf report -i perf.data --no-children --sort dso --stdio -g none 2>/dev/null | grep -v '^$' | head -n 30
        perf report -i perf.data --no-children --sort dso,sym --stdio -g none 2>/dev/null |
          grep -v '^$' | head -n 60
        echo "# by thread (comm)"
        perf report -i perf.data --no-children --sort comm --stdio -g none 2>/dev/null |
          grep -v '^$' | head -n 30
      ) >"$out/perf-$c-$name.txt"
      echo "perf: $out/perf-$c-$name.txt"
    done
  done
fi

python3 "$src/bench/rbd-report.py" --raw "$raw" --machine "$machine" --out "$out" \
  --params "{\"rounds\": $rounds, \"duration_s\": $duration, \"warmup_s\": $warmup, \"seed\": $seed, \"size\": \"$size\", \"configs\": \"$configs\", \"rbd_cache\": $cache, \"data_offset\": $data_offset, \"cluster\": \"${BENCH_RBD_CONF:-throw-away: one mon, one memstore OSD, this machine}\", \"io_s\": $io_s, \"total_s\": $(( SECONDS - t_start ))}"
echo "bench-rbd: $(( SECONDS - t_start )) s in all"
