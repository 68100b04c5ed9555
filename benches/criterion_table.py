#!/usr/bin/env python3
"""Prints the last `cargo bench --bench ranking` results as a Markdown table, with each fast
lookup's speed-up over the naive baseline measured in the same run.

Usage: python3 benches/criterion_table.py [target/criterion]
"""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
rows = {}
for est in root.glob("**/new/estimates.json"):
    bench = json.loads((est.parent / "benchmark.json").read_text())
    ns = json.loads(est.read_text())["mean"]["point_estimate"]
    rows[(bench["group_id"], bench.get("function_id") or "", bench.get("value_str") or "")] = ns


def fmt(ns):
    return f"{ns / 1e6:.2f} ms" if ns >= 1e6 else f"{ns / 1e3:.2f} µs" if ns >= 1e3 else f"{ns:.0f} ns"


print("| group | case | fast | per node | weighted | naive | naive / fast |")
print("|---|---|---|---|---|---|---|")
def order(kv):
    (group, _, value), _ = kv
    return (int(group.split("=")[1]) if "=" in group else 0, int(value[3:]) if value.startswith("top") else 0)


for (group, func, value), ns in sorted(rows.items(), key=order):
    if func != "fast":
        continue
    n = int(group.split("=")[1])
    naive = rows.get((group, "naive", value))
    weighted = rows.get((group, "weighted", value))
    print(f"| {group} | {value} | {fmt(ns)} | {ns / n:.2f} ns | {fmt(weighted) if weighted else ''} | "
          f"{fmt(naive) if naive else ''} | {naive / ns:.1f}× |" if naive else "|")
for (group, func, value), ns in sorted(rows.items()):
    if group == "build":
        print(f"| build | {func} | {fmt(ns)} | | | | |")
