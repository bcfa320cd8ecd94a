#!/usr/bin/python3
"""Summarise a run of bench/run-bench.sh: medians per configuration and
workload, ratios to plaintext, the issue's targets (met or not), resource
figures; print the table, write results.json and chart.png (gnuplot).
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


def lines(path):
    if not path or not os.path.exists(path):
        return []
    return [json.loads(l) for l in open(path) if l.strip()]


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


runs, xts, fio = lines(a.raw), lines(a.xts), lines(a.fio)
configs = list(dict.fromkeys(r["config"] for r in runs))
workloads = list(dict.fromkeys(r["workload"] for r in runs))
# The figure a workload is judged by: MiB/s for sequential, IOPS otherwise.
metric = {w: "mib_s" if w.startswith("seq") else "iops" for w in workloads}

summary = {}
for w in workloads:
    summary[w] = {}
    for c in configs:
        rs = [r for r in runs if r["workload"] == w and r["config"] == c]
        gib = [r["bytes"] / 2**30 for r in rs]
        summary[w][c] = {
            "n": len(rs),
            "iops": med(r.get("iops") for r in rs),
            "mib_s": med(r.get("mib_s") for r in rs),
            "lat_p50_us": med(r.get("lat_p50_us") for r in rs),
            "lat_p99_us": med(r.get("lat_p99_us") for r in rs),
            "server_cpu_s_per_gib": med(r["server_cpu_s"] / g if g else None
                                        for r, g in zip(rs, gib)),
            "server_rss_peak_mib": max((r["server_hwm_kib"] / 1024 for r in rs), default=None),
        }
    base = summary[w].get("plain", {}).get(metric[w])
    for c in configs:
        v = summary[w][c][metric[w]]
        summary[w][c]["ratio"] = v / base if v is not None and base else None


def get(w, c, k="ratio"):
    return summary.get(w, {}).get(c, {}).get(k)


def ratio_of(w, c1, c2):
    x, y = get(w, c1, metric.get(w, "iops")), get(w, c2, metric.get(w, "iops"))
    return x / y if x is not None and y else None


xts_sum = {}
for ss in sorted({x["sector_size"] for x in xts}):
    xs = [x for x in xts if x["sector_size"] == ss]
    cv, os_ = med(x["cryptvol"] for x in xs), med(x["openssl"] for x in xs)
    xts_sum[ss] = {"cryptvol_mb_s": cv / 1e6, "openssl_mb_s": os_ / 1e6, "ratio": cv / os_}

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
        return (rot_sum[x]["mib_s"] / rot_sum[y]["mib_s"]
                if x in rot_sum and y in rot_sum else None)
    rot_sum["offline_vs_copy"] = rot_ratio("offline", "copy")
    rot_sum["online_vs_offline"] = rot_ratio("online", "offline")
    rot_sum["online_vs_copy"] = rot_ratio("online", "copy")

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

targets = []


def target(name, value, op, want):
    met = None if value is None else (value >= want if op == ">=" else value <= want)
    targets.append({"target": name, "value": value, "want": f"{op} {want}", "met": met})


for w in ("rand-read", "rand-write", "rand-read-4c", "rand-write-4c"):
    target(f"cryptvol {w} IOPS vs plain", get(w, "cryptvol"), ">=", 0.90)
for w in ("seq-read", "seq-write"):
    target(f"cryptvol {w} MiB/s vs plain", get(w, "cryptvol"), ">=", 0.85)
target("XTS engine 4096 B vs openssl speed", xts_sum.get(4096, {}).get("ratio"), ">=", 0.90)
for w in ("seq-read", "seq-write"):
    target(f"cryptvol vs luks filter, {w}", ratio_of(w, "cryptvol", "luks"), ">=", 5)
for w in ("rand-read", "rand-write"):
    one, four = get(w, "cryptvol", "iops"), get(w + "-4c", "cryptvol", "iops")
    target(f"cryptvol 4 conns vs 1, {w}", four / one if one and four else None, ">=", 1.5)
target("rotate-dek vs a plain sequential copy", rot_sum and rot_sum["offline_vs_copy"],
       ">=", 0.5)
target("online rotation, unlimited, vs offline rotate-dek",
       rot_sum and rot_sum["online_vs_offline"], ">=", 0.8)
for w in ("rand-read", "rand-write"):
    target(f"{w} 4 KiB IOPS during a rotation at --rate "
           f"{ron_sum.get(w, {}).get('rot-rate', {}).get('rot_limit')} vs idle",
           ron_sum.get(w, {}).get("rot-rate", {}).get("ratio"), ">=", 0.8)
target("cryptvol RSS over plain, 4 conns (MiB)",
       rss["cryptvol"] - rss["plain"] if rss.get("cryptvol") and rss.get("plain") else None,
       "<=", 64)

machine = json.loads(a.machine)
result = {"machine": machine, "params": json.loads(a.params), "summary": summary,
          "xts": xts_sum, "rotate": rot_sum, "rotate_runs": rot,
          "rotate_online": ron_sum, "rotate_online_runs": ron,
          "rss_peak_mib_4conns": rss, "rss_peak_mib_1conn": rss1,
          "targets": targets, "fio": fio, "runs": runs, "xts_runs": xts}
os.makedirs(a.out, exist_ok=True)
with open(os.path.join(a.out, "results.json"), "w") as f:
    json.dump(result, f, indent=1)


def fmt(v, nd=0):
    return "-" if v is None else f"{v:,.{nd}f}"


print()
if machine:
    print("machine: {cpu} ({cpus} CPUs, {mem_gib} GiB), kernel {kernel}, {openssl}, {nbdkit}, {qemu_nbd}".format(**machine))
    print("params:", a.params)
    print()
if runs:
    print("median of %d rounds; MiB/s for seq-*, IOPS otherwise; (ratio to plain)" % json.loads(a.params)["rounds"])
    print("%-14s" % "workload" + "".join("%22s" % c for c in configs))
    for w in workloads:
        row = "%-14s" % w
        for c in configs:
            v, r = get(w, c, metric[w]), get(w, c)
            row += "%22s" % (f"{fmt(v)} ({fmt(r, 2)}x)" if v is not None else "-")
        print(row)
    print()
    print("latency p50 / p99 (us), rand-read QD32 1 conn:", ", ".join(
        f"{c} {fmt(get('rand-read', c, 'lat_p50_us'))}/{fmt(get('rand-read', c, 'lat_p99_us'))}" for c in configs))
    print("server CPU s per GiB, seq-read:", ", ".join(
        f"{c} {fmt(get('seq-read', c, 'server_cpu_s_per_gib'), 2)}" for c in configs))
    print("server CPU s per GiB, rand-read:", ", ".join(
        f"{c} {fmt(get('rand-read', c, 'server_cpu_s_per_gib'), 2)}" for c in configs))
    print("server peak RSS MiB, 1 conn:", ", ".join(f"{c} {fmt(rss1[c], 1)}" for c in configs))
    print("server peak RSS MiB, 4 conns:", ", ".join(f"{c} {fmt(rss[c], 1)}" for c in configs))
for ss, x in xts_sum.items():
    print(f"XTS {ss}-byte sectors, one core: cryptvol {fmt(x['cryptvol_mb_s'])} MB/s, "
          f"openssl speed {fmt(x['openssl_mb_s'])} MB/s ({fmt(x['ratio'], 2)}x)")
if rot_sum:
    print(f"rewriting a {fmt(rot_sum['mib'])} MiB volume, MiB/s median (min-max), CPU s/GiB:")
    for how, what in (("copy", "dd of the data area, fdatasync"),
                      ("offline", "cryptvol-keymgr rotate-dek"),
                      ("online", "rotate-dek --control, unlimited (nbdkit's CPU)")):
        x = rot_sum.get(how)
        if x:
            print(f"  {how:8s} {fmt(x['mib_s'])} ({fmt(x['min'])}-{fmt(x['max'])}), "
                  f"{fmt(x['cpu_s_per_gib'], 2)} CPU s/GiB  [{what}]")
    print(f"  offline/copy {fmt(rot_sum['offline_vs_copy'], 2)}x, online/offline "
          f"{fmt(rot_sum['online_vs_offline'], 2)}x, online/copy {fmt(rot_sum['online_vs_copy'], 2)}x")
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
for t in targets:
    if t["value"] is None and not runs:
        continue  # a report of the rotation alone: the I/O targets were not measured
    state = "n/a" if t["met"] is None else ("MET" if t["met"] else "NOT MET")
    print(f"  {state:8s} {t['target']}: {fmt(t['value'], 2)} (want {t['want']})")
print()
print("wrote", os.path.join(a.out, "results.json"))

# The chart: one bar per configuration per workload, as a ratio to plain.
if runs and shutil.which("gnuplot"):
    dat = os.path.join(a.out, "chart.dat")
    with open(dat, "w") as f:
        f.write("# workload " + " ".join(configs) + "\n")
        for w in workloads:
            base = get(w, "plain", metric[w])
            unit = "MiB/s" if metric[w] == "mib_s" else "IOPS"
            label = f"{w}\\nplain {fmt(base)} {unit}" if base else w
            f.write(f'"{label}" ' + " ".join(fmt(get(w, c), 3) if get(w, c) is not None else "0"
                                       for c in configs) + "\n")
    png = os.path.join(a.out, "chart.png")
    top = max([get(w, c) or 0 for w in workloads for c in configs] + [1.0])
    title = "Throughput relative to plaintext nbdkit file (median of %d rounds)\\n%s, %d CPUs, %s, %s" % (
        json.loads(a.params)["rounds"], machine["cpu"], machine["cpus"],
        " ".join(machine["openssl"].split()[:2]), machine["nbdkit"])
    cols = " , ".join(f"'{dat}' using {i + 2}:xtic(1) title '{c}'" for i, c in enumerate(configs))
    script = f"""
set terminal pngcairo size 1100,560 font 'sans,10'
set output '{png}'
set title "{title}"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:{top * 1.2:.2f}]
set ytics 0.1
set grid ytics
set ylabel 'ratio to plain (1.0 = as fast as no encryption)'
set key top left horizontal
set bmargin 4
plot {cols}, 0.9 with lines dt 2 lw 1.5 lc rgb '#cc0000' title 'target 0.9 (0.85 seq)'

"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    print("wrote", png)
