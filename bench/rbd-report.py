#!/usr/bin/python3
"""Summarise a run of bench/rbd.sh (cryptvol on RBD against qemu-nbd's rbd
driver, the plaintext baseline): per workload and server, throughput (MiB/s
for 1 MiB sequential, IOPS for 4 KiB random), latency p50/p99, the server's
and the cluster's (monitor + OSD, when the run started them) CPU seconds per
GiB moved, each as the median (min-max) of the rounds; each server's ratio
to qemu-nbd and to librbd (rbd bench: the store's own rate for a librbd
client, no NBD) as the median (min-max) of the per-round ratios; the issue's target (>= 0.9x
plaintext) judged from the median ratio. Prints a Markdown table, writes
results.json.
  bench/rbd-report.py --raw OUT/runs.jsonl --out OUT [--machine JSON --params JSON]"""
import argparse
import json
import os
import statistics

ap = argparse.ArgumentParser()
ap.add_argument("--raw", required=True)
ap.add_argument("--machine", default="{}")
ap.add_argument("--params", default="{}")
ap.add_argument("--out", required=True)
a = ap.parse_args()
params, machine = json.loads(a.params), json.loads(a.machine)
runs = [json.loads(l) for l in open(a.raw) if l.strip()]
BASE, CV, REF, TARGET = "qemu-nbd", "cryptvol", "librbd", 0.9

configs = [c for c in params.get("configs", "").split() if any(r["config"] == c for r in runs)]
configs += [c for c in dict.fromkeys(r["config"] for r in runs) if c not in configs]
workloads = list(dict.fromkeys(r["workload"] for r in runs))
rounds = sorted({r["round"] for r in runs})
metric = {w: "mib_s" if w.startswith("seq") else "iops" for w in workloads}
unit = {"mib_s": "MiB/s", "iops": "IOPS"}


