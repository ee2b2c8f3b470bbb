"""One figure per compared table: each run's paired difference from the reference per cell."""

from __future__ import annotations

from typing import Any

import matplotlib
import numpy as np

from clerc.evaluate.metric_specs import direction
from clerc.report.plots import RC, Plot, _figure, to_svg

COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")


def forest(
    table: str, title: str, labels: list[str], metrics: list[str], diffs: dict[str, list[Any]]
) -> Plot | None:
    """Difference (run - reference), oriented so that right = better, with its 95% CI.

    ``diffs``: run name -> one ``Paired`` (or None) per label. Returns None with no values.
    """
    if not labels or not any(
        p is not None and p.value is not None for ps in diffs.values() for p in ps
    ):
        return None
    fig = _figure(6.8, 0.17 * len(labels) * max(1, len(diffs)) ** 0.5 + 1.3)
    y = np.arange(len(labels), dtype=float)
    with matplotlib.rc_context(RC):
        ax = fig.add_subplot()
        width = 0.6 / max(1, len(diffs))
        for i, (name, paired) in enumerate(diffs.items()):
            colour = COLOURS[i % len(COLOURS)]
            pos = y - 0.3 + width * (i + 0.5)
            for yy, p, metric in zip(pos, paired, metrics, strict=True):
                if p is None or p.value is None:
                    continue
                s = direction(metric) or 1
                if p.ci_low is not None:
                    lo, hi = sorted((s * p.ci_low, s * p.ci_high))
                    ax.plot([lo, hi], [yy, yy], color=colour, lw=1.0)
                ax.plot([s * p.value], [yy], "o", color=colour, ms=3)
            ax.plot([], [], "o-", color=colour, ms=3, lw=1.0, label=name)
        ax.axvline(0, color="#888888", lw=0.8, ls="--")
        ax.set_yticks(y, labels)
        ax.tick_params(axis="y", labelsize=6)
        ax.invert_yaxis()
        ax.set_xlabel("run − reference, signed so that right = better (95% CI where paired)")
        ax.legend(fontsize=7, frameon=False, loc="best")
        ax.set_title(title, fontsize=9)
    return Plot(title, to_svg(fig, f"compare-{table}"))
