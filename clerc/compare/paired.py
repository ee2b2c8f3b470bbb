"""Paired differences between a run and the reference run, cell by cell.

Where both runs scored the same manifest and wrote pairing pseudonyms, the rows of a cell
(studies, or retrieval queries) are matched by ``pair_unit``; the difference metric(run) -
metric(reference) is bootstrapped over ``pair_patient`` with both runs' rows resampled
together (``clerc.evaluate.bootstrap.paired_bootstrap``), as the CLERC-minus-supervised
differences are. Retrieval recall@K is recomputed from the stored percentile
(rank = percentile x (G - 1) / 100).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from clerc.compare.runs import Run, cell_key
from clerc.evaluate.bootstrap import paired_bootstrap

_RETRIEVAL = {"median_percentile": "median", "mean_percentile": "mean"}


@dataclass(frozen=True)
class Paired:
    """A cell's paired difference (``value`` None: not computed, ``reason`` says why)."""

    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    n: int = 0
    reason: str | None = None


def _scores(rows: pd.DataFrame, metric: str) -> tuple[str, np.ndarray]:
    pct = rows["y_score"].to_numpy(float)
    if metric in _RETRIEVAL:
        return _RETRIEVAL[metric], pct
    if re.fullmatch(r"recall@\d+", metric) or metric == "mrr":  # both score ranks
        return metric, np.rint(pct * (len(rows) - 1) / 100.0)
    return metric, pct


def pairable(run: Run, ref: Run) -> str | None:
    """Why ``run`` cannot be paired with ``ref`` at all, or None."""
    if run.manifest_hash is None or run.manifest_hash != ref.manifest_hash:
        return "the runs scored different manifests"
    for r in (run, ref):
        if not r.pairable:
            return (
                f"{r.name}'s predictions.parquet has no pairing keys "
                "(re-run clerc benchmark to write them)"
            )
    return None


def paired_cell(run: Run, ref: Run, key: tuple, *, n_resamples: int, seed: int) -> Paired:
    """The paired difference of one record key (cell fields + metric)."""
    metric = key[-1]
    cell = cell_key(key)
    if run.predictions is None or ref.predictions is None:
        return Paired(None, reason="no predictions for this cell in both runs")
    a = run.predictions[run.predictions["cell"] == cell]
    b = ref.predictions[ref.predictions["cell"] == cell]
    if a.empty or b.empty:
        return Paired(None, reason="no predictions for this cell in both runs")
    if a["pair_unit"].duplicated().any() or b["pair_unit"].duplicated().any():
        return Paired(None, reason="a study appears twice in a cell's predictions")
    if set(a["pair_unit"]) != set(b["pair_unit"]):
        return Paired(None, reason=f"the runs scored different rows ({len(a)} vs {len(b)})")
    a = a.set_index("pair_unit").sort_index()  # a canonical order: resamples do not
    b = b.set_index("pair_unit").loc[a.index]  # depend on the order rows were written in
    if not np.allclose(a["y_true"].to_numpy(float), b["y_true"].to_numpy(float)):
        return Paired(None, reason="the runs' labels differ for the same studies")
    boot, sa = _scores(a, metric)
    _, sb = _scores(b, metric)
    seed = (seed * 1_000_003 + zlib.crc32(f"{cell}|{metric}".encode())) % 2**32
    try:
        res = paired_bootstrap(
            boot,
            a["pair_patient"].to_numpy(),
            a["y_true"].to_numpy(float),
            sa,
            sb,
            n_resamples=n_resamples,
            seed=seed,
        )
    except ValueError as exc:
        return Paired(None, reason=str(exc))
    return Paired(res.value, res.ci_low, res.ci_high, res.p_value, res.n)


def paired_differences(
    run: Run, ref: Run, keys: list[tuple], *, n_resamples: int = 1000, seed: int = 0
) -> dict[tuple, Paired]:
    """Paired differences for every key defined in both runs (others: a reason)."""
    why = pairable(run, ref)
    va, vb = run.values(), ref.values()
    out: dict[tuple, Paired] = {}
    for key in keys:
        ra, rb = va.get(key), vb.get(key)
        if ra is None or rb is None or ra["value"] is None or rb["value"] is None:
            out[key] = Paired(None, reason="no value in both runs")
        elif why is not None or n_resamples < 1:
            out[key] = Paired(
                ra["value"] - rb["value"], reason=why or "no interval: bootstrap disabled"
            )
        else:
            out[key] = paired_cell(run, ref, key, n_resamples=n_resamples, seed=seed)
    return out
