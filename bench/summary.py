#!/usr/bin/env python3
"""One Markdown line per alloy-bench row: each mode's throughput on one thread and on the
most threads, and alloy lockfree's ratio to the mutex workaround and to the vendor there.

    python3 bench/summary.py [--at THREADS] results.json [more.json ...]
"""
import argparse
import json
import sys

MODES = ("lockfree", "mutex", "vendor", "vendor-mutex")


def rate(v):
    if v is None:
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e4:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="+")
    ap.add_argument("--at", type=int, help="the thread count to compare at (default: the most)")
    args = ap.parse_args()
    for path in args.json:
        with open(path) as f:
            data = json.load(f)
        rows = {}
        for r in data["rows"]:
            key = (r["op"], r["shape"], r["dtype"], r["sync"], r["weights"])
            rows.setdefault(key, {}).setdefault(r["mode"], {})[r["threads"]] = r
        threads = data["meta"]["threads"]
        lo, hi = threads[0], args.at if args.at in threads else threads[-1]
        modes = [m for m in MODES if any(m in v for v in rows.values())]
        print(f"\n`{data['meta']['command']}`\n")
        head = " | ".join(f"{m} {t}" for t in (lo, hi) for m in modes)
        print(f"| row | {head} | lockfree/mutex at {hi} | lockfree/vendor at {hi} |")
        print("|---" + "|---:" * (2 * len(modes) + 2) + "|")
        for key, by_mode in rows.items():
            op, shape, dtype, sync, weights = key
            w = "" if op in ("lu_factor", "copy") else f", {weights}"
            cells = []
            for t in (lo, hi):
                for m in modes:
                    r = by_mode.get(m, {}).get(t)
                    ok = r and r["ops_per_s"] is not None
                    cells.append(rate(r["ops_per_s"]) if ok else (r["status"] if r else "-"))

            def ratio(a, b):
                x = by_mode.get(a, {}).get(hi)
                y = by_mode.get(b, {}).get(hi)
                if x and y and x["ops_per_s"] and y["ops_per_s"]:
                    return f"{x['ops_per_s'] / y['ops_per_s']:.2f}x"
                return "-"

            print(f"| {op} {shape} {dtype}, sync {sync}{w} | " + " | ".join(cells) +
                  f" | {ratio('lockfree', 'mutex')} | {ratio('lockfree', 'vendor')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
