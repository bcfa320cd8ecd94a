#!/bin/bash
# The benchmark driver (`make bench`). In one run, over one backing file, it
# serves the same bytes five ways and measures them alternately, round after
# round, with a fresh server per measurement:
#
#   plain      nbdkit file                       (the line to reach)
#   cryptvol   nbdkit cryptvol                   (buffered)
#   cv-direct  nbdkit cryptvol direct=true       (O_DIRECT, bypasses the cache)
#   luks       nbdkit file --filter=luks         (LUKS1, aes-xts-plain64)
#   qemu-nbd   qemu-nbd, driver=luks             (the same LUKS1 image)
#
# The backing file is a LUKS1 image made by cryptsetup, its payload pre-filled
# with random bytes; cryptvol serves the payload through a detached header, so
# every server reads and writes the same extents of the same file.
#
# Order: in each round, each workload runs its configurations in an order
# drawn from BENCH_SEED (printed, and "seed" in results.json; each run's
# place is its "pos"), balanced over the rounds: each configuration takes
# each place about equally often, none always follows the same one, and a
# workload's order differs from the round before.
# The state every measurement starts from: no dirty pages (sync), the whole
# backing file in the page cache (read through once; the cached share is
# recorded per run as "cached_pct"), a server started for it alone. So the
# O_DIRECT writes of cv-direct, which drop the cached pages they cover, leave
# no cold cache to whatever runs next.
#
# Reported per configuration and workload (bench/report.py): throughput and
# the server's CPU seconds (user + system, /proc/PID/stat, from its start to
# the client's end) per GiB moved (by every request, the warm-up's too),
# each as the median and min-max of the rounds, and their ratios to plain
# (median and min-max of the per-round ratios). Then the XTS engine, each
# implementation, on one core against `openssl speed` and against the same
# library's single call over 1 MiB, alternately in a shuffled order, in
# bytes per user CPU second (cryptvol-bench --mode xts [--one-call]); DEK rotation online, offline and
# against dd of the same data, and a client during an online rotation
# (bench/rotate-online.sh). The issue's targets are judged from the medians.
# Out: a table on stdout, $OUT/results.json and $OUT/chart.png.
#
# Environment: BENCH_ROUNDS (5), BENCH_DURATION (seconds measured per run, 2;
# each run adds a 0.5 s warm-up and about 1 s to settle and start), BENCH_SEED
# (the order's seed; random by default), BENCH_SIZE (1G), BENCH_OUT
# (build/bench), BENCH_DIR (the backing file's directory: build/bench/data,
# on the same file system as the build), BENCH_CONFIGS, BENCH_WORKLOADS
# (subsets, space separated), BENCH_XTS=0 and BENCH_ROTATE=0 (leave out the
# XTS or the rotation part), BENCH_FIO=1 (add fio's nbd engine as a second
# opinion), BENCH_QUICK=1 (a smoke test: small file, short runs, one round
# unless BENCH_ROUNDS says), BENCH_PLUGINS="NAME=PATH.so ..." (more cryptvol
# builds served like `cryptvol`, e.g. the plugin before a change, to measure
# the change in the same run: the report gives cryptvol's per-round ratios
# to each, throughput and CPU per GiB); the rotation's: BENCH_ROT_CLIENT_ROUNDS (3:
# rounds of a client during a rotation; the rotation's own rate gets
# BENCH_ROUNDS), BENCH_ROTATE_SIZE (1536M), BENCH_ROT_RATE (100),
# BENCH_ROT_WORKLOADS, BENCH_ROT_PARTS (see bench/rotate-online.sh).
# Time, on this 2-core machine shared with other work: the I/O part 200
# runs of about 3.5 s (12 min), XTS 1 min, the rotation 8-10 min (its rate 5
# rounds of ~20 s, a client during it 3 rounds of ~2.5 min): about 22 min.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
build=$src/build
BENCH=$build/cryptvol-bench
PLUGIN=$build/nbdkit-cryptvol-plugin.so
KEYMGR=$build/cryptvol-keymgr
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

