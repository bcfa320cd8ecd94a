#!/bin/bash
# The benchmark harness runs end to end (no timing assertions) and reports
# what a reader of its results needs: every configuration has a number, its
# server CPU seconds per GiB and the spread of the rounds for every workload;
# the rounds ran in different orders, each from a fully cached backing file;
# the XTS engine, openssl speed and each library's single call have numbers;
# a volume is rotated online, offline and copied, a client runs during an
# online rotation (bench/rotate-online.sh); every row of the issue's targets
# table has a verdict; the chart is drawn.
source "$(dirname "$0")/functions.sh"
requires nbdkit cryptsetup openssl python3 fincore
[ -x "$CV_BUILD/cryptvol-bench" ] || { echo "SKIP: build/cryptvol-bench not built"; exit 77; }

configs="plain cryptvol cv-direct luks"
command -v qemu-nbd >/dev/null && configs+=" qemu-nbd"
BENCH_QUICK=1 BENCH_ROUNDS=2 BENCH_SIZE=32M BENCH_DURATION=0.3 BENCH_OUT="$tmp/out" \
  BENCH_DIR="$tmp" BENCH_CONFIGS="$configs" \
  BENCH_WORKLOADS="seq-read:seq-read:4:1 rand-read:rand-read:8:1 rand-write:rand-write:8:4" \
  BENCH_ROT_WORKLOADS="rand-write:rand-write:8:1" \
  "$CV_SRCDIR/bench/run-bench.sh" >bench.log 2>&1 || { cat bench.log; fail "run-bench.sh failed"; }
pass "run-bench.sh ran ($configs)"

python3 - "$tmp/out/results.json" $configs <<'EOF' || fail "results.json is incomplete"
import json, sys
r = json.load(open(sys.argv[1]))
configs = sys.argv[2:]
for k in ("cpu", "kernel", "openssl", "nbdkit"):
    assert r["machine"].get(k), "machine record lacks " + k
assert isinstance(r["params"].get("seed"), int), "the order's seed is not recorded"
for w in ("seq-read", "rand-read", "rand-write"):
    m = "mib_s" if w.startswith("seq") else "iops"
    for c in configs:
        s = r["summary"][w][c]
        assert s["n"] == 2, f"{c} {w}: {s['n']} rounds, not 2"
        for k in (m, "cpu_s_per_gib", "ratio", "cpu_ratio"):
            v, lo, hi = s[k], s[k + "_min"], s[k + "_max"]
            # One short round on a busy machine may move nothing: min 0.
            assert all(isinstance(x, (int, float)) for x in (v, lo, hi)) and v > 0, \
                f"{c} {w}: {k} median/min/max missing ({v}, {lo}, {hi})"
            assert 0 <= lo <= v <= hi, f"{c} {w}: {k} median {v} outside {lo}-{hi}"
        assert s["server_rss_peak_mib"] > 0, f"{c} {w}: no RSS"
    order = {rnd: [x["config"] for x in sorted((x for x in r["runs"]
                                                 if x["workload"] == w and x["round"] == rnd),
                                                key=lambda x: x["pos"])] for rnd in (1, 2)}
    assert sorted(order[1]) == sorted(configs), f"{w}: round 1 ran {order[1]}"
    assert order[1] != order[2], f"{w}: both rounds ran in the order {order[1]}"
for c in configs:
    assert r["anon_peak_mib_4conns"][c] > 0, f"{c}: no private-memory peak with 4 conns"
for x in r["runs"]:
    assert x["cached_pct"] >= 99, f"{x['config']} {x['workload']}: started {x['cached_pct']}% cached"
for ss in ("4096", "512"):
    x = r["xts"][ss]
    assert x["cryptvol_mb_s"] > 0 and x["openssl_mb_s"] > 0, f"xts {ss}: no number"
for lib in ("openssl", "gcrypt"):
    assert r["xts"]["one_call"][lib]["median"] > 0, f"xts: no single-call figure for {lib}"
for how in ("copy", "offline", "online"):
    assert r["rotate"][how]["mib_s"] > 0, f"rotation {how}: no number"
for c in ("idle", "rot-unl", "rot-rate"):
    x = r["rotate_online"]["rand-write"][c]
    assert x["iops"] > 0, f"rand-write during rotation, {c}: no number"
rows = {row["row"]: row for row in r["target_rows"]}
assert sorted(rows) == list(range(1, 9)), f"target rows {sorted(rows)}, not 1-8"
measured = {t["row"] for t in r["targets"] if t["value"] is not None}
assert measured >= {1, 2, 3, 4, 5, 6, 7, 8}, f"rows without any figure: {set(range(1, 9)) - measured}"
for row in rows.values():
    assert row["met"] in (True, False, None), f"row {row['row']}: verdict {row['met']}"
EOF
pass "results.json: every configuration has a figure, CPU s/GiB and min-max; orders differ; targets judged"

grep -q "Targets (issue 14)" bench.log || fail "the table of targets is not printed"
if command -v gnuplot >/dev/null; then
  [ -s "$tmp/out/chart.png" ] || fail "no chart.png"
  pass "chart.png drawn"
fi
