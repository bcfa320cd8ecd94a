#!/usr/bin/python3
"""Summarise a run of bench/run-bench.sh: per configuration and workload,
throughput and server CPU seconds per GiB as median (min-max) of the rounds,
and their ratios to plaintext as median (min-max) of the per-round ratios;
the XTS engine against openssl speed and against its library's single call;
the issue's targets, met or not, from the medians; print the table, write
results.json and chart.png (gnuplot).
The rotation's part alone, after bench/rotate-online.sh DIR:
  bench/report.py --rotate DIR/rotate.jsonl --rotate-online DIR/rotate-online.jsonl --out DIR"""
import argparse
import json
import os
import shutil
import statistics
import subprocess

ap = argparse.ArgumentParser()
ap.add_argument("--raw")
ap.add_argument("--xts")
ap.add_argument("--rotate", default=None)
ap.add_argument("--rotate-online", default=None)
ap.add_argument("--fio")
ap.add_argument("--machine", default="{}")
ap.add_argument("--params", default='{"rounds": 0}')
ap.add_argument("--out", required=True)
a = ap.parse_args()
params = json.loads(a.params)


def lines(path):
    if not path or not os.path.exists(path):
        return []
    return [json.loads(l) for l in open(path) if l.strip()]


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def spread(xs):
    """Median, min and max of the numbers among xs (None where none)."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


runs, xts, fio = lines(a.raw), lines(a.xts), lines(a.fio)
# In the order the run was given them (the runs themselves are shuffled).
configs = [c for c in params.get("configs", "").split() if any(r["config"] == c for r in runs)]
configs += [c for c in dict.fromkeys(r["config"] for r in runs) if c not in configs]
workloads = list(dict.fromkeys(r["workload"] for r in runs))
rounds = sorted({r["round"] for r in runs})
# The figure a workload is judged by: MiB/s for sequential, IOPS otherwise.
metric = {w: "mib_s" if w.startswith("seq") else "iops" for w in workloads}
unit_of = {"mib_s": "MiB/s", "iops": "IOPS"}


def run_of(w, c, rnd):
    return next((r for r in runs if r["workload"] == w and r["config"] == c
                 and r["round"] == rnd), None)


def cpu_per_gib(r):
    """Server CPU seconds per GiB moved in run r, the warm-up's requests
    included as its CPU time is (None: nothing moved)."""
    moved = r and r.get("all_bytes", r.get("bytes"))
    if not moved:
        return None
    return r["server_cpu_s"] / (moved / 2**30)


def value(r, k):
    return r.get(k) if r else None


def per_round_ratio(w, c1, c2, f):
    """f(run of c1) / f(run of c2), round by round, where both exist."""
    out = []
    for rnd in rounds:
        x, y = f(run_of(w, c1, rnd)), f(run_of(w, c2, rnd))
        out.append(x / y if x is not None and y else None)
    return out


# Per workload and configuration: throughput, CPU per GiB, ratios to plain.
summary = {}
for w in workloads:
    summary[w] = {}
    m = metric[w]
    for c in configs:
        rs = [r for r in runs if r["workload"] == w and r["config"] == c]
        s = {"n": len(rs), "metric": m}
        for k in ("iops", "mib_s"):
            x = spread(r.get(k) for r in rs)
            s[k], s[k + "_min"], s[k + "_max"] = x["median"], x["min"], x["max"]
        x = spread(cpu_per_gib(r) for r in rs)
        s["cpu_s_per_gib"], s["cpu_s_per_gib_min"], s["cpu_s_per_gib_max"] = \
            x["median"], x["min"], x["max"]
        if "plain" in configs:
            x = spread(per_round_ratio(w, c, "plain", lambda r: value(r, m)))
            s["ratio"], s["ratio_min"], s["ratio_max"] = x["median"], x["min"], x["max"]
            x = spread(per_round_ratio(w, c, "plain", cpu_per_gib))
            s["cpu_ratio"], s["cpu_ratio_min"], s["cpu_ratio_max"] = \
                x["median"], x["min"], x["max"]
        s["lat_p50_us"] = med(r.get("lat_p50_us") for r in rs)
        s["lat_p99_us"] = med(r.get("lat_p99_us") for r in rs)
        s["server_rss_peak_mib"] = max((r["server_hwm_kib"] / 1024 for r in rs), default=None)
        s["cached_pct_min"] = min((r.get("cached_pct", 0) for r in rs), default=None)
        s["order"] = [r.get("pos") for r in sorted(rs, key=lambda r: r["round"])]
        summary[w][c] = s


def get(w, c, k="ratio"):
    return summary.get(w, {}).get(c, {}).get(k)


# The XTS part: per round, the engine (per implementation) and the library's
# single call, each against openssl speed or the engine, in bytes per user
# CPU second (as openssl speed counts: another process on the core does not
# move it); an entry whose engine ran another implementation than asked for
# does not count.
def xts_rate(rnd, what, size, engine):
    x = next((x for x in xts if x["round"] == rnd and x["what"] == what
              and x["size"] == size and x["engine"] == engine), None)
    if not x or not x.get("bytes_per_cpu_s") or x.get("impl") != engine:
        return None
    return x["bytes_per_cpu_s"]


def div(x, y):
    return x / y if x and y else None


xts_rounds = sorted({x["round"] for x in xts if x["round"] > 0})
auto_pick = {str(x["size"]): x.get("impl") for x in xts if x["what"] == "auto"}
xts_sum = {"auto": auto_pick, "one_call": {}, "engine_vs_one_call": {}}
for size in (4096, 512):
    if not any(x["size"] == size for x in xts):
        continue
    speed = {r: xts_rate(r, "openssl-speed", size, "openssl") for r in xts_rounds}
    s = {"openssl_speed_mb_s": spread(div(v, 1e6) for v in speed.values()),
         "engine_mb_s": {}, "vs_openssl_speed": {}}
    for impl in ("openssl", "gcrypt"):
        eng = {r: xts_rate(r, "engine", size, impl) for r in xts_rounds}
        s["engine_mb_s"][impl] = spread(div(v, 1e6) for v in eng.values())
        s["vs_openssl_speed"][impl] = spread(div(eng[r], speed[r]) for r in xts_rounds)
    pick = auto_pick.get(str(size))
    s["auto"] = pick
    s["cryptvol_mb_s"] = s["engine_mb_s"].get(pick, {}).get("median")
    s["openssl_mb_s"] = s["openssl_speed_mb_s"]["median"]
    s["ratio"] = s["vs_openssl_speed"].get(pick, {}).get("median")
    xts_sum[str(size)] = s
for impl in ("openssl", "gcrypt"):
    one = {r: xts_rate(r, "one-call", 1048576, impl) for r in xts_rounds}
    xts_sum["one_call"][impl] = spread(div(v, 1e6) for v in one.values())
    xts_sum["engine_vs_one_call"][impl] = spread(
        div(xts_rate(r, "engine", 4096, impl), one[r]) for r in xts_rounds)

rot = lines(a.rotate) if a.rotate else []
rot_sum = None
if rot:
    # Per way of rewriting the volume (copy, offline, online): MiB/s and CPU
    # seconds per GiB (the server's for online), medians with min-max.
    mib = rot[0]["bytes"] / 2**20
    rot_sum = {"mib": mib}
    for how in ("copy", "offline", "online"):
        xs = [x for x in rot if x["how"] == how]
        if not xs:
            continue
        rates = [mib / x["wall_s"] for x in xs]
        rot_sum[how] = {"n": len(xs), "mib_s": med(rates), "min": min(rates), "max": max(rates),
                        "cpu_s_per_gib": med(x.get("cpu_s", x.get("server_cpu_s")) / (mib / 1024)
                                             for x in xs)}

    def rot_ratio(x, y):
        """Rate of x over rate of y, median (min-max) of the rounds."""
        out = []
        for rnd in sorted({r["round"] for r in rot}):
            p = next((r for r in rot if r["round"] == rnd and r["how"] == x), None)
            q = next((r for r in rot if r["round"] == rnd and r["how"] == y), None)
            out.append(q["wall_s"] / p["wall_s"] if p and q and p["wall_s"] else None)
        return spread(out)
    for x, y in (("offline", "copy"), ("online", "offline"), ("online", "copy")):
        sp = rot_ratio(x, y)
        rot_sum[f"{x}_vs_{y}"] = sp["median"]
        rot_sum[f"{x}_vs_{y}_spread"] = sp

# A client during an online rotation (idle, rot-unl, rot-rate) per workload:
# medians with min-max, ratio to idle, the rotation's rate meanwhile.
ron = lines(a.rotate_online) if a.rotate_online else []
ron_sum = {}
for w in dict.fromkeys(r["workload"] for r in ron):
    m = "mib_s" if w.startswith("seq") else "iops"
    ron_sum[w] = {"metric": m}
    for c in ("idle", "rot-unl", "rot-rate"):
        rs = [r for r in ron if r["workload"] == w and r["config"] == c]
        if not rs:
            continue
        n, covered = len(rs), [r for r in rs if r.get("covered")]
        # A rotation that ended before the client did measured partly an
        # idle volume: when any run was covered, those alone count.
        if c != "idle" and covered:
            rs = covered
        vals = [r[m] for r in rs if r.get(m) is not None]
        # Server CPU over the whole window (warm-up included) per GiB moved
        # in it, by the client alone and by the client and the rotation.
        client_gib = [r["mib_s"] * r["window_s"] / 1024 for r in rs]
        ron_sum[w][c] = {
            "n": n, "covered": len(covered),
            m: med(vals), "min": min(vals, default=None), "max": max(vals, default=None),
            "lat_p99_us": med(r.get("lat_p99_us") for r in rs),
            "lat_p99_min": min((r["lat_p99_us"] for r in rs), default=None),
            "lat_p99_max": max((r["lat_p99_us"] for r in rs), default=None),
            "rot_mib_s": med(r["rot_mib_s"] for r in rs),
            "server_cpu_s_per_gib": med(r["server_cpu_s"] / g if g else None
                                        for r, g in zip(rs, client_gib)),
            "server_cpu_s_per_gib_all": med(r["server_cpu_s"] / (g + r["rot_bytes"] / 2**30)
                                            if g + r["rot_bytes"] else None
                                            for r, g in zip(rs, client_gib)),
            "rot_limit": rs[0].get("rot_limit"),
        }
    base = ron_sum[w].get("idle", {}).get(m)
    for c in ("rot-unl", "rot-rate"):
        if c in ron_sum[w]:
            v = ron_sum[w][c][m]
            ron_sum[w][c]["ratio"] = v / base if v is not None and base else None

rss = {c: max((r["server_hwm_kib"] / 1024 for r in runs
               if r["config"] == c and r["conns"] == 4), default=None) for c in configs}
rss1 = {c: max((r["server_hwm_kib"] / 1024 for r in runs
                if r["config"] == c and r["conns"] == 1), default=None) for c in configs}
anon = {c: max((r.get("server_anon_kib", 0) / 1024 for r in runs
                if r["config"] == c and r["conns"] == 4), default=None) for c in configs}


def over_plain(key):
    """cryptvol's figure over plain's, same workload and round, 4 connections."""
    return spread(
        (run_of(w, "cryptvol", rnd)[key] - run_of(w, "plain", rnd)[key]) / 1024
        if run_of(w, "cryptvol", rnd) and run_of(w, "plain", rnd)
        and key in run_of(w, "cryptvol", rnd) else None
        for w in workloads if any(r["conns"] == 4 for r in runs if r["workload"] == w)
        for rnd in rounds)


# Private memory (RssAnon) is what the target is about; peak RSS (VmHWM)
# also counts the page cache of the data file that cryptvol maps.
rss_over = over_plain("server_anon_kib")
hwm_over = over_plain("server_hwm_kib")

# The Targets table, row by row; a row with several items is met
# when every item is.
ROWS = {
    1: ("1 MiB sequential read and write, vs plaintext nbdkit file", ">= 0.90"),
    2: ("server CPU s/GiB, sequential read and write, vs plaintext", "<= 1.12"),
    3: ("4 KiB random read and write IOPS, 1 and 4 connections", ">= 0.95"),
    4: ("XTS engine at 4096-byte units vs openssl speed -evp aes-256-xts", ">= 1.4"),
    5: ("XTS engine at 4096-byte units vs the same library's 1 MiB call", ">= 0.85"),
    6: ("offline rotate-dek vs dd conv=fdatasync of the same file", ">= 0.8"),
    7: (">= 5x nbdkit's luks filter on 1 MiB sequential", ">= 5"),
    8: ("nbdkit RSS with cryptvol, 4 connections, over plaintext (MiB)", "<= 32"),
}
targets = []


def target(row, item, sp, want=None):
    """One measured item of a row (row None: a check from an earlier issue,
    want given); sp is a spread, the verdict is from its median."""
    op, x = (want or ROWS[row][1]).split()
    v = sp["median"]
    met = None if v is None else (v >= float(x) if op == ">=" else v <= float(x))
    targets.append({"row": row, "target": item, "value": v, "min": sp["min"], "max": sp["max"],
                    "want": f"{op} {x}", "met": met})


def ssp(w, c, k):
    """The spread of summary[w][c]'s k (median, _min, _max)."""
    return {"median": get(w, c, k), "min": get(w, c, k + "_min"), "max": get(w, c, k + "_max")}