rounds=${BENCH_ROUNDS:-5}
duration=${BENCH_DURATION:-2}
seed=${BENCH_SEED:-$(( $(date +%s%N) % 1000000 ))}
size=${BENCH_SIZE:-1G}
out=${BENCH_OUT:-$build/bench}
configs=${BENCH_CONFIGS:-plain cryptvol cv-direct luks qemu-nbd}
for p in ${BENCH_PLUGINS:-}; do configs+=" cv-${p%%=*}"; done
# name:mode:qd:conns
workloads=${BENCH_WORKLOADS:-seq-read:seq-read:16:1 seq-write:seq-write:16:1 \
rand-read:rand-read:32:1 rand-write:rand-write:32:1 \
rand-read-4c:rand-read:32:4 rand-write-4c:rand-write:32:4 \
mixed:mixed:32:1 seq-write-4c:seq-write:16:4}
xts_secs=1
if [ -n "${BENCH_QUICK:-}" ]; then
  rounds=${BENCH_ROUNDS:-1} duration=${BENCH_DURATION:-0.3} size=${BENCH_SIZE:-64M} xts_secs=0.2
fi
warmup=$(python3 -c "print(min(0.5, $duration / 2))")

for c in nbdkit "$BENCH" "$KEYMGR" cryptsetup openssl python3 fincore taskset; do
  command -v "$c" >/dev/null || { echo "run-bench: $c is not installed (make deps; make)" >&2; exit 1; }
done
for c in $configs; do
  if [ "$c" = qemu-nbd ] && ! command -v qemu-nbd >/dev/null; then
    echo "run-bench: qemu-nbd not installed, skipping it" >&2
    configs=${configs/qemu-nbd/}
  fi
done

mkdir -p "$out"
data=${BENCH_DIR:-$out/data}
mkdir -p "$data"
work=$(mktemp -d "$data/run.XXXXXX")
server_pid=
cleanup () {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
raw=$work/runs.jsonl
: >"$raw"

# The machine record, in every report.
machine=$(python3 - "$(nbdkit --version | head -1)" "$(qemu-nbd --version 2>/dev/null | head -1 || true)" <<'EOF'
import json, os, platform, subprocess, sys
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
ossl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
fs = subprocess.run(["stat", "-f", "-c", "%T", "."], capture_output=True, text=True).stdout.strip()
print(json.dumps({"cpu": cpu, "cpus": os.cpu_count(), "mem_gib": round(int(mem) / 2**20, 1),
                  "kernel": platform.release(), "openssl": ossl, "nbdkit": sys.argv[1],
                  "qemu_nbd": sys.argv[2], "filesystem": fs}))
EOF
)
echo "machine: $machine"
echo "order seed: $seed (BENCH_SEED=$seed repeats this run's order)"
t_start=$SECONDS

# --- The backing file ------------------------------------------------------
echo "preparing a $size LUKS1 image in $work ..."
bytes=$(numfmt --from=iec "$size")
head -c 64 /dev/urandom >master.key
printf 'bench-passphrase' >luks.pass
# Payload pre-filled (reads hit allocated data, not holes); fast random bytes.
(set +o pipefail
 openssl enc -aes-128-ctr -nosalt -pass pass:fill -pbkdf2 -in /dev/zero 2>/dev/null \
   | head -c $((bytes + 2 * 1048576)) >disk.img)
cryptsetup luksFormat --type luks1 --batch-mode --cipher aes-xts-plain64 \
  --key-size 512 --hash sha256 --iter-time 10 \
  --volume-key-file master.key --key-file luks.pass disk.img
offset=$(( $(cryptsetup luksDump disk.img | awk '/^Payload offset:/ {print $3}') * 512 ))
payload=$(( $(stat -c %s disk.img) - offset ))
"$KEYMGR" genkey kek >/dev/null
# cryptvol's default 4096-byte sectors over the LUKS payload: same extents.
"$KEYMGR" create disk.img --detached-header disk.hdr --data-offset "$offset" \
  --size "$payload" --wrap file:kek >/dev/null
sync

# start_server CONFIG: serve disk.img on ./sock; sets server_pid.
start_server () {
  rm -f sock
  case $1 in
    # The payload only (the offset filter adds an offset, nothing else): a
    # write must not land on the LUKS header.
    plain)     nbdkit -f -U sock file disk.img --filter=offset offset="$offset" range="$payload" & ;;
    cryptvol)  nbdkit -f -U sock "$PLUGIN" disk.img header=disk.hdr keyfile=kek & ;;
    cv-direct) nbdkit -f -U sock "$PLUGIN" disk.img header=disk.hdr keyfile=kek direct=true & ;;
    cv-*)      local so
               so=$(tr ' ' '\n' <<<"${BENCH_PLUGINS:-}" | sed -n "s|^${1#cv-}=||p")
               nbdkit -f -U sock "${so:?no plugin for $1 in BENCH_PLUGINS}" disk.img \
                 header=disk.hdr keyfile=kek & ;;
    luks)      nbdkit -f -U sock file disk.img --filter=luks passphrase=+luks.pass & ;;
    qemu-nbd)  qemu-nbd -k "$PWD/sock" -t -e 16 --cache=writeback \
                 --object secret,id=sec0,file=luks.pass \
                 --image-opts driver=luks,key-secret=sec0,file.driver=file,file.filename=disk.img & ;;
  esac
  server_pid=$!
  for _ in $(seq 200); do
    [ -S sock ] && return 0
    kill -0 "$server_pid" 2>/dev/null || { echo "run-bench: $1 failed to start" >&2; exit 1; }
    sleep 0.05
  done
  echo "run-bench: $1 did not start listening" >&2
  exit 1
}

