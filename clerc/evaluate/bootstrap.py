"""Patient-level bootstrap confidence intervals, vectorised over resamples.

A resample draws patients with replacement (all rows of a drawn patient come along, with
multiplicity). The draws come from one `default_rng(seed)` as uint32 patient indices, a
(n_resamples, n_patients) stream that does not depend on how resamples are blocked
(tested). Each block of resamples is a matrix of per-patient counts; every metric is then
computed for the whole block at once as a weighted metric (weights = counts of each row's patient):

- AUROC: positive scores sorted once into tie groups (`np.unique`), each negative placed
  once by `searchsorted`; sparse (groups x patients) matrix products give each resample's
  positive weight per score and, by a cumulative sum, the negative weight below it (ties
  count one half): the exact Mann-Whitney count in O(n) per resample.
- mean, MAE, R^2, recall@K: per-patient sums, then one matrix product per block.
- AUPRC: positive scores sorted once into tie groups, each negative placed once at the
  first positive score at or below it; per resample the positive and negative weight of
  each group (sparse products), cumulated from the highest score: average precision as
  sklearn defines it, for the whole block at once.
- ECE: per-patient sums of (y - p) within each probability bin, one product per block.
- Brier, MRR: per-patient sums as for the mean.
- median: values sorted once into groups; per resample the cumulative weights locate the
  middle positions (the same value `np.median` gives on the materialised resample).

A resample where the metric is undefined (one class only for AUROC, zero variance of
y_true for R^2) is counted in `n_undefined` and excluded from the percentile interval.

Which scorer computes a metric is the metric's spec (`clerc.evaluate.metric_specs`); the
scorers themselves are in `clerc.evaluate.scorers`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from clerc.evaluate.metric_specs import MetricSpec, metric_spec, scorer_of
from clerc.evaluate.metrics import finite_vector
from clerc.evaluate.scorers import Cores, Scorer
from clerc.registry import UnknownNameError

__all__ = [
    "BootstrapResult",
    "Part",
    "adjust",
    "bootstrap_replicates",
    "iter_resample_counts",
    "joint_replicates",
    "paired_bootstrap",
    "patient_bootstrap",
    "patient_bootstrap_many",
    "percentile_interval",
    "resample_counts",
]

_BLOCK_CELLS = 500_000  # float64 cells per block matrix (4 MB: stays in cache)


@dataclass(frozen=True)
class BootstrapResult:
    """Point estimate with a percentile CI; `n` = patients, `n_rows` = samples/studies.

    `p_value` is set by `paired_bootstrap` (two-sided, for a difference of zero) and is
    None for a single-metric bootstrap.
    """

    value: float
    ci_low: float
    ci_high: float
    n: int
    n_rows: int
    n_resamples: int
    n_undefined: int
    level: float
    p_value: float | None


def _spec(metric: str) -> MetricSpec:
    """The metric's spec, when it has a bootstrap scorer."""
    try:
        spec = metric_spec(metric)
    except UnknownNameError:
        spec = None
    if spec is None or spec.scorer is None:
        raise ValueError(
            f"unknown bootstrap metric {metric!r}; expected a metric of "
            "clerc.evaluate.metric_specs with a scorer (e.g. auroc, r2, mae, "
            "median, mean) or 'recall@K' with an integer K >= 1"
        )
    return spec


def _count_blocks(n_patients: int, n_resamples: int, seed: int, block: int) -> Iterator[np.ndarray]:
    """Yield float64 count matrices (n_patients, <= block): column r = resample r."""
    if n_patients < 1 or n_resamples < 1 or block < 1:
        raise ValueError(
            f"need n_patients, n_resamples and block >= 1, got {n_patients}, {n_resamples}, {block}"
        )
    if n_patients >= 2**32:
        raise ValueError(f"n_patients must be below 2**32, got {n_patients}")
    rng = np.random.default_rng(seed)
    for start in range(0, n_resamples, block):
        cols = min(block, n_resamples - start)
        draws = rng.integers(0, n_patients, size=(cols, n_patients), dtype=np.uint32)
        counts = np.empty((n_patients, cols))
        for r in range(cols):  # one bincount per resample: ~3x faster than one offset bincount
            counts[:, r] = np.bincount(draws[r], minlength=n_patients)
        yield counts


def iter_resample_counts(
    n_patients: int, n_resamples: int, seed: int, block: int
) -> Iterator[np.ndarray]:
    """Yield int64 count matrices (<= block, n_patients): how often each patient is drawn."""
    for counts in _count_blocks(n_patients, n_resamples, seed, block):
        yield counts.T.astype(np.int64)


