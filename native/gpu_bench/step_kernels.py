"""Per-kernel time of one decode step from an Nsight Compute CSV of `tidal bench`.

A forward pass starts at each embedding kernel; a one-token step is a forward with one
embedding kernel and more than 100 kernels. Prints, for the last complete step of each
distinct kernel sequence seen (full, tidal, quest, ...), the kernels summed by name.
"""
import csv
import re
import sys
from collections import OrderedDict


def short(name):
    """The kernel's name with its template arguments, without namespaces and parameters."""
    name = re.sub(r"^void ", "", name)
    name = re.sub(r"\(anonymous namespace\)::|<unnamed>::|tidal::|detail::|cublasLt::", "", name)
    depth, out = 0, []
    for ch in name:  # drop the parameter list: the first '(' outside template brackets
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "(" and depth == 0:
            break
        out.append(ch)
    return "".join(out)[:70]


def main(path):
    rows = []
    with open(path, newline="") as f:
        lines = [line for line in f if line.startswith('"')]
    for r in csv.DictReader(lines):
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        rows.append((int(r["ID"]), r["Kernel Name"], float(r["Metric Value"].replace(",", "")) / 1000.0))
    rows.sort()
    steps, current = [], None
    for _, name, us in rows:
        if "embedding" in name:
            if current:
                steps.append(current)
            current = []
        if current is not None:
            current.append((name, us))
    if current:
        steps.append(current)
    decode = [s for s in steps if len(s) > 100]
    seen = OrderedDict()
    for s in decode:
        signature = tuple(short(n) for n, _ in s if "split" in n or "top_k" in n or "quest" in n)[:12]
        seen[(len(s), signature)] = s
    print(f"{len(rows)} kernels profiled, {len(decode)} decode steps")
    for (count, _), s in seen.items():
        total = sum(us for _, us in s)
        print(f"\n## step of {count} kernels: {total / 1000:.3f} ms of kernel time\n")
        print("| kernel | launches | total us | mean us |")
        print("|---|---:|---:|---:|")
        by = OrderedDict()
        for n, us in s:
            k = short(n)
            c, t = by.get(k, (0, 0.0))
            by[k] = (c + 1, t + us)
        for k, (c, t) in sorted(by.items(), key=lambda kv: -kv[1][1]):
            print(f"| {k} | {c} | {t:.1f} | {t / c:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1])