# CPU seconds (user + system) of a process so far.
cpu_secs () {
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0
}

stop_server () {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}

# settle: bring the backing file to the state every measurement starts from:
# no dirty pages, all of it in the page cache (read again, up to three times,
# while others on the machine evict it). Prints the cached percentage.
settle () {
  local pct
  for _ in 1 2 3; do
    sync
    cat disk.img >/dev/null
    pct=$(fincore --bytes --noheadings --output RES,SIZE disk.img |
            awk '{ printf "%.1f", $2 ? 100 * $1 / $2 : 0 }')
    awk -v p="$pct" 'BEGIN { exit !(p >= 99) }' && break
  done
  echo "$pct"
}

# measure ROUND POS CONFIG WORKLOAD: settle, one fresh server, one benchmark;
# one line of JSON in runs.jsonl (with the server's CPU time and peak RSS,
# the run's place in its round's order, the cached share it started from).
measure () {
  local round=$1 pos=$2 config=$3 name mode qd conns cached
  IFS=: read -r name mode qd conns <<<"$4"
  cached=$(settle)
  start_server "$config"
  local c0; c0=$(cpu_secs "$server_pid")
  local res
  # The server's private memory (RssAnon), sampled while it serves: VmHWM
  # also counts file pages it maps (cryptvol's mapped read path maps the
  # data file, so the page cache it reads shows up in its RSS).
  local anon_pid
  (peak=0; while [ -e "/proc/$server_pid" ]; do
     a=$(awk '/^RssAnon:/ {print $2}' "/proc/$server_pid/status" 2>/dev/null || echo 0)
     [ "${a:-0}" -gt "$peak" ] && { peak=$a; echo "$peak" >anon.peak; }
     sleep 0.1
   done) &
  anon_pid=$!
  if ! res=$("$BENCH" --mode "$mode" --qd "$qd" --conns "$conns" \
               --duration "$duration" --warmup "$warmup" \
               "nbd+unix:///?socket=$PWD/sock" 2>bench.err); then
    echo "run-bench: $config $name failed: $(cat bench.err)" >&2
    res='{"iops": null, "mib_s": null, "bytes": 0}'
  fi
  local c1 hwm anon; c1=$(cpu_secs "$server_pid")
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$server_pid/status" 2>/dev/null || echo 0)
  kill "$anon_pid" 2>/dev/null || true
  wait "$anon_pid" 2>/dev/null || true
  anon=$(cat anon.peak 2>/dev/null || echo 0)
  rm -f anon.peak
  stop_server
  python3 -c 'import json, sys
r = json.loads(sys.argv[2])
r.update(round=int(sys.argv[3]), pos=int(sys.argv[4]), config=sys.argv[5], workload=sys.argv[6],
         conns=int(sys.argv[7]), server_cpu_s=float(sys.argv[8]),
         server_hwm_kib=int(sys.argv[9]), cached_pct=float(sys.argv[10]),
         server_anon_kib=int(sys.argv[11]))
with open(sys.argv[1], "a") as f:
    print(json.dumps(r), file=f)
gib = r.get("all_bytes", r["bytes"]) / 2**30
print("  round %d %-10s %-14s %10s IOPS %9s MiB/s %6s CPU s/GiB  cache %s%%" % (
    r["round"], r["config"], r["workload"], r.get("iops"), r.get("mib_s"),
    "%.3f" % (r["server_cpu_s"] / gib) if gib else "-", sys.argv[10]))' \
    "$raw" "$res" "$round" "$pos" "$config" "$name" "$conns" \
    "$(awk "BEGIN {print $c1 - $c0}")" "$hwm" "$cached" "$anon"
}

