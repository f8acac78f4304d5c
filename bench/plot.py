#!/usr/bin/env python3
"""Scaling curves from alloy-bench JSON.

One PNG per (op, shape, dtype, sync, weights): throughput against thread count, one line
per mode, each point the median with the spread of its repeats, and on a GPU a dashed line
for perfect scaling of alloy's one-thread throughput (N threads, N times the work).

    python3 bench/plot.py results.json [more.json ...] -o OUT_DIR
"""
import argparse
import json
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FixedLocator, ScalarFormatter  # noqa: E402

STYLE = {
    "lockfree": dict(color="tab:blue", marker="o"),
    "mutex": dict(color="tab:red", marker="s"),
    "vendor": dict(color="tab:green", marker="^"),
    "vendor-mutex": dict(color="tab:olive", marker="v"),
}


def groups(rows):
    out = {}
    for r in rows:
        key = (r["op"], r["shape"], r["dtype"], r["sync"], r["weights"])
        out.setdefault(key, []).append(r)
    return out


def plot_group(key, rows, device, gpu, out_dir, prefix):
    op, shape, dtype, sync, weights = key
    flops, nbytes = rows[0]["flops_per_op"] or 0, rows[0]["bytes_per_op"] or 0
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    threads = sorted({r["threads"] for r in rows})
    plotted = False
    for mode in dict.fromkeys(r["mode"] for r in rows):
        pts = sorted((r["threads"], r["ops_per_s"], r["repeats_ops_per_s"], r["impl"])
                     for r in rows if r["mode"] == mode and r["ops_per_s"])
        if not pts:
            continue
        x = [p[0] for p in pts]
        y = [p[1] for p in pts]
        lo = [p[1] - min(p[2]) for p in pts]
        hi = [max(p[2]) - p[1] for p in pts]
        ax.errorbar(x, y, yerr=[lo, hi], capsize=3, label=mode, **STYLE.get(mode, {}))
        plotted = True
        # On a CPU device one alloy thread already uses every core: no N-fold line there.
        if gpu and mode == "lockfree" and x[0] == 1:
            ax.plot(threads, [y[0] * t for t in threads], ls="--", color="tab:blue", alpha=0.35,
                    label="lockfree x threads (perfect scaling)")
    if not plotted:
        plt.close(fig)
        return None
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(threads))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.set_xlabel("application threads (each with its own queue / stream)")
    ax.set_ylabel("ops/s (median)")
    ax.set_ylim(bottom=0)
    unit, per = ("GFLOPS", flops / 1e9) if flops else ("GB/s", nbytes / 1e9)
    if per > 0:
        sec = ax.secondary_yaxis("right", functions=(lambda v: v * per, lambda v: v / per))
        sec.set_ylabel(unit)
    w = "" if op in ("lu_factor", "copy") else f", {weights} weights"
    ax.set_title(f"{op} {shape} {dtype}, sync {sync}{w}\n{device}", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    name = re.sub(r"[^A-Za-z0-9_.x-]", "_", f"{prefix}{op}_{shape}_{dtype}_sync-{sync}_{weights}.png")
    path = os.path.join(out_dir, name)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="+", help="alloy-bench --json output")
    ap.add_argument("-o", "--out-dir", default=".", help="where the PNGs go")
    ap.add_argument("--prefix", default="", help="prepended to every file name")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    for path in args.json:
        with open(path) as f:
            data = json.load(f)
        meta = data["meta"]
        dev = meta["device"]
        device = dev["name"] or f"{dev['backend']} (alloy device unavailable)"
        prefix = args.prefix or (os.path.splitext(os.path.basename(path))[0] + "_")
        for key, rows in groups(data["rows"]).items():
            out = plot_group(key, rows, device, dev["backend"] != "cpu", args.out_dir, prefix)
            if out:
                print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