def spread(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def run_of(w, c, rnd):
    return next((r for r in runs if r["workload"] == w and r["config"] == c
                 and r["round"] == rnd), None)


def per_gib(r, k):
    """r[k] (CPU seconds) per GiB every request of run r moved, the
    warm-up's included as its CPU time is."""
    moved = r and r.get("all_bytes", r.get("bytes"))
    if not moved or r.get(k) is None:
        return None
    return r[k] / (moved / 2**30)


summary = {}
for w in workloads:
    summary[w] = {}
    m = metric[w]
    for c in configs:
        rs = [r for r in runs if r["workload"] == w and r["config"] == c]
        s = {"n": len(rs), "metric": m,
             m: spread(r.get(m) for r in rs),
             "lat_p50_us": spread(r.get("lat_p50_us") for r in rs),
             "lat_p99_us": spread(r.get("lat_p99_us") for r in rs),
             "server_cpu_s_per_gib": spread(per_gib(r, "server_cpu_s") for r in rs),
             "cluster_cpu_s_per_gib": spread(per_gib(r, "cluster_cpu_s") for r in rs),
             "errors": sum(r.get("errors") or 0 for r in rs),
             "failed": sum(1 for r in rs if r.get(m) is None),
             "order": [r.get("pos") for r in sorted(rs, key=lambda r: r["round"])]}
        for key, ref in (("ratio", BASE), ("ratio_librbd", REF)):
            if c == ref:
                continue
            ratios = []
            for rnd in rounds:
                x, y = run_of(w, c, rnd), run_of(w, ref, rnd)
                ratios.append(x[m] / y[m] if x and y and x.get(m) and y.get(m) else None)
            s[key] = spread(ratios)
            s[key + "_rounds"] = ratios
        summary[w][c] = s

targets = []
for w in workloads:
    r = summary[w].get(CV, {}).get("ratio")
    if r:
        targets.append({"workload": w, "want": f">= {TARGET}", "value": r,
                        "met": None if r["median"] is None else r["median"] >= TARGET})



def fmt(v, nd=0):
    return "-" if v is None else f"{v:,.{nd}f}"


def fsp(s, nd=0):
    if not s or s["median"] is None:
        return "-"
    return f"{fmt(s['median'], nd)} ({fmt(s['min'], nd)}-{fmt(s['max'], nd)})"


print()
if machine:
    print("machine: {cpu} ({cpus} CPUs, {mem_gib} GiB), kernel {kernel}, {nbdkit}, "
          "{qemu_nbd}, {ceph}; load average at the start {la}".format(
              la=" ".join(machine.get("loadavg", [])), **machine))
print(f"{len(rounds)} rounds of {params.get('duration_s')} s (after a "
      f"{params.get('warmup_s')} s warm-up), a shuffled order each (seed {params.get('seed')}); "
      f"rbd cache = {str(params.get('rbd_cache')).lower()}; cluster: {params.get('cluster')}; "
      f"{params.get('size')} data area at offset {params.get('data_offset')}")
print("median (min-max) of the rounds; x qemu-nbd, x librbd: median (min-max) of the "
      "per-round ratios; CPU: user + system seconds per GiB moved (librbd's: the rbd "
      "bench client's); cluster: monitor + OSD")
print()
print("| workload | server | throughput | x qemu-nbd | x librbd | latency p50 / p99 (ms) "
      "| server CPU s/GiB | cluster CPU s/GiB |")
print("|---|---|---|---|---|---|---|---|")
for w in workloads:
    m = metric[w]
    for c in configs:
        s = summary[w][c]
        lat = (f"{fmt(s['lat_p50_us']['median'] and s['lat_p50_us']['median'] / 1000, 1)} / "
               f"{fmt(s['lat_p99_us']['median'] and s['lat_p99_us']['median'] / 1000, 1)}")
        ratio, ratio_ref = (fsp(s.get(k), 2) + ("x" if s.get(k, {}).get("median") else "")
                            if k in s else "" for k in ("ratio", "ratio_librbd"))
        print(f"| {w} | {c} | {fsp(s[m])} {unit[m]} | {ratio} | {ratio_ref} | {lat} "
              f"| {fsp(s['server_cpu_s_per_gib'], 2)} | {fsp(s['cluster_cpu_s_per_gib'], 2)} |")
bad = [(w, c, summary[w][c]) for w in workloads for c in configs
       if summary[w][c]["errors"] or summary[w][c]["failed"]]
for w, c, s in bad:
    print(f"WARNING: {c} {w}: {s['errors']} request errors, {s['failed']} failed runs")
print()
print(f"Target (issue 17): cryptvol on RBD >= {TARGET}x the plaintext qemu-nbd, judged from the "
      "median ratio:")
for t in targets:
    v = t["value"]
    verdict = "n/a" if t["met"] is None else ("MET" if t["met"] else "NOT MET")
    print(f"  {verdict:8s} {t['workload']}: {fsp(v, 2)}")
builds = [c for c in configs if c.startswith("cv-")]
for b in builds:
    print(f"{b} / cryptvol (BENCH_PLUGINS, the same run), per-round ratios, median (min-max):")
    for w in workloads:
        m = metric[w]
        xs = []
        for rnd in rounds:
            x, y = run_of(w, b, rnd), run_of(w, CV, rnd)
            xs.append(x[m] / y[m] if x and y and x.get(m) and y.get(m) else None)
        cx = []
        for rnd in rounds:
            x, y = per_gib(run_of(w, b, rnd), "server_cpu_s"), per_gib(run_of(w, CV, rnd), "server_cpu_s")
            cx.append(x / y if x is not None and y else None)
        summary[w][b]["vs_cryptvol"] = {"throughput": spread(xs), "server_cpu": spread(cx)}
        print(f"           {w}: throughput {fsp(spread(xs), 2)}, server CPU s/GiB {fsp(spread(cx), 2)}")
r = [(w, summary[w][CV]["ratio_librbd"]) for w in workloads
     if summary[w].get(CV, {}).get("ratio_librbd", {}).get("n")]
if r:
    print("For reference, cryptvol / librbd itself (rbd bench, no NBD):")
    for w, v in r:
        print(f"           {w}: {fsp(v, 2)}")
os.makedirs(a.out, exist_ok=True)
with open(os.path.join(a.out, "results.json"), "w") as f:
    json.dump({"machine": machine, "params": params, "summary": summary,
               "targets": targets, "runs": runs}, f, indent=1)
print()
print("wrote", os.path.join(a.out, "results.json"))