def resample_counts(n_patients: int, n_resamples: int, seed: int) -> np.ndarray:
    """All resamples' per-patient counts, int64 (n_resamples, n_patients)."""
    return np.concatenate(list(iter_resample_counts(n_patients, n_resamples, seed, 256)))


def _scorer(
    metric: str,
    codes: np.ndarray,
    n_patients: int,
    y_true: np.ndarray | None,
    y_score: np.ndarray,
    cores: Cores | None = None,
    key: Any = None,
) -> Scorer:
    """The scorer of ``metric``; AUROC and AUPRC scorers made with the same ``cores`` dict
    and ``key`` (same rows, y_true and scores) share their block products."""
    return scorer_of(_spec(metric), codes, n_patients, y_true, y_score, cores, key)


def _inputs(
    metric: str, patient_ids: object, y_true: object, scores: list[tuple[str, object]]
) -> tuple[np.ndarray, int, np.ndarray | None, list[np.ndarray]]:
    spec = _spec(metric)
    codes, uniques = pd.factorize(np.asarray(patient_ids), use_na_sentinel=True)
    if codes.size == 0:
        raise ValueError("bootstrap needs at least one row")
    if (codes < 0).any():
        raise ValueError("patient_ids contains missing values")
    if spec.needs_y_true and y_true is None:
        raise ValueError(f"metric {metric!r} needs y_true")
    truth = None if y_true is None else finite_vector("y_true", y_true, codes.size, "patient_ids")
    return (
        codes,
        len(uniques),
        truth,
        [finite_vector(n, s, codes.size, "patient_ids") for n, s in scores],
    )


def _check_options(n_resamples: int, level: float) -> None:
    if int(n_resamples) < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")


def _point(metric: str, scorer: Scorer, n_patients: int) -> float:
    value, defined = scorer(np.ones((n_patients, 1)))
    if not defined[0]:
        raise ValueError(
            f"{metric} is undefined on the full data (one class only or zero variance of y_true)"
        )
    return float(value[0])