for w in ("seq-read", "seq-write"):
    target(1, f"cryptvol {w} MiB/s vs plain", ssp(w, "cryptvol", "ratio"))
for w in ("seq-read", "seq-write"):
    target(2, f"cryptvol {w} CPU s/GiB vs plain", ssp(w, "cryptvol", "cpu_ratio"))
for w in ("rand-read", "rand-write", "rand-read-4c", "rand-write-4c"):
    target(3, f"cryptvol {w} IOPS vs plain", ssp(w, "cryptvol", "ratio"))
pick = auto_pick.get("4096")
target(4, f"engine ({pick or 'auto'}) 4096 B vs openssl speed",
       xts_sum.get("4096", {}).get("vs_openssl_speed", {}).get(pick) or spread([]))
target(5, f"engine ({pick or 'auto'}) 4096 B vs {pick or 'its library'}'s 1 MiB call",
       xts_sum["engine_vs_one_call"].get(pick) or spread([]))
target(6, "rotate-dek offline vs dd of the data area onto itself",
       (rot_sum or {}).get("offline_vs_copy_spread") or spread([]))
for w in ("seq-read", "seq-write"):
    target(7, f"cryptvol vs luks filter, {w}",
           spread(per_round_ratio(w, "cryptvol", "luks", lambda r: value(r, "mib_s"))))
