"""AUPRC, Brier, ECE and MRR against slow references, point and vectorised bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss

from clerc.evaluate import bootstrap, metrics


def _data(seed: int, n: int, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(float)
    s = rng.random(n)
    if ties:
        s = np.round(s * 5) / 5  # many tied scores
    return y, s


def _ece_loop(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """ECE by a plain loop over bins and rows."""
    total = 0.0
    for b in range(n_bins):
        members = [i for i in range(len(p)) if min(int(p[i] * n_bins), n_bins - 1) == b]
        if members:
            rate = sum(y[i] for i in members) / len(members)
            conf = sum(p[i] for i in members) / len(members)
            total += len(members) / len(p) * abs(rate - conf)
    return total


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ties", [False, True])
def test_auprc_matches_sklearn(seed: int, ties: bool) -> None:
    y, s = _data(seed, 57, ties)
    assert metrics.auprc(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert metrics.auprc(y, -s) == pytest.approx(average_precision_score(y, -s), abs=1e-12)


def test_auprc_without_positives_raises() -> None:
    with pytest.raises(ValueError, match="without positives"):
        metrics.auprc(np.zeros(5), np.arange(5.0))


@pytest.mark.parametrize("seed", range(4))
def test_brier_and_ece_match_references(seed: int) -> None:
    y, p = _data(seed, 83, ties=seed % 2 == 1)
    p[0], p[1] = 0.0, 1.0  # both ends of the bin range
    assert metrics.brier(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert metrics.ece(y, p) == pytest.approx(_ece_loop(y, p), abs=1e-12)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metrics.ece(y, p + 0.5)


def test_mrr() -> None:
    assert metrics.mean_reciprocal_rank(np.array([0, 1, 3])) == pytest.approx((1 + .5 + .25) / 3)
    with pytest.raises(ValueError):
        metrics.mean_reciprocal_rank(np.array([]))


def _materialised(metric, pid, y, s, counts_row) -> float | None:
    """The metric on a resample built row by row (each patient's rows repeated)."""
    uniq = list(dict.fromkeys(pid))
    rows = [i for j, p in enumerate(uniq) for _ in range(counts_row[j])
            for i in np.flatnonzero(pid == p)]
    yy, ss = y[rows], s[rows]
    fn = {"auprc": metrics.auprc, "brier": metrics.brier, "ece": metrics.ece}.get(metric)
    try:
        return fn(yy, ss) if fn else metrics.mean_reciprocal_rank(ss)
    except ValueError:
        return None


@pytest.mark.parametrize("metric", ["auprc", "brier", "ece", "mrr"])
def test_bootstrap_replicates_equal_materialised_resamples(metric: str) -> None:
    rng = np.random.default_rng(3)
    n = 40
    pid = np.array([f"p{i % 15}" for i in range(n)], dtype=object)
    y = (rng.random(n) < 0.25).astype(float)
    s = np.round(rng.random(n), 1) if metric != "mrr" else rng.integers(0, 20, n).astype(float)
    stats, defined = bootstrap.bootstrap_replicates(metric, pid, y, s, n_resamples=30, seed=5)
    counts = bootstrap.resample_counts(15, 30, 5)
    expected = [_materialised(metric, pid, y, s, c) for c in counts]
    assert defined.tolist() == [e is not None for e in expected]
    np.testing.assert_allclose(stats, [e for e in expected if e is not None], atol=1e-12)