def _replicates(
    scorers: list[Scorer], n_patients: int, n_rows: int, n_resamples: int, seed: int
) -> tuple[list[np.ndarray], np.ndarray]:
    block = int(np.clip(_BLOCK_CELLS // max(n_rows, n_patients), 1, n_resamples))
    values: list[list[np.ndarray]] = [[] for _ in scorers]
    defined: list[np.ndarray] = []
    for counts in _count_blocks(n_patients, n_resamples, seed, block):
        ok = np.ones(counts.shape[1], dtype=bool)
        for i, scorer in enumerate(scorers):
            v, d = scorer(counts)
            values[i].append(v)
            ok &= d
        defined.append(ok)
    return [np.concatenate(v) for v in values], np.concatenate(defined)


def _interval(metric: str, stats: np.ndarray, level: float) -> tuple[float, float]:
    if stats.size == 0:
        raise ValueError(f"{metric}: the metric was undefined in every bootstrap resample")
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(stats, [tail, 100.0 - tail])
    return float(low), float(high)


def bootstrap_replicates(
    metric: str,
    patient_ids: object,
    y_true: object,
    y_score: object,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-resample metric values and the defined mask, as used by `patient_bootstrap`.

    Returns (values of the defined resamples, bool (n_resamples,) defined); resample r is
    row r of `resample_counts(n_patients, n_resamples, seed)` with patients numbered in
    order of first appearance in `patient_ids`.
    """
    _check_options(n_resamples, 0.5)
    codes, n_pat, truth, (score,) = _inputs(metric, patient_ids, y_true, [("y_score", y_score)])
    scorer = _scorer(metric, codes, n_pat, truth, score)
    (stats,), defined = _replicates([scorer], n_pat, codes.size, int(n_resamples), seed)
    return stats[defined], defined


def patient_bootstrap(
    metric: str,
    patient_ids: object,
    y_true: object,
    y_score: object,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> BootstrapResult:
    """Bootstrap `metric` over patients: point value, percentile CI, undefined count.

    metric: "auroc", "auprc", "brier", "ece", "r2", "mae" (need y_true), "median", "mean",
    "recall@K", "mrr" (y_score holds per-query percentiles or ranks; y_true may be None).
    """
    _check_options(n_resamples, level)
    codes, n_pat, truth, (score,) = _inputs(metric, patient_ids, y_true, [("y_score", y_score)])
    scorer = _scorer(metric, codes, n_pat, truth, score)
    value = _point(metric, scorer, n_pat)
    (stats,), defined = _replicates([scorer], n_pat, codes.size, int(n_resamples), seed)
    low, high = _interval(metric, stats[defined], level)
    return BootstrapResult(
        value,
        low,
        high,
        n_pat,
        int(codes.size),
        int(n_resamples),
        int((~defined).sum()),
        float(level),
        None,
    )


def patient_bootstrap_many(
    metrics: list[tuple[str, object]],
    patient_ids: object,
    y_true: object,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> list[BootstrapResult | str]:
    """`patient_bootstrap` of several (metric, y_score) on one set of resamples.

    Each result equals ``patient_bootstrap(metric, patient_ids, y_true, y_score,
    n_resamples=..., seed=seed)`` (same draws, each metric's own undefined resamples); the
    counts are drawn once for all. A metric that cannot be scored (undefined on the full
    data, every resample undefined, invalid inputs) gives the error message instead.
    """
    _check_options(n_resamples, level)
    codes, n_pat, truth, scores = _inputs(
        "mean", patient_ids, y_true, [("y_score", s) for _, s in metrics]
    )
    out: list[BootstrapResult | str] = []
    live: list[tuple[int, float, Scorer]] = []
    cores: Cores = {}
    for i, ((metric, raw), score) in enumerate(zip(metrics, scores, strict=True)):
        try:
            if _spec(metric).needs_y_true and truth is None:
                raise ValueError(f"metric {metric!r} needs y_true")
            scorer = _scorer(metric, codes, n_pat, truth, score, cores, id(raw))
            live.append((i, _point(metric, scorer, n_pat), scorer))
            out.append("")
        except ValueError as exc:
            out.append(str(exc))
    if not live:
        return out
    stats, defined = _replicates_each(
        [s for _, _, s in live], n_pat, codes.size, int(n_resamples), seed
    )
    for (i, value, _), st, ok in zip(live, stats, defined, strict=True):
        try:
            low, high = _interval(metrics[i][0], st[ok], level)
        except ValueError as exc:
            out[i] = str(exc)
            continue
        out[i] = BootstrapResult(
            value,
            low,
            high,
            n_pat,
            int(codes.size),
            int(n_resamples),
            int((~ok).sum()),
            float(level),
            None,
        )
    return out


def _replicates_each(
    scorers: list[Scorer], n_patients: int, n_rows: int, n_resamples: int, seed: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Like `_replicates`, but each scorer keeps its own defined mask."""
    block = int(np.clip(_BLOCK_CELLS // max(n_rows, n_patients), 1, n_resamples))
    values: list[list[np.ndarray]] = [[] for _ in scorers]
    defined: list[list[np.ndarray]] = [[] for _ in scorers]
    for counts in _count_blocks(n_patients, n_resamples, seed, block):
        for i, scorer in enumerate(scorers):
            v, d = scorer(counts)
            values[i].append(v)
            defined[i].append(d)
    return [np.concatenate(v) for v in values], [np.concatenate(d) for d in defined]


def paired_bootstrap(
    metric: str,
    patient_ids: object,
    y_true: object,
    score_a: object,
    score_b: object,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> BootstrapResult:
    """Bootstrap the difference metric(a) - metric(b) on identical patient resamples.

    A resample is undefined when either metric is. The two-sided p-value for "no
    difference" is min(1, 2 * min(#(d <= 0) + 1, #(d >= 0) + 1) / (B + 1)) over the B
    defined resample differences d.
    """
    _check_options(n_resamples, level)
    codes, n_pat, truth, (a, b) = _inputs(
        metric, patient_ids, y_true, [("score_a", score_a), ("score_b", score_b)]
    )
    scorers = [_scorer(metric, codes, n_pat, truth, s) for s in (a, b)]
    value = _point(metric, scorers[0], n_pat) - _point(metric, scorers[1], n_pat)
    (sa, sb), defined = _replicates(scorers, n_pat, codes.size, int(n_resamples), seed)
    diff = (sa - sb)[defined]
    low, high = _interval(metric, diff, level)
    tail = min(np.sum(diff <= 0), np.sum(diff >= 0)) + 1
    p_value = min(1.0, 2.0 * tail / (diff.size + 1))
    return BootstrapResult(
        value,
        low,
        high,
        n_pat,
        int(codes.size),
        int(n_resamples),
        int((~defined).sum()),
        float(level),
        float(p_value),
    )


@dataclass(frozen=True)
class Part:
    """One metric on a subset of the shared rows for `joint_replicates`.

    rows: row indices into the shared ``patient_ids`` (None = every row); y_true and
    y_score hold the values of those rows only.
    """

    metric: str
    y_true: np.ndarray | None
    y_score: np.ndarray
    rows: np.ndarray | None = None


def joint_replicates(
    patient_ids: object, parts: list[Part], *, n_resamples: int = 1000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every part's metric on the same patient resamples (paired across parts).

    Resample r is row r of `resample_counts(n_patients, n_resamples, seed)` (patients
    numbered by first appearance in ``patient_ids``), exactly as `patient_bootstrap`
    draws. A part on a subset (a subgroup) sees only its own patients' counts, so its
    cost is proportional to its rows, and differences between parts are paired. A
    resample that draws none of a part's patients leaves that part undefined there.
    Returns (point values (P,), point defined (P,), values (P, R), defined (P, R)).
    """
    _check_options(n_resamples, 0.5)
    codes, uniques = pd.factorize(np.asarray(patient_ids), use_na_sentinel=True)
    if codes.size == 0 or (codes < 0).any():
        raise ValueError("joint_replicates needs at least one row and no missing patient ids")
    local: list[tuple[np.ndarray | None, Scorer]] = []
    shared: dict[bytes, np.ndarray] = {}  # parts on the same patients share one pidx
    cores: Cores = {}  # AUROC and AUPRC of the same rows share products
    for i, part in enumerate(parts):
        sub = codes if part.rows is None else codes[np.asarray(part.rows, dtype=np.int64)]
        if sub.size == 0:
            raise ValueError(f"part {i} ({part.metric}) has no rows")
        _, truth, (score,) = _part_inputs(part, sub.size)
        key = (id(part.rows), id(part.y_true), id(part.y_score))  # parts alive: ids unique
        if part.rows is None:
            local.append(
                (None, _scorer(part.metric, codes, len(uniques), truth, score, cores, key))
            )
            continue
        pidx, sub_codes = np.unique(sub, return_inverse=True)
        pidx = shared.setdefault(pidx.tobytes(), pidx)
        local.append((pidx, _scorer(part.metric, sub_codes, pidx.size, truth, score, cores, key)))
    n_pat = len(uniques)
    points = np.empty(len(parts))
    point_ok = np.empty(len(parts), dtype=bool)
    for i, (part_idx, scorer) in enumerate(local):
        v, d = scorer(np.ones((n_pat if part_idx is None else part_idx.size, 1)))
        points[i], point_ok[i] = v[0], d[0]
    values = np.empty((len(parts), int(n_resamples)))
    defined = np.empty((len(parts), int(n_resamples)), dtype=bool)
    block = int(np.clip(_BLOCK_CELLS // max(codes.size, n_pat), 1, n_resamples))
    start = 0
    for counts in _count_blocks(n_pat, int(n_resamples), seed, block):
        stop = start + counts.shape[1]
        sub_counts = {id(p): counts[p] for p in shared.values()}
        for i, (part_idx, scorer) in enumerate(local):
            with np.errstate(invalid="ignore", divide="ignore"):
                v, d = scorer(counts if part_idx is None else sub_counts[id(part_idx)])
            # a subgroup none of whose patients was drawn has no value in that resample
            values[i, start:stop], defined[i, start:stop] = v, d & np.isfinite(v)
        start = stop
    return points, point_ok, values, defined


def _part_inputs(part: Part, n: int) -> tuple[str, np.ndarray | None, list[np.ndarray]]:
    spec = _spec(part.metric)
    if spec.needs_y_true and part.y_true is None:
        raise ValueError(f"metric {part.metric!r} needs y_true")
    truth = None if part.y_true is None else finite_vector("y_true", part.y_true, n, "rows")
    return spec.name, truth, [finite_vector("y_score", part.y_score, n, "rows")]


def percentile_interval(stats: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The percentile interval of bootstrap replicates (raises when there are none)."""
    return _interval("metric", np.asarray(stats, dtype=np.float64), level)


def adjust(p_values: object, method: str = "holm") -> np.ndarray:
    """Multiple-comparison adjusted p-values (statsmodels `multipletests`)."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=np.float64).ravel()
    if p.size == 0:
        return p
    if not (np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()):
        raise ValueError("adjust: p-values must be finite and lie in [0, 1]")
    return multipletests(p, method=method)[1]