target(8, "cryptvol peak private memory (RssAnon) - plain's, 4 conns (MiB)", rss_over)
# Checks from earlier issues, kept.
for w in ("rand-read", "rand-write"):
    target(None, f"cryptvol 4 conns vs 1, {w} IOPS",
           spread([get(w + "-4c", "cryptvol", "iops") / get(w, "cryptvol", "iops")
                   if get(w, "cryptvol", "iops") and get(w + "-4c", "cryptvol", "iops")
                   else None]), ">= 1.5")
target(None, "online rotation, unlimited, vs offline rotate-dek",
       (rot_sum or {}).get("online_vs_offline_spread") or spread([]), ">= 0.8")
for w in ("rand-read", "rand-write"):
    target(None, f"{w} 4 KiB IOPS during a rotation at --rate "
           f"{ron_sum.get(w, {}).get('rot-rate', {}).get('rot_limit')} vs idle",
           spread([ron_sum.get(w, {}).get("rot-rate", {}).get("ratio")]), ">= 0.8")


def row_verdict(row):
    ms = [t["met"] for t in targets if t["row"] == row]
    if False in ms:
        return False
    return None if None in ms or not ms else True


# cryptvol against other builds of it served in the same run (BENCH_PLUGINS,
# "cv-NAME"): per workload, the per-round ratios of throughput and of CPU
# per GiB, median (min-max): a change's effect, measured in one run.
builds = {}
for b in configs:
    if b.startswith("cv-") and b != "cv-direct" and "cryptvol" in configs:
        builds[b] = {w: {"ratio": spread(per_round_ratio(w, "cryptvol", b,
                                                         lambda r: value(r, metric[w]))),
                         "cpu_ratio": spread(per_round_ratio(w, "cryptvol", b, cpu_per_gib))}
                     for w in workloads}

