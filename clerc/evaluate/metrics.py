"""Pure numpy metrics: retrieval ranks, AUROC, AUPRC, R^2, MAE, calibration, zero-shot
regression.

Retrieval ranks are computed by a chunked float32 matmul: peak memory is O(chunk x G),
never a Q x G score matrix, never an argsort. Ties are counted against the model
(pessimistic): a gallery item scoring exactly as high as the target ranks before it;
`mid_ranks` counts them half instead (the oracle's ties, where equal reports are equal).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy.stats import rankdata

__all__ = [
    "auprc",
    "auroc",
    "brier",
    "ece",
    "ece_bins",
    "l2_normalise",
    "mae",
    "mean_reciprocal_rank",
    "mid_ranks",
    "percentile_from_ranks",
    "percentile_ranks",
    "r2",
    "recall_at_k",
    "retrieval_ranks",
    "softmax_expectation",
]


def l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Return float32 rows of `x` scaled to unit L2 norm (zero rows raise)."""
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"l2_normalise expects a 2-D array (N, D), got shape {arr.shape}")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    bad = np.flatnonzero(~(norms[:, 0] > eps))
    if bad.size:
        raise ValueError(
            f"l2_normalise: {bad.size} rows have zero or non-finite norm (first: row {bad[0]})"
        )
    return arr / norms


