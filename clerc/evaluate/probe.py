"""Linear probes with the regularisation chosen on a validation set.

Features are standardised with the training mean and standard deviation only, computed in
row chunks; the ridge path never copies X (float32 embeddings stay float32), the logistic
path makes one float64 copy.
- regression: ridge over a log grid of alphas, all solved from one X^T X and one
  eigendecomposition (`ridge_path`); alpha picked by validation R^2.
- binary: L2 logistic regression (lbfgs) over a log grid of C, warm-started from the
  previous C; picked by validation AUROC. `Probe.alpha` holds 1 / C for these.
Ties in the validation score go to the stronger regularisation.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from clerc.evaluate.metrics import auroc, finite_vector, r2

__all__ = ["Probe", "default_alphas", "fit_probe", "ridge_path"]

_ROW_CHUNK = 16_384  # rows per float64 block (64 MiB at d = 512)


@dataclass(frozen=True)
class Probe:
    """A fitted linear probe on standardised features, with its validation path."""

    kind: Literal["binary", "regression"]
    alpha: float
    coef: np.ndarray
    intercept: float
    val_score: float
    path_alphas: np.ndarray
    path_scores: np.ndarray
    path_converged: np.ndarray
    mean: np.ndarray
    scale: np.ndarray

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Probabilities of the positive class (binary) or predicted values (regression)."""
        x = _matrix("X", X)
        if x.shape[1] != self.coef.size:
            raise ValueError(f"probe expects {self.coef.size} features, got {x.shape[1]}")
        z = ((x - self.mean) / self.scale) @ self.coef + self.intercept
        if self.kind == "binary":
            return 0.5 * (1.0 + np.tanh(0.5 * z))
        return z


def _features(name: str, X: np.ndarray) -> np.ndarray:
    """X as an array (no copy, any real dtype) after checking shape and finiteness by chunks."""
    x = np.asarray(X)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (N, D), got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"{name} must hold real numbers, got dtype {x.dtype}")
    for start in range(0, len(x), _ROW_CHUNK):
        bad = ~np.isfinite(x[start : start + _ROW_CHUNK]).all(axis=1)
        if bad.any():
            raise ValueError(
                f"{name} contains NaN or infinite values (first in row "
                f"{start + int(np.argmax(bad))})"
            )
    return x


def _matrix(name: str, X: np.ndarray) -> np.ndarray:
    return np.asarray(_features(name, X), dtype=np.float64)


def _chunks(
    X: np.ndarray, shift: np.ndarray | None = None, scale: np.ndarray | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, float64 block) over X in row chunks: minus ``shift``, divided by
    ``scale``, where given. Each block is a fresh copy, modified in place: one
    chunk-sized temporary at a time."""
    for start in range(0, len(X), _ROW_CHUNK):
        chunk = np.array(X[start : start + _ROW_CHUNK], dtype=np.float64)
        if shift is not None:
            chunk -= shift
        if scale is not None:
            chunk /= scale
        yield start, chunk


def default_alphas(kind: Literal["binary", "regression"], n_train: int) -> np.ndarray:
    """The default grid, strongest regularisation first.

    regression: 33 ridge alphas n_train * 10^[2 .. -6]; binary: 13 alphas = 1/C with
    C = 10^[-4 .. 2].
    """
    if kind == "regression":
        return n_train * np.logspace(2, -6, 33)
    return 1.0 / np.logspace(-4, 2, 13)


def ridge_path(X: np.ndarray, y: np.ndarray, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ridge coefficients (n_alphas, D) and intercepts (n_alphas,) for every alpha.

    Minimises ||y - X w - b||^2 + alpha ||w||^2 (intercept unpenalised, as sklearn
    `Ridge(alpha)`): one pass over X in row chunks for the column means, one for the
    centred X^T X and X^T y, one `eigh`, then all alphas at once. X is never copied whole.
    """
    a, yv = _alphas(alphas), finite_vector("y", y, len(X), "X (rows)")
    x_mean = sum(c.sum(axis=0) for _, c in _chunks(X)) / len(X)
    coefs = _solve(*_moments(_chunks(X, x_mean), yv), a)
    return coefs, yv.mean() - coefs @ x_mean