rows = [{"row": n, "measure": m, "want": want, "met": row_verdict(n),
         "items": [t["target"] for t in targets if t["row"] == n]}
        for n, (m, want) in ROWS.items()]

machine = json.loads(a.machine)
result = {"machine": machine, "params": params, "summary": summary,
          "xts": xts_sum, "rotate": rot_sum, "rotate_runs": rot,
          "rotate_online": ron_sum, "rotate_online_runs": ron,
          "rss_peak_mib_4conns": rss, "rss_peak_mib_1conn": rss1, "rss_over_plain_mib": rss_over, "anon_peak_mib_4conns": anon,
          "hwm_over_plain_mib": hwm_over,
          "targets": targets, "target_rows": rows, "vs_builds": builds, "fio": fio, "runs": runs, "xts_runs": xts}
os.makedirs(a.out, exist_ok=True)
with open(os.path.join(a.out, "results.json"), "w") as f:
    json.dump(result, f, indent=1)


def fmt(v, nd=0):
    return "-" if v is None else f"{v:,.{nd}f}"


def fsp(v, lo, hi, nd=0, suffix=""):
    """'median (min-max)' or '-'."""
    if v is None:
        return "-"
    return f"{fmt(v, nd)}{suffix} ({fmt(lo, nd)}-{fmt(hi, nd)})"