def finite_vector(name: str, x: object, n: int, other: str) -> np.ndarray:
    """``x`` as a flat float64 array of ``n`` finite values; errors name it and ``other``
    (what fixes ``n``, e.g. "patient_ids has 40")."""
    arr = np.asarray(x, dtype=np.float64).ravel()
    if arr.size != n:
        raise ValueError(f"{name} has {arr.size} values but {other} has {n}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _check_embeddings(name: str, x: np.ndarray) -> np.ndarray:
    arr = np.ascontiguousarray(x, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, D) float32, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _score_blocks(
    queries: np.ndarray, gallery: np.ndarray, target: np.ndarray, chunk: int | None
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Checked inputs scored ``chunk`` queries at a time: (start, stop, scores, own) with
    ``scores`` the (rows, G) float32 dot products (a reused buffer) and ``own`` each row's
    score of its target."""
    q = _check_embeddings("queries", queries)
    g = _check_embeddings("gallery", gallery)
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"queries have dim {q.shape[1]} but gallery has dim {g.shape[1]}")
    tgt = np.asarray(target)
    if tgt.shape != (q.shape[0],) or not np.issubdtype(tgt.dtype, np.integer):
        raise ValueError(
            f"target must be an integer array of shape ({q.shape[0]},), got {tgt.dtype} {tgt.shape}"
        )
    if tgt.size and (tgt.min() < 0 or tgt.max() >= g.shape[0]):
        raise ValueError(f"target indices must lie in [0, {g.shape[0] - 1}]")
    if chunk is None:
        chunk = default_chunk(g.shape[0])
    if int(chunk) < 1:
        raise ValueError(f"chunk must be a positive integer, got {chunk}")
    chunk = int(chunk)
    width = min(chunk, max(q.shape[0], 1))
    scores_buf = np.empty((width, g.shape[0]), dtype=np.float32)
    gt = g.T
    for start in range(0, q.shape[0], chunk):
        stop = min(start + chunk, q.shape[0])
        scores = scores_buf[: stop - start]
        np.matmul(q[start:stop], gt, out=scores)
        yield start, stop, scores, scores[np.arange(stop - start), tgt[start:stop]]


def retrieval_ranks(
    queries: np.ndarray, gallery: np.ndarray, target: np.ndarray, chunk: int | None = None
) -> np.ndarray:
    """Rank of each query's target in the gallery by cosine score (0 = retrieved first).

    `queries` (Q, D) and `gallery` (G, D) must already be L2-normalised (see
    `l2_normalise`); scores are their float32 dot products. The rank is the number of
    OTHER gallery items whose score is >= the target's score, so ties count against the
    model. Work is done `chunk` queries at a time: peak extra memory is chunk x G float32
    (plus a bool mask). The default sizes the chunk from the gallery (~32 MiB of scores,
    64..2048 rows), which costs no time against the bare matmul (benchmarks/RESULTS.md).
    Returns int64 (Q,).
    """
    ranks = np.empty(len(queries), dtype=np.int64)
    mask_buf: np.ndarray | None = None
    for start, stop, scores, own in _score_blocks(queries, gallery, target, chunk):
        if mask_buf is None:
            mask_buf = np.empty(scores.shape, dtype=bool)
        mask = mask_buf[: stop - start]
        np.greater_equal(scores, own[:, None], out=mask)
        ranks[start:stop] = np.count_nonzero(mask, axis=1) - 1
    return ranks


def mid_ranks(
    queries: np.ndarray, gallery: np.ndarray, target: np.ndarray, chunk: int | None = None
) -> np.ndarray:
    """`retrieval_ranks` with ties counted half: the other items scoring strictly higher
    plus half of those scoring exactly the same (the expected rank under random
    tie-breaking). Same inputs and memory; returns float64 (Q,)."""
    ranks = np.empty(len(queries), dtype=np.float64)
    for start, stop, scores, own in _score_blocks(queries, gallery, target, chunk):
        above = np.count_nonzero(scores > own[:, None], axis=1)
        tied = np.count_nonzero(scores == own[:, None], axis=1) - 1
        ranks[start:stop] = above + 0.5 * tied
    return ranks


def percentile_from_ranks(ranks: np.ndarray, gallery_size: int) -> np.ndarray:
    """Percentile rank 100 * rank / (G - 1): 0 = retrieved first, 100 = last."""
    size = int(gallery_size)
    if size < 2:
        raise ValueError(f"percentile ranks need a gallery of at least 2 items, got {size}")
    r = np.asarray(ranks)
    if r.size and (r.min() < 0 or r.max() > size - 1):
        raise ValueError(f"ranks must lie in [0, {size - 1}] for a gallery of {size}")
    return 100.0 * r.astype(np.float64) / (size - 1)


def default_chunk(gallery_size: int) -> int:
    """Query rows per block: ~2**23 scores (32 MiB float32), between 64 and 2048 rows."""
    return max(64, min(2048, 2**23 // max(gallery_size, 1)))


def percentile_ranks(
    queries: np.ndarray, gallery: np.ndarray, chunk: int | None = None
) -> np.ndarray:
    """Percentile rank of gallery[i] for query i (paired rows; Q must equal G)."""
    if len(queries) != len(gallery):
        raise ValueError(
            f"percentile_ranks pairs query i with gallery i: got {len(queries)} queries "
            f"and {len(gallery)} gallery items (use retrieval_ranks with a target)"
        )
    ranks = retrieval_ranks(queries, gallery, np.arange(len(queries)), chunk=chunk)
    return percentile_from_ranks(ranks, len(gallery))


def recall_at_k(ranks: np.ndarray, k: int) -> float:
    """Fraction of queries whose target is among the first k (rank < k)."""
    r = np.asarray(ranks)
    if int(k) < 1:
        raise ValueError(f"recall@k needs k >= 1, got {k}")
    if r.size == 0:
        raise ValueError("recall@k of zero queries is undefined")
    return float(np.mean(r < int(k)))


def _paired(name: str, y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"{name}: y_true has {t.size} values but the prediction has {p.size}")
    if t.size == 0:
        raise ValueError(f"{name} of zero samples is undefined")
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise ValueError(f"{name}: inputs contain NaN or infinite values")
    return t, p


def auroc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum formula (ties get average ranks)."""
    t, s = _paired("auroc", y_true, y_score)
    if not np.isin(t, (0.0, 1.0)).all():
        raise ValueError("auroc: y_true must contain only 0 and 1")
    n_pos = int(t.sum())
    n_neg = t.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            f"auroc is undefined with one class only ({n_pos} positive, {n_neg} negative)"
        )
    ranks = rankdata(s, method="average")
    return float((ranks[t == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _binary(name: str, y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t, s = _paired(name, y_true, y_score)
    if not np.isin(t, (0.0, 1.0)).all():
        raise ValueError(f"{name}: y_true must contain only 0 and 1")
    return t, s


def auprc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Area under the precision-recall curve as average precision: sum over distinct score
    thresholds (highest first) of the recall gained times the precision there. Tied scores
    form one threshold (as sklearn's ``average_precision_score``); no positives raises."""
    t, s = _binary("auprc", y_true, y_score)
    n_pos = float(t.sum())
    if n_pos == 0:
        raise ValueError("auprc is undefined without positives")
    order = np.argsort(-s, kind="mergesort")
    s, t = s[order], t[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # last row of each tie group
    tp = np.cumsum(t)[last]
    precision = tp / (last + 1.0)
    return float(np.sum(np.diff(np.r_[0.0, tp]) * precision) / n_pos)


def _probabilities(
    name: str, y_true: np.ndarray, y_prob: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    t, p = _binary(name, y_true, y_prob)
    if p.min() < 0.0 or p.max() > 1.0:
        raise ValueError(
            f"{name}: predicted probabilities must lie in [0, 1], got "
            f"[{p.min():.4g}, {p.max():.4g}]"
        )
    return t, p


def brier(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """Brier score: mean squared difference of the predicted probability and the outcome."""
    t, p = _probabilities("brier", y_true, y_prob)
    return float(np.mean((p - t) ** 2))


#: Equal-width probability bins of the expected calibration error.
ECE_BINS = 10


def ece_bins(y_prob: np.ndarray, n_bins: int = ECE_BINS) -> np.ndarray:
    """Bin of each probability: ``floor(p * n_bins)``, with p = 1 in the last bin."""
    p = np.asarray(y_prob, dtype=np.float64)
    return np.minimum((p * n_bins).astype(np.int64), n_bins - 1)


def ece(y_true: np.ndarray, y_prob: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error over ``n_bins`` equal-width bins of [0, 1]: the
    row-weighted mean over bins of |observed rate - mean predicted probability|."""
    t, p = _probabilities("ece", y_true, y_prob)
    if int(n_bins) < 1:
        raise ValueError(f"ece needs n_bins >= 1, got {n_bins}")
    gap = np.bincount(ece_bins(p, int(n_bins)), weights=t - p, minlength=int(n_bins))
    return float(np.abs(gap).sum() / t.size)


def mean_reciprocal_rank(ranks: np.ndarray) -> float:
    """Mean of 1 / (rank + 1) over queries (rank 0 = retrieved first, so 1 is perfect)."""
    r = np.asarray(ranks, dtype=np.float64)
    if r.size == 0:
        raise ValueError("mean reciprocal rank of zero queries is undefined")
    if not np.isfinite(r).all() or r.min() < 0:
        raise ValueError("mean reciprocal rank needs finite ranks >= 0")
    return float(np.mean(1.0 / (r + 1.0)))


def r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination 1 - SS_res / SS_tot (constant y_true raises)."""
    t, p = _paired("r2", y_true, y_pred)
    if t.size < 2 or np.all(t == t[0]):
        raise ValueError("r2 is undefined when y_true has zero variance")
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    return 1.0 - float(np.sum((t - p) ** 2)) / ss_tot


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute error."""
    t, p = _paired("mae", y_true, y_pred)
    return float(np.mean(np.abs(t - p)))


def softmax_expectation(cosines: np.ndarray, values: np.ndarray, scale: float) -> np.ndarray:
    """Zero-shot regression: softmax(scale * cosines) over P prompts, expectation of values.

    `cosines` (N, P), `values` (P,) the quantity each prompt names, `scale` the learned
    logit scale (the multiplier, already exponentiated). Returns float64 (N,).
    """
    c = np.asarray(cosines, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if c.ndim != 2 or v.shape != (c.shape[1],):
        raise ValueError(f"cosines must be (N, P) and values (P,), got {c.shape} and {v.shape}")
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive finite number, got {scale}")
    if not (np.isfinite(c).all() and np.isfinite(v).all()):
        raise ValueError("softmax_expectation: inputs contain NaN or infinite values")
    z = float(scale) * c
    z -= z.max(axis=1, keepdims=True)
    w = np.exp(z)
    return (w @ v) / w.sum(axis=1)
