#!/usr/bin/python3
"""The tables of bench/many-volumes.sh: medians (min-max) over the runs.

Usage: many-volumes-report.py RESULTS.tsv N SINGLE SAMPLE
RESULTS.tsv has config, run, metric, value lines (many-volumes.sh's record).
The `single` rows are measured on SINGLE processes; the row "single x N" is
those figures scaled by N / SINGLE: extrapolated, not measured.
"""
import collections
import statistics
import sys

path, n, single, sample = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
vals = collections.defaultdict(lambda: collections.defaultdict(list))
order = []
with open(path) as f:
    next(f)
    for line in f:
        config, run, metric, value = line.rstrip("\n").split("\t")
        if config not in order:
            order.append(config)
        try:
            vals[config][metric].append(float(value))
        except ValueError:
            pass  # "-": not measurable in this configuration


def cell(config, metric, scale=1.0, fmt="{:.0f}"):
    v = vals[config].get(metric)
    if not v:
        return "-"
    med = fmt.format(statistics.median(v) * scale)
    if len(v) == 1:
        return med
    lo, hi = fmt.format(min(v) * scale), fmt.format(max(v) * scale)
    return med if lo == hi else f"{med} ({lo}-{hi})"


def describe(config):
    if config.startswith("eager-p"):
        return f"one nbdkit, volumes=FILE, unlock=eager, unlock-parallel={config[7:]}"
    if config.startswith("dir-p"):
        return f"one nbdkit, dir=DIR, unlock=eager, unlock-parallel={config[5:]}"
    return {
        "lazy": "one nbdkit, volumes=FILE, unlock=lazy",
        "single": f"{single} nbdkit processes, one volume each (sums)",
    }[config]


runs = max((len(v) for c in vals.values() for v in c.values()), default=0)
rows = [(c, describe(c), 1.0) for c in order]
if "single" in order and single < n:
    rows.append(("single", f"{n} nbdkit processes: the {single} above x {n / single:.4g}, "
                 "**extrapolated**", n / single))

print(f"\nStart-up: {n} volumes; medians of {runs} runs (min-max); memory in MiB, "
      "once the server(s) listen, before any client\n")
print("| configuration | listening after (s) | KMS Decrypt calls | server CPU (s) | "
      "peak RSS (VmHWM) | RSS | RssAnon | PSS | locked (VmLck) | threads | fds |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for c, text, k in rows:
    print("| " + " | ".join([
        text, cell(c, "ready_s", fmt="{:.2f}") if k == 1.0 else "-",
        cell(c, "decrypt_ok", k), cell(c, "start.cpu_s", k, "{:.1f}"),
        cell(c, "start.hwm_mib", k), cell(c, "start.rss_mib", k), cell(c, "start.anon_mib", k),
        cell(c, "start.pss_mib", k), cell(c, "start.locked_mib", k, "{:.1f}"),
        cell(c, "start.threads", k), cell(c, "start.fds", k)]) + " |")

print(f"\nWith clients connected (each: connect by export name, write 4 KiB, read it "
      f"back, stay connected): {sample} random exports, then every export "
      f"({n}, or {single} for the single processes); memory in MiB\n")
print(f"| configuration | {sample}: first I/O ms (median / max) | {sample}: RSS | "
      f"{sample}: PSS | {sample}: threads | all: connect + I/O (s) | all: peak RSS (VmHWM) | "
      "all: RSS | all: RssAnon | all: PSS | all: VmLck | all: threads | all: fds |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for c, text, k in rows:
    if k != 1.0:
        ext = [cell(c, "all.hwm_mib", k), cell(c, "all.rss_mib", k), cell(c, "all.anon_mib", k),
               cell(c, "all.pss_mib", k), cell(c, "all.locked_mib", k, "{:.1f}"),
               cell(c, "all.threads", k), cell(c, "all.fds", k)]
        print("| " + " | ".join([text, "-", "-", "-", "-", "-"] + ext) + " |")
        continue
    print("| " + " | ".join([
        text,
        cell(c, "touch_ms_median", fmt="{:.0f}") + " / " + cell(c, "touch_ms_max", fmt="{:.0f}"),
        cell(c, "touched.rss_mib"), cell(c, "touched.pss_mib"), cell(c, "touched.threads"),
        cell(c, "all_s", fmt="{:.1f}"), cell(c, "all.hwm_mib"), cell(c, "all.rss_mib"),
        cell(c, "all.anon_mib"), cell(c, "all.pss_mib"), cell(c, "all.locked_mib", fmt="{:.1f}"),
        cell(c, "all.threads"), cell(c, "all.fds")]) + " |")
