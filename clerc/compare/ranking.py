"""Rank runs per table on the headline metric of each cell (ties share the mean rank)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import rankdata

from clerc.evaluate.metric_specs import direction

#: The metrics a table's ranking uses (one per cell; MAE and the other retrieval metrics
#: repeat what R^2 and the median percentile say).
HEADLINE: dict[str, tuple[str, ...]] = {
    "table3": ("median_percentile",),
    "table4": ("auroc", "r2"),
    "table5": ("auroc", "r2"),
}


@dataclass(frozen=True)
class Standing:
    """One run's place in a table: mean rank over the cells it has a value for (ranked among
    the runs with a value there, at least two), and in how many of them it ranks first."""

    name: str
    mean_rank: float | None
    best: int
    cells: int


def rank_runs(
    names: list[str], values: list[dict[tuple, dict[str, Any]]], keys: list[tuple], table: str
) -> list[Standing]:
    """Standings, best first, over the ``keys`` of ``table`` where two or more runs have a
    value (a run that cannot serve a cell is left out of that cell's ranking)."""
    sums = np.zeros(len(names))
    cells = np.zeros(len(names), dtype=int)
    best = np.zeros(len(names), dtype=int)
    for key in keys:
        metric = key[-1]
        if key[0] != table or metric not in HEADLINE[table] or direction(metric) == 0:
            continue
        vals = [(v.get(key) or {}).get("value") for v in values]
        have = {i: float(x) for i, x in enumerate(vals) if x is not None}
        if len(have) < 2:
            continue
        r = rankdata([-direction(metric) * x for x in have.values()])
        for i, ri in zip(have, r, strict=True):
            sums[i] += ri
            cells[i] += 1
            best[i] += int(ri == r.min())
    out = [
        Standing(n, float(sums[i] / cells[i]) if cells[i] else None, int(best[i]), int(cells[i]))
        for i, n in enumerate(names)
    ]
    return sorted(out, key=lambda s: (s.mean_rank is None, s.mean_rank or 0.0, -s.cells))
