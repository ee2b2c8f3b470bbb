"""Weighted scorers: each metric computed for a whole block of bootstrap resamples at once.

A scorer factory takes the rows (``codes`` = patient index of each row, ``y_true``,
``y_score``) and returns a ``Scorer``: it maps float64 per-patient counts
``(n_patients, B)`` (how often each patient is drawn in each of ``B`` resamples) to the
metric's ``B`` values and a mask of the resamples where it is defined. Counts of all ones
give the metric on the full data. ``clerc.evaluate.metric_specs`` names the factory of
each metric; ``clerc.evaluate.bootstrap`` draws the counts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import sparse

# A scorer maps float64 counts (n_patients, B) to (values (B,), defined (B,) bool).
Scorer = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def patient_sums(codes: np.ndarray, n_patients: int, values: np.ndarray) -> np.ndarray:
    return np.bincount(codes, weights=values, minlength=n_patients)


def group_matrix(
    groups: np.ndarray, n_groups: int, codes: np.ndarray, n_patients: int
) -> sparse.csr_matrix:
    """Sparse (n_groups, n_patients): how many rows of each patient fall in each group."""
    ones = np.ones(codes.size)
    return sparse.csr_matrix((ones, (groups, codes)), shape=(n_groups, n_patients))


#: Per block of counts, the products AUROC and AUPRC share (see ``binary_core``).
BinaryCore = Callable[[np.ndarray], tuple[np.ndarray, ...]]


def binary_core(
    codes: np.ndarray,
    n_patients: int,
    y: np.ndarray,
    s: np.ndarray,
    last: list[Any] | None = None,
    name: str = "auroc",
) -> BinaryCore:
    """Per block of counts, the products AUROC and AUPRC both need: per positive tie group
    (ascending score) the positive weight P, the negative weight strictly below C and tied
    T, and per resample n_pos and n_neg. The last products are kept (in ``last``, one slot
    that cores may share), so AUROC then AUPRC of the same rows on the same block compute
    them once."""
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"{name}: y_true must contain only 0 and 1")
    is_pos = y == 1
    pos_values, pos_groups = np.unique(s[is_pos], return_inverse=True)
    k = pos_values.size
    neg_s, neg_codes = s[~is_pos], codes[~is_pos]
    pos = group_matrix(pos_groups, k, codes[is_pos], n_patients)
    # a negative enters "below" from the first positive score strictly above it
    first_above = np.searchsorted(pos_values, neg_s, side="right")
    keep = first_above < k
    below = group_matrix(first_above[keep], k, neg_codes[keep], n_patients)
    at = np.searchsorted(pos_values, neg_s, side="left")
    tied = np.zeros(neg_s.size, dtype=bool)
    if k:
        tied = (at < k) & (pos_values[np.minimum(at, k - 1)] == neg_s)
    ties = group_matrix(at[tied], k, neg_codes[tied], n_patients) if tied.any() else None
    pos_rows = patient_sums(codes[is_pos], n_patients, np.ones(int(is_pos.sum())))
    neg_rows = patient_sums(neg_codes, n_patients, np.ones(neg_codes.size))
    slot: list[Any] = [None, None, None] if last is None else last

    def core(counts: np.ndarray) -> tuple[np.ndarray, ...]:
        if slot[0] is not core or slot[1] is not counts:
            t = None if ties is None else np.asarray(ties @ counts)
            slot[:] = [
                core,
                counts,
                (
                    np.asarray(pos @ counts),
                    np.cumsum(below @ counts, axis=0),
                    t,
                    pos_rows @ counts,
                    neg_rows @ counts,
                ),
            ]
        return slot[2]

    return core


def auroc_from_core(core: BinaryCore) -> Scorer:
    def score(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p, below, ties, n_pos, n_neg = core(counts)
        credit = below if ties is None else below + 0.5 * ties  # (k, B) negatives below
        wins = np.einsum("gb,gb->b", p, credit)
        defined = (n_pos > 0) & (n_neg > 0)
        return wins / np.where(defined, n_pos * n_neg, 1.0), defined

    return score


def auprc_from_core(core: BinaryCore) -> Scorer:
    def score(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p, below, _, n_pos, n_neg = core(counts)
        if p.shape[0] == 0:
            return np.zeros(counts.shape[1]), np.zeros(counts.shape[1], dtype=bool)
        # at each positive score v: positives scoring >= v and all rows scoring >= v
        tp = n_pos - np.cumsum(p, axis=0) + p
        seen = tp + (n_neg - below)
        precision = tp / np.where(seen > 0, seen, 1.0)
        defined = n_pos > 0
        return np.einsum("gb,gb->b", p, precision) / np.where(defined, n_pos, 1.0), defined

    return score


#: Cores shared by AUROC/AUPRC scorers of the same rows (key -> core, "slot" -> products).
Cores = dict[Any, Any]


def shared_core(
    codes: np.ndarray,
    n_patients: int,
    y: np.ndarray,
    s: np.ndarray,
    cores: Cores | None,
    key: Any,
    name: str,
) -> BinaryCore:
    """The binary core of these rows: from ``cores`` under ``key`` when made before, else
    made (and kept there when both are given)."""
    core = None if cores is None or key is None else cores.get(key)
    if core is None:
        core = binary_core(
            codes,
            n_patients,
            y,
            s,
            None if cores is None else cores.setdefault("slot", [None] * 3),
            name,
        )
        if cores is not None and key is not None:
            cores[key] = core
    return core


def auroc_scorer(
    codes: np.ndarray,
    n_patients: int,
    y: np.ndarray,
    s: np.ndarray,
    cores: Cores | None = None,
    key: Any = None,
) -> Scorer:
    return auroc_from_core(shared_core(codes, n_patients, y, s, cores, key, "auroc"))


def auprc_scorer(
    codes: np.ndarray,
    n_patients: int,
    y: np.ndarray,
    s: np.ndarray,
    cores: Cores | None = None,
    key: Any = None,
) -> Scorer:
    return auprc_from_core(shared_core(codes, n_patients, y, s, cores, key, "auprc"))


def ece_scorer(codes: np.ndarray, n_patients: int, y: np.ndarray, p: np.ndarray) -> Scorer:
    from clerc.evaluate.metrics import ECE_BINS, ece_bins

    if not np.isin(y, (0.0, 1.0)).all() or p.min() < 0.0 or p.max() > 1.0:
        raise ValueError("ece: y_true must be 0/1 and probabilities lie in [0, 1]")
    gaps = sparse.csr_matrix((y - p, (ece_bins(p), codes)), shape=(ECE_BINS, n_patients))
    rows = patient_sums(codes, n_patients, np.ones_like(y))

    def score(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        total = np.abs(np.asarray(gaps @ counts)).sum(axis=0)
        return total / (rows @ counts), np.ones(counts.shape[1], dtype=bool)

    return score


def brier_scorer(codes: np.ndarray, n_patients: int, y: np.ndarray, p: np.ndarray) -> Scorer:
    if not np.isin(y, (0.0, 1.0)).all() or p.min() < 0 or p.max() > 1:
        raise ValueError("brier: y_true must be 0/1 and probabilities lie in [0, 1]")
    return mean_scorer(codes, n_patients, (p - y) ** 2)


def mrr_scorer(codes: np.ndarray, n_patients: int, ranks: np.ndarray) -> Scorer:
    if ranks.min() < 0:
        raise ValueError("mrr: ranks must be >= 0")
    return mean_scorer(codes, n_patients, 1.0 / (ranks + 1.0))


def mean_scorer(codes: np.ndarray, n_patients: int, v: np.ndarray) -> Scorer:
    rows = patient_sums(codes, n_patients, np.ones_like(v))
    sums = patient_sums(codes, n_patients, v)

    def score(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (sums @ counts) / (rows @ counts), np.ones(counts.shape[1], dtype=bool)

    return score


def r2_scorer(codes: np.ndarray, n_patients: int, y: np.ndarray, p: np.ndarray) -> Scorer:
    yc = y - y.mean()
    rows = patient_sums(codes, n_patients, np.ones_like(y))
    s1 = patient_sums(codes, n_patients, yc)
    s2 = patient_sums(codes, n_patients, yc * yc)
    res = patient_sums(codes, n_patients, (y - p) ** 2)
    lo = np.full(n_patients, np.inf)
    hi = np.full(n_patients, -np.inf)
    np.minimum.at(lo, codes, y)
    np.maximum.at(hi, codes, y)

    def score(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sum_sq = s2 @ counts
        ss_tot = sum_sq - (s1 @ counts) ** 2 / (rows @ counts)
        # rounding leaves |ss_tot| ~1e-16 * sum_sq when y is constant: far above that, the
        # resample surely varies; the few columns below are checked exactly (min < max)
        defined = ss_tot > 1e-9 * sum_sq
        unsure = np.flatnonzero(~defined)
        if unsure.size:
            drawn = counts[:, unsure] > 0
            defined[unsure] = np.where(drawn, hi[:, None], -np.inf).max(axis=0) > np.where(
                drawn, lo[:, None], np.inf
            ).min(axis=0)
        return 1.0 - (res @ counts) / np.where(defined, ss_tot, 1.0), defined

    return score


def median_scorer(codes: np.ndarray, n_patients: int, v: np.ndarray) -> Scorer:
    values, groups = np.unique(v, return_inverse=True)
    members_t = group_matrix(groups, values.size, codes, n_patients).T.tocsr()

    def score(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # (B, n_values): each resample's rows at or below each value, contiguous per resample
        cum = np.cumsum(np.asarray(counts.T @ members_t), axis=1)
        total = cum[:, -1]
        low = [
            np.searchsorted(c, (t - 1) // 2, side="right") for c, t in zip(cum, total, strict=True)
        ]
        high = [np.searchsorted(c, t // 2, side="right") for c, t in zip(cum, total, strict=True)]
        return 0.5 * (values[low] + values[high]), np.ones(counts.shape[1], dtype=bool)

    return score
