#!/bin/bash
# The benchmark harness runs end to end (no timing assertions): every
# configuration produces a number for every workload, the XTS micro-benchmark
# and openssl speed produce theirs, a volume is rotated online, offline and
# copied, a client runs during an online rotation (bench/rotate-online.sh),
# and results.json is well formed.
source "$(dirname "$0")/functions.sh"
requires nbdkit cryptsetup openssl python3
[ -x "$CV_BUILD/cryptvol-bench" ] || { echo "SKIP: build/cryptvol-bench not built"; exit 77; }

configs="plain cryptvol cv-direct luks"
command -v qemu-nbd >/dev/null && configs+=" qemu-nbd"
BENCH_QUICK=1 BENCH_SIZE=32M BENCH_DURATION=0.5 BENCH_OUT="$tmp/out" \
  BENCH_DIR="$tmp" BENCH_CONFIGS="$configs" \
  BENCH_WORKLOADS="rand-read:rand-read:8:1 rand-write:rand-write:8:2" \
  BENCH_ROT_WORKLOADS="rand-write:rand-write:8:1" \
  "$CV_SRCDIR/bench/run-bench.sh" >bench.log 2>&1 || { cat bench.log; fail "run-bench.sh failed"; }
pass "run-bench.sh ran ($configs)"

python3 - "$tmp/out/results.json" $configs <<'EOF' || fail "results.json is incomplete"
import json, sys
r = json.load(open(sys.argv[1]))
for k in ("cpu", "kernel", "openssl", "nbdkit"):
    assert r["machine"].get(k), "machine record lacks " + k
for w in ("rand-read", "rand-write"):
    for c in sys.argv[2:]:
        s = r["summary"][w][c]
        v = s["iops"]
        assert isinstance(v, (int, float)) and v > 0, f"{c} {w}: no number ({v})"
        assert s["server_rss_peak_mib"] > 0, f"{c} {w}: no RSS"
for ss in ("4096", "512"):
    x = r["xts"][ss]
    assert x["cryptvol_mb_s"] > 0 and x["openssl_mb_s"] > 0, f"xts {ss}: no number"
for how in ("copy", "offline", "online"):
    assert r["rotate"][how]["mib_s"] > 0, f"rotation {how}: no number"
for c in ("idle", "rot-unl", "rot-rate"):
    x = r["rotate_online"]["rand-write"][c]
    assert x["iops"] > 0, f"rand-write during rotation, {c}: no number"
assert r["targets"], "no targets evaluated"
EOF
pass "results.json is well formed and every configuration produced a number"