# The measurements in the order they run (bench/schedule.py says how).
t_io=$SECONDS
mapfile -t plan < <(python3 "$src/bench/schedule.py" "$seed" "$rounds" "$configs" "$workloads")
cur=
for line in "${plan[@]}"; do
  read -r r w pos c <<<"$line"
  [ "$r" = "$cur" ] || { echo "round $r/$rounds"; cur=$r; }
  measure "$r" "$pos" "$c" "$w"
done
n_io=$(wc -l <"$raw")
io_s=$(( SECONDS - t_io ))
echo "I/O: $n_io measurements in $io_s s"

# --- fio's nbd engine, a second opinion (one round) --------------------------
fio_raw=$work/fio.jsonl
: >"$fio_raw"
if [ -n "${BENCH_FIO:-}" ] && fio --enghelp=nbd >/dev/null 2>&1; then
  echo "fio second opinion"
  for config in "${cfg[@]}"; do
    for spec in randread:4k:32 read:1m:16; do
      IFS=: read -r rw bs qd <<<"$spec"
      start_server "$config"
      fio --name=b --ioengine=nbd --uri="nbd+unix:///?socket=$PWD/sock" \
        --rw="$rw" --bs="$bs" --iodepth="$qd" --time_based --runtime="$duration" \
        --ramp_time=0.5 --output-format=json >fio.json 2>/dev/null || true
      stop_server
      python3 -c 'import json, sys
j = json.load(open("fio.json"))["jobs"][0]["read"]
print(json.dumps({"config": sys.argv[1], "workload": "fio-" + sys.argv[2] + "-" + sys.argv[3],
                  "iops": j["iops"], "mib_s": j["bw_bytes"] / 2**20}))' "$config" "$rw" "$bs" >>"$fio_raw" || true
    done
  done
fi

# --- The XTS engine, on one core, alternately in a shuffled order -----------
# Per round: cryptvol's engine with each implementation (4096- and 512-byte
# units), `openssl speed -evp aes-256-xts` at the same sizes, and each
# library's single call over 1 MiB (cryptvol-bench --one-call). Which
# implementation `auto` picks is recorded once per unit size. An engine that
# reports another implementation than asked for (not built yet) is recorded
# as what it is, and the report leaves the one asked for out. Rates are per
# user CPU second, as `openssl speed` counts them (wall-clock rates, kept
# for cryptvol-bench, swing with whatever else runs on the core).
xts_raw=$work/xts.jsonl
: >"$xts_raw"
core=$(( $(nproc) - 1 ))