def verdict(met):
    return "n/a" if met is None else ("MET" if met else "NOT MET")


print()
if machine:
    print("machine: {cpu} ({cpus} CPUs, {mem_gib} GiB), kernel {kernel}, {openssl}, {nbdkit}, {qemu_nbd}".format(**machine))
    print("params:", a.params)
    print()
if runs:
    print(f"{len(rounds)} rounds, a shuffled order each (seed {params.get('seed')}); "
          "median (min-max) of the rounds; ratios: median (min-max) of the per-round "
          "ratios to plain; CPU: the server's user+sys seconds per GiB moved")
    print(f"{'':14s}{'':11s}{'throughput':>26s}{'x plain':>20s}{'CPU s/GiB':>22s}"
          f"{'x plain':>20s}")
    for w in workloads:
        m = metric[w]
        print(f"{w} ({unit_of[m]})")
        for c in configs:
            print(f"  {'':12s}{c:11s}"
                  f"{fsp(get(w, c, m), get(w, c, m + '_min'), get(w, c, m + '_max')):>26s}"
                  f"{fsp(get(w, c), get(w, c, 'ratio_min'), get(w, c, 'ratio_max'), 2):>20s}"
                  f"{fsp(get(w, c, 'cpu_s_per_gib'), get(w, c, 'cpu_s_per_gib_min'), get(w, c, 'cpu_s_per_gib_max'), 3):>25s}"
                  f"{fsp(get(w, c, 'cpu_ratio'), get(w, c, 'cpu_ratio_min'), get(w, c, 'cpu_ratio_max'), 2):>20s}")
    print()
    print("latency p50 / p99 (us), rand-read:", ", ".join(
        f"{c} {fmt(get('rand-read', c, 'lat_p50_us'))}/{fmt(get('rand-read', c, 'lat_p99_us'))}" for c in configs))
    print("server peak RSS MiB, 1 conn:", ", ".join(f"{c} {fmt(rss1[c], 1)}" for c in configs))
    print("server peak RSS MiB, 4 conns:", ", ".join(f"{c} {fmt(rss[c], 1)}" for c in configs))
    print("server peak private memory (RssAnon) MiB, 4 conns:",
          ", ".join(f"{c} {fmt(anon[c], 1)}" for c in configs))
    print("cryptvol over plain, 4 conns, MiB: private %s, peak RSS with mapped page cache %s"
          % (fmt(rss_over["median"], 1), fmt(hwm_over["median"], 1)))
    cold = [r for r in runs if r.get("cached_pct", 0) < 99]
    print("page cache at the start of each run: min",
          fmt(min(r.get("cached_pct", 0) for r in runs), 1), "% of the backing file" +
          ("" if not cold else "; below 99% (evicted by others meanwhile): " + ", ".join(
              f"round {r['round']} {r['config']} {r['workload']} {r['cached_pct']}%" for r in cold)))
