#!/bin/bash
# The benchmark driver (`make bench`). In one run, over one backing file, it
# serves the same bytes five ways and measures them alternately, round after
# round, rotating the order, with a fresh server per measurement:
#
#   plain      nbdkit file                       (the line to reach)
#   cryptvol   nbdkit cryptvol                   (buffered)
#   cv-direct  nbdkit cryptvol direct=true       (O_DIRECT, bypasses the cache)
#   luks       nbdkit file --filter=luks         (LUKS1, aes-xts-plain64)
#   qemu-nbd   qemu-nbd, driver=luks             (the same LUKS1 image)
#
# The backing file is a LUKS1 image made by cryptsetup, its payload pre-filled
# with random bytes; cryptvol serves the payload through a detached header, so
# every server reads and writes the same extents of the same file. Workloads
# come from build/cryptvol-bench; the XTS engine is compared with
# `openssl speed` on one core; DEK rotation online, offline and against a
# plain synced copy of the same file, and a client's throughput during an
# online rotation (bench/rotate-online.sh). Results: a table on stdout
# (medians, ratio to plain, targets met or not), $OUT/results.json and
# $OUT/chart.png.
#
# Environment: BENCH_ROUNDS (3), BENCH_DURATION (seconds per measurement, 3),
# BENCH_SIZE (1G), BENCH_OUT (build/bench), BENCH_DIR (backing file's
# directory: build/bench/data, on the same file system as the build),
# BENCH_CONFIGS, BENCH_WORKLOADS (subsets, space separated), BENCH_FIO=1 (add
# fio's nbd engine as a second opinion), BENCH_QUICK=1 (a smoke test: small
# file, one short round), BENCH_PLUGINS="NAME=PATH.so ..." (more cryptvol
# builds served like `cryptvol`, e.g. the plugin before a change, to measure
# the change in the same run); the rotation's: BENCH_ROTATE_SIZE (1536M),
# BENCH_ROT_RATE (100), BENCH_ROT_WORKLOADS, BENCH_ROT_PARTS (see
# bench/rotate-online.sh).
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
build=$src/build
BENCH=$build/cryptvol-bench
PLUGIN=$build/nbdkit-cryptvol-plugin.so
KEYMGR=$build/cryptvol-keymgr
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

rounds=${BENCH_ROUNDS:-3}
duration=${BENCH_DURATION:-3}
size=${BENCH_SIZE:-1G}
out=${BENCH_OUT:-$build/bench}
configs=${BENCH_CONFIGS:-plain cryptvol cv-direct luks qemu-nbd}
for p in ${BENCH_PLUGINS:-}; do configs+=" cv-${p%%=*}"; done
# name:mode:qd:conns
workloads=${BENCH_WORKLOADS:-seq-read:seq-read:16:1 seq-write:seq-write:16:1 \
rand-read:rand-read:32:1 rand-write:rand-write:32:1 \
rand-read-4c:rand-read:32:4 rand-write-4c:rand-write:32:4 \
mixed:mixed:32:1 seq-write-4c:seq-write:16:4}
xts_secs=1 xts_rounds=$(( ${BENCH_ROUNDS:-3} + 2 ))
if [ -n "${BENCH_QUICK:-}" ]; then
  rounds=1 duration=${BENCH_DURATION:-0.3} size=${BENCH_SIZE:-64M} xts_secs=0.2 xts_rounds=1
fi

for c in nbdkit "$BENCH" "$KEYMGR" cryptsetup openssl python3; do
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

# measure ROUND CONFIG WORKLOAD: one fresh server, one benchmark, one line of
# JSON in runs.jsonl (with the server's CPU time and peak RSS).
measure () {
  local round=$1 config=$2 name mode qd conns
  IFS=: read -r name mode qd conns <<<"$3"
  start_server "$config"
  local c0; c0=$(cpu_secs "$server_pid")
  local res
  if ! res=$("$BENCH" --mode "$mode" --qd "$qd" --conns "$conns" \
               --duration "$duration" --warmup "$(python3 -c "print(min(0.5, $duration / 2))")" \
               "nbd+unix:///?socket=$PWD/sock" 2>bench.err); then
    echo "run-bench: $config $name failed: $(cat bench.err)" >&2
    res='{"iops": null, "mib_s": null, "bytes": 0}'
  fi
  local c1 hwm; c1=$(cpu_secs "$server_pid")
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$server_pid/status" 2>/dev/null || echo 0)
  stop_server
  python3 -c 'import json, sys
r = json.loads(sys.argv[1])
r.update(round=int(sys.argv[2]), config=sys.argv[3], workload=sys.argv[4],
         server_cpu_s=float(sys.argv[5]), server_hwm_kib=int(sys.argv[6]))
print(json.dumps(r))' "$res" "$round" "$config" "$name" "$(awk "BEGIN {print $c1 - $c0}")" "$hwm" >>"$raw"
  printf '  round %d %-10s %-14s %s\n' "$round" "$config" "$name" \
    "$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print("%s IOPS  %s MiB/s" % (r.get("iops"), r.get("mib_s")))' "$res")"
}

# --- I/O: alternate configurations, rotating the order each round ----------
read -r -a cfg <<<"$configs"
for ((r = 1; r <= rounds; r++)); do
  echo "round $r/$rounds"
  for w in $workloads; do
    n=${#cfg[@]}
    for ((i = 0; i < n; i++)); do
      measure "$r" "${cfg[$(( (i + r - 1) % n ))]}" "$w"
    done
  done
done

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

# --- The XTS engine vs openssl speed, alternately, on one core --------------
xts_raw=$work/xts.jsonl
: >"$xts_raw"
core=$(( $(nproc) - 1 ))
for ((r = 1; r <= xts_rounds; r++)); do
  for ss in 4096 512; do
    v=$(taskset -c "$core" "$BENCH" --mode xts --sector-size "$ss" --duration "$xts_secs" \
          | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes_per_s"])')
    o=$(taskset -c "$core" openssl speed -mr -seconds 1 -evp aes-256-xts -bytes "$ss" 2>/dev/null \
          | awk -F: '/^\+F:/ {print $4}')
    echo "{\"round\": $r, \"sector_size\": $ss, \"cryptvol\": $v, \"openssl\": $o}" >>"$xts_raw"
  done
done

# --- DEK rotation: its rate online, offline and as a plain copy; a client
# during an online rotation (bench/rotate-online.sh says how) ---------------
"$src/bench/rotate-online.sh" "$work/rot"

python3 "$src/bench/report.py" --raw "$raw" --xts "$xts_raw" --fio "$fio_raw" \
  --rotate "$work/rot/rotate.jsonl" --rotate-online "$work/rot/rotate-online.jsonl" \
  --machine "$machine" --params "{\"rounds\": $rounds, \"duration_s\": $duration, \"size\": \"$size\", \"configs\": \"$configs\"}" \
  --out "$out"
