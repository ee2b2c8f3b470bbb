"""k-nearest-neighbour probe on unit-norm embeddings, and the label-efficiency settings.

The k-NN probe predicts the mean label of the k training rows with the highest cosine
similarity (embeddings are unit rows, so the dot product); for binary labels that is the
fraction of positive neighbours, a probability. k is chosen on the validation split from
``ks`` (ties to the larger k). Neighbours are found ``chunk`` queries at a time: memory
O(chunk x n_train), and the sorted labels of the ``max(ks)`` nearest serve every k.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clerc.evaluate.metrics import auroc, finite_vector, r2

__all__ = ["KnnProbe", "LabelEfficiencyConfig", "fit_knn", "neighbour_labels"]

_QUERY_CHUNK = 256


@dataclass(frozen=True)
class LabelEfficiencyConfig:
    """Training fractions, seeded draws per fraction below 1, and the k-NN grid.

    ``knn`` is off by default: the k-NN probe compares every validation and test row with
    every training row of every draw (about 11 s of CPU per task, 2 minutes in all, at
    40,000 planted patients).
    """

    fractions: tuple[float, ...] = (0.01, 0.1, 1.0)
    draws: int = 5
    ks: tuple[int, ...] = (5, 10, 20, 50)
    knn: bool = False

    def __post_init__(self) -> None:
        fr = tuple(float(f) for f in self.fractions)
        if not fr or any(not 0.0 < f <= 1.0 for f in fr):
            raise ValueError(f"label-efficiency fractions must lie in (0, 1], got {fr}")
        object.__setattr__(self, "fractions", tuple(sorted(set(fr))))
        if int(self.draws) < 1:
            raise ValueError(f"label-efficiency draws must be >= 1, got {self.draws}")
        if not self.ks or any(int(k) < 1 for k in self.ks):
            raise ValueError(f"k-NN ks must be integers >= 1, got {self.ks}")


@dataclass(frozen=True)
class KnnProbe:
    """Training rows and labels plus the k chosen on validation."""

    kind: str
    k: int
    train: np.ndarray
    labels: np.ndarray
    val_score: float

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Mean label of each row's k nearest training rows."""
        near = neighbour_labels(self.train, self.labels, X, self.k)
        return near.mean(axis=1)


def neighbour_labels(
    train: np.ndarray, labels: np.ndarray, queries: np.ndarray, k: int
) -> np.ndarray:
    """(Q, k') labels of each query's k' = min(k, n_train) nearest training rows, nearest
    first (cosine on unit rows; equal similarities keep training order)."""
    t = np.ascontiguousarray(train, dtype=np.float32)
    q = np.ascontiguousarray(queries, dtype=np.float32)
    if t.ndim != 2 or q.ndim != 2 or t.shape[1] != q.shape[1] or len(t) == 0:
        raise ValueError(
            f"k-NN needs 2-D train and queries of one width, got {t.shape} and {q.shape}"
        )
    y = finite_vector("labels", labels, len(t), "train (rows)")
    kk = min(int(k), len(t))
    out = np.empty((len(q), kk))
    for start in range(0, len(q), _QUERY_CHUNK):
        sim = q[start : start + _QUERY_CHUNK] @ t.T
        if kk < len(t):
            top = np.argpartition(-sim, kk - 1, axis=1)[:, :kk]
        else:
            top = np.broadcast_to(np.arange(len(t)), sim.shape)
        order = np.argsort(-np.take_along_axis(sim, top, axis=1), axis=1, kind="stable")
        out[start : start + len(sim)] = y[np.take_along_axis(top, order, axis=1)]
    return out


def fit_knn(
    kind: str,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    ks: tuple[int, ...] = (5, 10, 20, 50),
) -> KnnProbe:
    """A k-NN probe with k chosen on validation (AUROC for binary, R^2 for regression)."""
    if kind not in ("binary", "regression"):
        raise ValueError(f"k-NN kind must be 'binary' or 'regression', got {kind!r}")
    yt = finite_vector("y_train", y_train, len(X_train), "X_train (rows)")
    yv = finite_vector("y_val", y_val, len(X_val), "X_val (rows)")
    if kind == "binary" and np.unique(yt).size < 2:
        raise ValueError("y_train of a binary k-NN probe must hold both classes")
    grid = sorted({min(int(k), len(yt)) for k in ks})
    cum = np.cumsum(neighbour_labels(X_train, yt, X_val, max(grid)), axis=1)
    scores = []
    for k in grid:
        pred = cum[:, k - 1] / k
        try:
            scores.append(auroc(yv, pred) if kind == "binary" else r2(yv, pred))
        except ValueError as exc:
            raise ValueError(f"k-NN validation score undefined: {exc}") from exc
    s = np.asarray(scores)
    best = int(np.flatnonzero(s == s.max())[-1])
    return KnnProbe(kind, grid[best], np.asarray(X_train, np.float32), yt, float(s[best]))