for size in ("4096", "512"):
    x = xts_sum.get(size)
    if not x:
        continue
    os_ = x["openssl_speed_mb_s"]
    print(f"XTS {size}-byte units, one core, MB per user CPU second, median (min-max): openssl speed "
          f"{fsp(os_['median'], os_['min'], os_['max'])}; engine " + "; ".join(
              f"{impl} {fsp(e['median'], e['min'], e['max'])} = "
              f"{fsp(x['vs_openssl_speed'][impl]['median'], x['vs_openssl_speed'][impl]['min'], x['vs_openssl_speed'][impl]['max'], 2, 'x')}"
              for impl, e in x["engine_mb_s"].items()) + f"; auto picks {x['auto']}")
if any(e["n"] for e in xts_sum["one_call"].values()):
    print("XTS one library call over 1 MiB, MB per user CPU second: " + "; ".join(
        f"{impl} {fsp(e['median'], e['min'], e['max'])}, engine at 4096 B / this "
        f"{fsp(xts_sum['engine_vs_one_call'][impl]['median'], xts_sum['engine_vs_one_call'][impl]['min'], xts_sum['engine_vs_one_call'][impl]['max'], 2, 'x')}"
        for impl, e in xts_sum["one_call"].items() if e["n"]))
if rot_sum:
    print(f"rewriting a {fmt(rot_sum['mib'])} MiB volume, MiB/s median (min-max), CPU s/GiB:")
    for how, what in (("copy", "dd of the data area onto itself, fdatasync"),
                      ("offline", "cryptvol-keymgr rotate-dek"),
                      ("online", "rotate-dek --control, unlimited (nbdkit's CPU)")):
        x = rot_sum.get(how)
        if x:
            print(f"  {how:8s} {fmt(x['mib_s'])} ({fmt(x['min'])}-{fmt(x['max'])}), "
                  f"{fmt(x['cpu_s_per_gib'], 2)} CPU s/GiB  [{what}]")
    print(f"  offline/copy {fmt(rot_sum['offline_vs_copy'], 2)}x, online/offline "
          f"{fmt(rot_sum['online_vs_offline'], 2)}x, online/copy {fmt(rot_sum['online_vs_copy'], 2)}x"
          " (medians of per-round ratios)")
if ron_sum:
    print("a client during an online rotation: median (min-max), ratio to idle; p99 us; "
          "server CPU s/GiB (client bytes; client + rotated bytes); the rotation's MiB/s "
          "meanwhile [runs it covered: the medians are of those]")
    for w, x in ron_sum.items():
        unit = "MiB/s" if x["metric"] == "mib_s" else "IOPS"
        for c in ("idle", "rot-unl", "rot-rate"):
            y = x.get(c)
            if not y:
                continue
            ratio = f" ({fmt(y['ratio'], 2)}x)" if "ratio" in y else ""
            rot_txt = "" if c == "idle" else (
                f"; rotation {fmt(y['rot_mib_s'])} MiB/s [{y['covered']}/{y['n']}]")
            print(f"  {w:11s} {c:9s} {fmt(y[x['metric']])} {unit} ({fmt(y['min'])}-{fmt(y['max'])})"
                  f"{ratio}; p99 {fmt(y['lat_p99_us'])} ({fmt(y['lat_p99_min'])}-{fmt(y['lat_p99_max'])}); "
                  f"CPU {fmt(y['server_cpu_s_per_gib'], 2)}; {fmt(y['server_cpu_s_per_gib_all'], 2)}"
                  f"{rot_txt}")
