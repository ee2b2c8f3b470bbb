"""Rank runs per table on the headline metric of each cell (ties share the mean rank)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import rankdata

from clerc.gate import direction

#: The metrics a table's ranking uses (one per cell; MAE and the other retrieval metrics
#: repeat what R^2 and the median percentile say).
HEADLINE: dict[str, tuple[str, ...]] = {
    "table3": ("median_percentile",), "table4": ("auroc", "r2"), "table5": ("auroc", "r2"),
}


@dataclass(frozen=True)
class Standing:
    """One run's place in a table: mean rank over the cells every run has, cells best."""

    name: str
    mean_rank: float | None
    best: int
    cells: int


def rank_runs(names: list[str], values: list[dict[tuple, dict[str, Any]]],
              keys: list[tuple], table: str) -> list[Standing]:
    """Standings, best first, over the ``keys`` of ``table`` where every run has a value."""
    ranks: list[np.ndarray] = []
    for key in keys:
        metric = key[-1]
        if key[0] != table or metric not in HEADLINE[table] or direction(metric) == 0:
            continue
        vals = [v.get(key, {}).get("value") for v in values]
        if any(x is None for x in vals):
            continue
        ranks.append(rankdata([-direction(metric) * x for x in vals]))
    if not ranks:
        return [Standing(n, None, 0, 0) for n in names]
    r = np.vstack(ranks)
    out = [Standing(n, float(r[:, i].mean()), int((r[:, i] == r.min(axis=1)).sum()), len(r))
           for i, n in enumerate(names)]
    return sorted(out, key=lambda s: s.mean_rank)
