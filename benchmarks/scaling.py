"""Scaling: time and peak memory of retrieval, bootstrap and ridge as the size doubles,
against the cost models (2 N^2 d, B n, n d^2), plotted log-log into `scaling.png`.

    python -m benchmarks.scaling [--quick]

Every point runs in its own subprocess (peak RSS above the inputs) and once more in this
process; the time is the smaller of the two.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from benchmarks import Section, fmt_bytes, fmt_s, peak_memory, table, timed

HERE = Path(__file__).resolve().parent
D = 512

# name -> (module, case, size keyword, extra kwargs, cost model label, cost model exponent)
SERIES: dict[str, tuple[str, str, str, dict, str, float]] = {
    "retrieval": ("benchmarks.bench_retrieval", "case_ours", "n", {}, "2 N^2 d", 2.0),
    "bootstrap (AUROC)": ("benchmarks.bench_bootstrap", "case_ours", "n",
                          {"metric": "auroc"}, "B n", 1.0),
    "ridge path": ("benchmarks.bench_probe", "case_ridge_ours", "n", {}, "n d^2", 1.0),
}


def sizes(quick: bool) -> dict[str, list[int]]:
    """Doubling sizes per series (smaller and fewer with --quick)."""
    if quick:
        return {"retrieval": [500, 1_000, 2_000], "bootstrap (AUROC)": [1_000, 2_000, 4_000],
                "ridge path": [5_000, 10_000, 20_000]}
    return {"retrieval": [1_000, 2_000, 4_000, 8_000, 16_000],
            "bootstrap (AUROC)": [5_000, 10_000, 20_000, 40_000, 80_000],
            "ridge path": [25_000, 50_000, 100_000, 200_000, 400_000]}


def measure(quick: bool) -> dict[str, list[dict]]:
    """{series: [{n, seconds, peak_bytes}, ...]}."""
    import importlib

    out: dict[str, list[dict]] = {}
    for name, (module, case, key, extra, _, _) in SERIES.items():
        kw = dict(extra)
        if name.startswith("bootstrap"):
            kw["resamples"] = 100 if quick else 1000
        points = []
        for n in sizes(quick)[name]:
            mem = peak_memory(module, case, **{key: n}, **kw)
            fn = getattr(importlib.import_module(module), case)(**{key: n}, **kw)
            seconds = min(mem["seconds"], timed(fn)[0])
            del fn
            points.append({"n": n, "seconds": seconds, "peak_bytes": mem["peak_bytes"],
                           **({"resamples": kw["resamples"]} if "resamples" in kw else {})})
        out[name] = points
    return out


def slope(points: list[dict], key: str) -> float:
    """Least-squares log-log slope of `key` against n."""
    n = np.log([p["n"] for p in points])
    v = np.log([max(p[key], 1e-12) for p in points])
    return float(np.polyfit(n, v, 1)[0])


def plot(data: dict[str, list[dict]], path: Path) -> None:
    """Time (top) and memory (bottom) per series, log-log, with the cost-model line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(2, len(data), figsize=(4.2 * len(data), 7), squeeze=False)
    for col, (name, points) in enumerate(data.items()):
        n = np.array([p["n"] for p in points], dtype=float)
        t = np.array([p["seconds"] for p in points])
        m = np.array([p["peak_bytes"] for p in points]) / 2**20
        label, expo = SERIES[name][4], SERIES[name][5]
        ax = axes[0, col]
        ax.loglog(n, t, "o-", label="measured")
        ax.loglog(n, t[-1] * (n / n[-1]) ** expo, "--", label=f"{label} (through last point)")
        ax.set_title(name)
        ax.set_ylabel("seconds")
        ax.legend(fontsize=8)
        ax = axes[1, col]
        ax.loglog(n, m, "o-", label="measured peak extra RSS")
        if name == "retrieval":
            ax.loglog(n, n * n * 4 / 2**20, ":", label="one N x N float32 matrix")
        elif name.startswith("ridge"):
            ax.loglog(n, n * D * 8 / 2**20, ":", label="one float64 copy of X")
        else:
            ax.loglog(n, m[-1] * n / n[-1], ":", label="O(n) (through last point)")
        ax.set_xlabel("N" if name == "retrieval" else "n")
        ax.set_ylabel("MiB")
        ax.legend(fontsize=8)
    for ax in axes.ravel():
        ax.xaxis.set_minor_formatter(NullFormatter())
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(quick: bool, png: Path = HERE / "scaling.png") -> Section:
    """Measure, plot, and tabulate the fitted slopes."""
    data = measure(quick)
    plot(data, png)
    body = []
    for name, points in data.items():
        expo = SERIES[name][5]
        pts = ", ".join(f"{p['n']:,}: {fmt_s(p['seconds'])} / {fmt_bytes(p['peak_bytes'])}"
                        for p in points)
        body.append([name, SERIES[name][4], f"{slope(points, 'seconds'):.2f} (model {expo:g})",
                     f"{slope(points, 'peak_bytes'):.2f}", pts])
    b = data["bootstrap (AUROC)"][0].get("resamples")
    text = (f"Sizes double; d = {D}; bootstrap B = {b}. Slope = least-squares log-log "
            "slope (time ~ n^slope). Retrieval memory grows ~N (a chunk x N block) up to "
            "the chunk size, not N^2.\n\n"
            + table(["series", "cost model", "time slope", "memory slope",
                     "n: time / peak memory"], body)
            + f"\n\n![scaling]({png.name})")
    return Section("Scaling", text, [], {"series": data})


if __name__ == "__main__":
    print(run("--quick" in sys.argv).markdown)
