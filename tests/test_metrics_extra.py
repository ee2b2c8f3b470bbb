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


@pytest.mark.parametrize("block_cells", [500_000, 900])  # one block; blocks of 10 resamples
def test_many_metrics_on_one_draw_equal_one_bootstrap_each(monkeypatch, block_cells) -> None:
    """AUROC and AUPRC of the same scores share their block products (and every metric the
    counts): each result still equals its own `patient_bootstrap`."""
    monkeypatch.setattr(bootstrap, "_BLOCK_CELLS", block_cells)
    rng = np.random.default_rng(5)
    pid = rng.integers(0, 25, 90).astype(str)
    y, s = _data(6, 90, True)
    specs = [("auroc", s), ("auprc", s), ("brier", s), ("ece", s), ("mean", s)]
    got = bootstrap.patient_bootstrap_many(specs, pid, y, n_resamples=150, seed=9)
    for (metric, score), res in zip(specs, got, strict=True):
        assert res == bootstrap.patient_bootstrap(metric, pid, y, score, n_resamples=150,
                                                  seed=9)
    bad = bootstrap.patient_bootstrap_many([("brier", s + 2.0), ("auroc", s)], pid, y,
                                           n_resamples=20, seed=1)
    assert isinstance(bad[0], str) and "probabilities" in bad[0]
    assert bad[1] == bootstrap.patient_bootstrap("auroc", pid, y, s, n_resamples=20, seed=1)


def test_cell_records_share_draws_but_keep_each_metrics_interval(tmp_path) -> None:
    """`bootstrap_records` gives the records `bootstrap_record` gives one by one, the
    metrics in SHARES_DRAWS bootstrapped with their partner's seed."""
    from types import SimpleNamespace

    from clerc.evaluate.tasks.common import (
        SHARES_DRAWS,
        base,
        bootstrap_record,
        bootstrap_records,
        cell_seed,
    )

    ctx = SimpleNamespace(n_resamples=120, seed=3)
    b = base("table4", "rbbb", "linear_probe", modality="ecg_waveform",
             label_modality="ecg_waveform")
    rng = np.random.default_rng(2)
    pid = rng.integers(0, 30, 80).astype(str).astype(object)
    y, s = _data(8, 80, False)
    names = ["auroc", "auprc", "brier", "ece"]
    got = bootstrap_records(ctx, b, [(m, m, s) for m in names], pid, y, "a note")
    assert got[0] == bootstrap_record(ctx, b, "auroc", pid, y, s, "a note")
    for m, rec in zip(names[1:], got[1:], strict=True):
        res = bootstrap.patient_bootstrap(m, pid, y, s, n_resamples=120,
                                          seed=cell_seed(ctx, b, SHARES_DRAWS[m]))
        assert (rec.value, rec.ci_low, rec.ci_high, rec.n_undefined, rec.note) == (
            res.value, res.ci_low, res.ci_high, res.n_undefined, "a note")


def test_joint_parts_sharing_products_equal_parts_that_do_not(monkeypatch) -> None:
    monkeypatch.setattr(bootstrap, "_BLOCK_CELLS", 900)  # several blocks
    rng = np.random.default_rng(3)
    pid = rng.integers(0, 30, 90).astype(str)
    y, s = _data(4, 90, True)
    rows = np.flatnonzero(rng.random(90) < 0.6)
    ys, ss = y[rows], s[rows]
    shared = [bootstrap.Part(m, ys, ss, rows) for m in ("auroc", "auprc")] + [
        bootstrap.Part(m, y, s) for m in ("auroc", "auprc")]
    apart = [bootstrap.Part(p.metric, p.y_true.copy(), p.y_score.copy(), p.rows)
             for p in shared]
    a = bootstrap.joint_replicates(pid, shared, n_resamples=60, seed=2)
    b = bootstrap.joint_replicates(pid, apart, n_resamples=60, seed=2)
    for x, z in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, z)