for f in fio:
    print(f"fio nbd engine: {f['config']:10s} {f['workload']:16s} {fmt(f['iops'])} IOPS {fmt(f['mib_s'])} MiB/s")
print()
for b, ws in builds.items():
    print(f"cryptvol vs {b} (the same run), per-round ratios, median (min-max):")
    for w, x in ws.items():
        t, c = x["ratio"], x["cpu_ratio"]
        print(f"  {w:14s} throughput {fsp(t['median'], t['min'], t['max'], 2, 'x')}, "
              f"CPU s/GiB {fsp(c['median'], c['min'], c['max'], 2, 'x')}")
print("Targets (issue 14), judged from the medians; value median (min-max):")
for row in rows:
    if not runs and row["row"] != 6:
        continue  # a report of the rotation alone: the I/O targets were not measured
    print(f"  {row['row']}. {verdict(row['met']):8s} {row['measure']} ({row['want']})")
    for t in targets:
        if t["row"] == row["row"]:
            print(f"       {verdict(t['met']):8s} {t['target']}: "
                  f"{fsp(t['value'], t['min'], t['max'], 2)}")
print("Other checks:")
for t in targets:
    if t["row"] is None and (runs or "rotation" in t["target"]):
        print(f"     {verdict(t['met']):8s} {t['target']}: {fmt(t['value'], 2)} (want {t['want']})")
print()
print("wrote", os.path.join(a.out, "results.json"))

# The chart: two panels over the same clusters (one per workload), one bar per
# configuration (plain is the line at 1.0): throughput and server CPU per
# GiB, each as the median ratio to plain, whiskers from the lowest to the
# highest per-round ratio; the targets drawn over the workloads they apply to.
COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#000000"]