def _standardised_ridge(
    X: np.ndarray, y: np.ndarray, alphas: np.ndarray, mean: np.ndarray, scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """`ridge_path` on (X - mean) / scale, where ``mean`` and ``scale`` are X's own column
    mean and standard deviation (`_standardise`): those features are already centred, so
    the mean pass is skipped and every intercept is mean(y)."""
    a, yv = _alphas(alphas), finite_vector("y", y, len(X), "X (rows)")
    coefs = _solve(*_moments(_chunks(X, mean, scale), yv), a)
    return coefs, np.full(a.size, yv.mean())


def _alphas(alphas: np.ndarray) -> np.ndarray:
    a = np.asarray(alphas, dtype=np.float64).ravel()
    if a.size == 0 or not (np.isfinite(a).all() and (a >= 0).all()):
        raise ValueError("alphas must be a non-empty array of finite values >= 0")
    return a


def _moments(
    chunks: Iterator[tuple[int, np.ndarray]], y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """X^T X and X^T (y - mean(y)) summed over centred row chunks."""
    gram: np.ndarray | None = None
    xty: np.ndarray | None = None
    yc = y - y.mean()
    for start, xc in chunks:
        g, v = xc.T @ xc, xc.T @ yc[start : start + len(xc)]
        gram, xty = (g, v) if gram is None or xty is None else (gram + g, xty + v)
    if gram is None or xty is None:
        raise ValueError("no rows to fit on")
    return gram, xty


def _solve(gram: np.ndarray, xty: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Coefficients (n_alphas, D) from one eigendecomposition of the Gram matrix."""
    eigval, eigvec = np.linalg.eigh(gram)
    denom = np.clip(eigval, 0.0, None)[None, :] + a[:, None]
    if (denom <= 0).any():
        raise ValueError("alpha = 0 with a singular X^T X has no unique ridge solution")
    return ((eigvec.T @ xty)[None, :] / denom) @ eigvec.T


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and population standard deviation (1 where it is 0), in row chunks."""
    mean = sum(c.sum(axis=0) for _, c in _chunks(x)) / len(x)
    var = sum(np.square(c - mean, out=c).sum(axis=0) for _, c in _chunks(x)) / len(x)
    scale = np.sqrt(var)
    return mean, np.where(scale > 0, scale, 1.0)


def _pick(scores: np.ndarray) -> int:
    """Index of the best score; ties go to the earliest (strongest regularisation)."""
    return int(np.flatnonzero(scores == scores.max())[0])


def _products(x: np.ndarray, coefs: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """((x - mean) / scale) @ coefs.T, (n, n_coefs), by row chunks: x is never copied."""
    out = np.empty((len(x), len(coefs)))
    for start, chunk in _chunks(x, mean, scale):
        out[start : start + len(chunk)] = chunk @ coefs.T
    return out


def _fit_binary(
    xs: np.ndarray, y: np.ndarray, alphas: np.ndarray, class_weight: str | None, max_iter: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logistic coefficients, intercepts and convergence flags along the C path.

    lbfgs makes thousands of small (n x D) products; BLAS threads only add overhead to
    those, and with torch's OpenMP pool in the same process they fight over the cores:
    on 2 cores the demo's probes (`clerc benchmark --tasks linear_probe cross_modal`)
    took 179 s with 2 BLAS threads against 16 s with one. So BLAS runs single-threaded
    here."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    model = LogisticRegression(warm_start=True, max_iter=max_iter, class_weight=class_weight)
    coefs, intercepts, converged = [], [], []
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        for alpha in alphas:
            model.set_params(C=1.0 / alpha)
            model.fit(xs, y)
            coefs.append(model.coef_[0].copy())
            intercepts.append(float(model.intercept_[0]))
            converged.append(bool(model.n_iter_.max() < max_iter))
    return np.array(coefs), np.array(intercepts), np.array(converged)


def fit_probe(
    kind: Literal["binary", "regression"],
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    *,
    alphas: np.ndarray | None = None,
    class_weight: Literal["balanced"] | None = None,
    max_iter: int = 1000,
) -> Probe:
    """Fit a probe on train, choose the regularisation on validation, return it.

    alphas: ridge alpha (regression) or 1 / C (binary); default `default_alphas`.
    class_weight: "balanced" reweights classes for the logistic probe.
    """
    if kind not in ("binary", "regression"):
        raise ValueError(f"probe kind must be 'binary' or 'regression', got {kind!r}")
    if class_weight not in (None, "balanced"):
        raise ValueError(f"class_weight must be None or 'balanced', got {class_weight!r}")
    if class_weight is not None and kind == "regression":
        raise ValueError("class_weight applies to binary probes only")
    xt, xv = _features("X_train", X_train), _features("X_val", X_val)
    if xt.shape[1] != xv.shape[1]:
        raise ValueError(f"X_train has {xt.shape[1]} features but X_val has {xv.shape[1]}")
    yt = finite_vector("y_train", y_train, len(xt), "X_train (rows)")
    yv = finite_vector("y_val", y_val, len(xv), "X_val (rows)")
    grid = default_alphas(kind, len(xt)) if alphas is None else np.asarray(alphas, float).ravel()
    if grid.size == 0 or not (np.isfinite(grid).all() and (grid > 0).all()):
        raise ValueError("alphas must be a non-empty array of finite values > 0")
    grid = np.sort(grid)[::-1]
    mean, scale = _standardise(xt)
    if kind == "binary":
        for name, t in (("y_train", yt), ("y_val", yv)):
            if not np.isin(t, (0.0, 1.0)).all() or np.unique(t).size < 2:
                raise ValueError(f"{name} of a binary probe must hold both classes 0 and 1")
        xs = np.array(xt, dtype=np.float64)  # the one float64 copy lbfgs needs, in place
        xs -= mean
        xs /= scale
        coefs, intercepts, conv = _fit_binary(xs, yt, grid, class_weight, max_iter)
        del xs
    else:
        coefs, intercepts = _standardised_ridge(xt, yt, grid, mean, scale)
        conv = np.ones(grid.size, dtype=bool)
    val = _products(xv, coefs, mean, scale)  # (n_val, n_alphas) linear scores
    scores = np.array(
        [
            auroc(yv, val[:, i]) if kind == "binary" else r2(yv, val[:, i] + intercepts[i])
            for i in range(grid.size)
        ]
    )
    best = _pick(scores)
    return Probe(
        kind,
        float(grid[best]),
        coefs[best],
        float(intercepts[best]),
        float(scores[best]),
        grid,
        scores,
        conv,
        mean,
        scale,
    )