# xts_one ROUND WHAT SIZE ENGINE: one timing on $core, one line in xts.jsonl.
xts_one () {
  local round=$1 what=$2 size=$3 engine=$4 r
  case $what in
    engine)   r=$(taskset -c "$core" "$BENCH" --mode xts --engine "$engine" \
                    --sector-size "$size" --duration "$xts_secs") ;;
    one-call) r=$(taskset -c "$core" "$BENCH" --mode xts --one-call --engine "$engine" \
                    --bs "$size" --duration "$xts_secs") ;;
    auto)     r=$("$BENCH" --mode xts --engine auto --sector-size "$size" --duration 0.01 2>/dev/null) ;;
    openssl-speed)
              r=$(taskset -c "$core" openssl speed -mr -seconds 1 -evp aes-256-xts \
                    -bytes "$size" 2>/dev/null |
                  awk -F: '/^\+F:/ {printf "{\"impl\": \"openssl\", \"bytes_per_user_s\": %s}", $4}') ;;
  esac
  python3 -c 'import json, sys
r = json.loads(sys.argv[2] or "{}")
out = {"round": int(sys.argv[3]), "what": sys.argv[4], "size": int(sys.argv[5]),
       "engine": sys.argv[6], "impl": r.get("impl"), "bytes_per_s": r.get("bytes_per_s"),
       "bytes_per_cpu_s": r.get("bytes_per_user_s")}
with open(sys.argv[1], "a") as f:
    print(json.dumps(out), file=f)
if out["what"] != "auto":
    print("  round %d xts %-13s %-7s %7d B  %s MB per CPU s%s" % (
        out["round"], out["what"], out["engine"], out["size"],
        "%.0f" % (out["bytes_per_cpu_s"] / 1e6) if out["bytes_per_cpu_s"] else "-",
        "" if out["impl"] in (None, out["engine"]) else "  (ran " + out["impl"] + ")"))' \
    "$xts_raw" "$r" "$round" "$what" "$size" "$engine"
}

if [ "${BENCH_XTS:-1}" != 0 ]; then
  echo "XTS on core $core"
  t_xts=$SECONDS
  xts_one 0 auto 4096 auto
  xts_one 0 auto 512 auto
  for ((r = 1; r <= rounds; r++)); do
    mapfile -t items < <(python3 -c 'import random, sys
items = ["engine 4096 openssl", "engine 4096 gcrypt", "openssl-speed 4096 openssl",
         "one-call 1048576 openssl", "one-call 1048576 gcrypt",
         "engine 512 openssl", "engine 512 gcrypt", "openssl-speed 512 openssl"]
random.Random(int(sys.argv[1]) * 1000 + 999 - int(sys.argv[2])).shuffle(items)
print("\n".join(items))' "$seed" "$r")
    for item in "${items[@]}"; do
      read -r what usize engine <<<"$item"
      xts_one "$r" "$what" "$usize" "$engine"
    done
  done
  echo "XTS: $(( SECONDS - t_xts )) s"
fi

# --- DEK rotation: its rate online, offline and as a plain copy; a client
# during an online rotation (bench/rotate-online.sh says how) ---------------
t_rot=$SECONDS
if [ "${BENCH_ROTATE:-1}" != 0 ]; then
  BENCH_ROUNDS=$rounds BENCH_ROT_CLIENT_ROUNDS=${BENCH_ROT_CLIENT_ROUNDS:-3} \
    "$src/bench/rotate-online.sh" "$work/rot"
fi
echo "rotation: $(( SECONDS - t_rot )) s; whole run so far $(( SECONDS - t_start )) s"

python3 "$src/bench/report.py" --raw "$raw" --xts "$xts_raw" --fio "$fio_raw" \
  --rotate "$work/rot/rotate.jsonl" --rotate-online "$work/rot/rotate-online.jsonl" \
  --machine "$machine" --params "{\"rounds\": $rounds, \"duration_s\": $duration, \"warmup_s\": $warmup, \"seed\": $seed, \"size\": \"$size\", \"configs\": \"$configs\", \"io_s\": $io_s, \"io_runs\": $n_io}" \
  --out "$out"