def chart(png):
    shown = [c for c in configs if c != "plain"]
    nc, nw = len(shown), len(workloads)
    width = 0.8 / max(nc, 1)
    xs = {(w, c): i - 0.4 + width * (j + 0.5)
          for i, w in enumerate(workloads) for j, c in enumerate(shown)}
    panels = [("ratio", "throughput / plain's", (1.2, 1.6),
               [("seq", 0.90, "target >= 0.90 (1 MiB seq)", "#000000", 2),
                ("rand", 0.95, "target >= 0.95 (4 KiB random)", "#666666", 4)]),
              ("cpu_ratio", "server CPU s/GiB / plain's", (1.5, 3.0),
               [("seq", 1.12, "target <= 1.12 (1 MiB seq)", "#000000", 2)])]
    script = [f"set terminal pngcairo size 1400,1000 font 'sans,10'",
              f"set output '{png}'",
              "set multiplot layout 2,1 title \"cryptvol bench: %d rounds, %gs each, medians; "
              "whiskers: min-max of the rounds\\n%s, %d CPUs, %s, %s\" font 'sans,11'" % (
                  len(rounds), params.get("duration_s", 0), machine.get("cpu", "?"),
                  machine.get("cpus", 0), " ".join(machine.get("openssl", "?").split()[:2]),
                  machine.get("nbdkit", "?")),
              "set style fill solid 0.9 border rgb '#333333'",
              f"set boxwidth {width * 0.9:.4f} absolute",
              "set datafile missing 'NaN'",
              f"set xrange [-0.6:{nw - 0.4}]",
              "set grid ytics lc rgb '#dddddd'",
              "set key outside top center horizontal Left reverse samplen 4 width 2",
              "set style textbox opaque fillcolor rgb 'white' noborder",
              "set lmargin 10", "set rmargin 3", "set bmargin 3.5"]
    def xtics(k):
        """Each cluster's label: the workload and plain's figure the panel's
        ratios are of."""
        def base(w):
            v = get(w, "plain", metric[w] if k == "ratio" else "cpu_s_per_gib")
            unit = unit_of[metric[w]] if k == "ratio" else "CPU s/GiB"
            return "plain n/a" if v is None else f"plain {fmt(v, 0 if k == 'ratio' else 3)} {unit}"
        return ", ".join('"%s\\n%s" %d' % (w, base(w), i) for i, w in enumerate(workloads))

    for k, ylabel, (low, high), lines_ in panels:
        # The y axis: up to the highest whisker, within [low, high]; bars
        # above are cut and labelled with their value.
        top = max([get(w, c, k + "_max") or 0 for w in workloads for c in shown] + [0])
        cap = round(min(high, max(low, top * 1.08)), 1)
        # Target lines only over workloads they apply to, and only those.
        lines_ = [t for t in lines_ if any(w.startswith(t[0]) for w in workloads)]
        dat = os.path.join(a.out, f"chart-{k}.dat")
        labels = []
        with open(dat, "w") as f:
            for c in shown:
                f.write(f"# {c}: x median min max\n")
                for w in workloads:
                    v, lo, hi = get(w, c, k), get(w, c, k + "_min"), get(w, c, k + "_max")
                    x = xs[(w, c)]
                    if v is None:
                        labels.append((x, 0.02 * cap, "n/a", "#cc0000"))
                        f.write(f"{x:.4f} NaN NaN NaN\n")
                        continue
                    if v == 0:
                        labels.append((x, 0.02 * cap, "0", "#000000"))
                    elif v > cap:
                        labels.append((x, cap * 0.55, f"{v:.1f} off scale", "#000000"))
                    f.write(f"{x:.4f} {min(v, cap):.4f} {min(lo, cap):.4f} {min(hi, cap):.4f}\n")
                f.write("\n\n")
            # Target segments, one block per target, over its workloads.
            for prefix, y, _, _, _ in lines_:
                for i, w in enumerate(workloads):
                    if w.startswith(prefix):
                        f.write(f"{i - 0.45:.3f} {y}\n{i + 0.45:.3f} {y}\n\n")
                f.write("\n")
        script += ["unset label", f"set yrange [0:{cap}]", f"set ylabel \"{ylabel}\"",
                   f"set xtics ({xtics(k)}) scale 0", "set ytics 0.2" if cap < 2 else "set ytics 0.5"]
        for x, y, text, col in labels:
            script.append(f"set label '{text}' at {x:.4f},{y:.3f} rotate by 90 left "
                          f"font 'sans,9' textcolor rgb '{col}' boxed front")
        plots = [f"'{dat}' index {j} using 1:2 with boxes lc rgb '{COLOURS[j % len(COLOURS)]}' "
                 f"title '{c}'" for j, c in enumerate(shown)]
        plots += [f"'{dat}' index {j} using 1:3:(0):($4-$3) with vectors heads "
                  "size screen 0.004,90 lc rgb '#222222' lw 1 notitle" for j in range(nc)]
        plots.append(f"1 with lines lc rgb '#555555' lw 1.5 title 'plain = 1.0'")
        plots += [f"'{dat}' index {nc + t} using 1:2 with lines dt {dt} lw 2 lc rgb '{col}' "
                  f"title '{name}'" for t, (_, _, name, col, dt) in enumerate(lines_)]
        script.append("plot " + ", \\\n  ".join(plots))
    script.append("unset multiplot")
    subprocess.run(["gnuplot"], input="\n".join(script) + "\n", text=True, check=True)


if runs and shutil.which("gnuplot"):
    png = os.path.join(a.out, "chart.png")
    chart(png)
    print("wrote", png)
