"""Patient bootstrap: identical to a materialising sklearn loop, counts undefined, covers."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn.metrics import mean_absolute_error, r2_score, roc_auc_score

from clerc.evaluate.bootstrap import (
    BootstrapResult,
    adjust,
    bootstrap_replicates,
    iter_resample_counts,
    paired_bootstrap,
    patient_bootstrap,
    resample_counts,
)
from clerc.evaluate.metrics import auroc


def _cohort(seed: int, n_patients: int = 40) -> dict:
    """Patients with 1-3 rows each, tied scores, string ids in shuffled order."""
    rng = np.random.default_rng(seed)
    per = rng.integers(1, 4, size=n_patients)
    pid = np.repeat([f"p{i:03d}" for i in range(n_patients)], per)
    perm = rng.permutation(pid.size)
    pid = pid[perm]
    y_bin = rng.integers(0, 2, size=pid.size)
    y_reg = rng.normal(50, 10, size=pid.size)
    return {
        "pid": pid,
        "y_bin": y_bin,
        "score_bin": np.round(rng.normal(size=pid.size) + y_bin, 1),
        "score_cont": rng.normal(size=pid.size) + y_bin,
        "y_reg": y_reg,
        "pred_reg": y_reg + rng.normal(0, 6, size=pid.size),
        "pct": np.round(rng.uniform(0, 100, size=pid.size), 0),
    }


def _reference(metric: str, y: np.ndarray | None, s: np.ndarray) -> float | None:
    """sklearn / numpy on one materialised resample; None when undefined."""
    if metric == "auroc":
        return None if np.unique(y).size < 2 else roc_auc_score(y, s)
    if metric == "r2":
        return None if np.unique(y).size < 2 else r2_score(y, s)
    if metric == "mae":
        return mean_absolute_error(y, s)
    if metric == "median":
        return float(np.median(s))
    if metric == "mean":
        return float(np.mean(s))
    k = int(metric.split("@")[1])
    return float(np.mean(s < k))


def _loop(metric: str, pid: np.ndarray, y: np.ndarray | None, s: np.ndarray, n_resamples: int,
          seed: int) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(pid)
    counts = resample_counts(len(uniques), n_resamples, seed)
    values, defined = [], []
    for r in range(n_resamples):
        rows = np.repeat(np.arange(pid.size), counts[r, codes])
        v = _reference(metric, None if y is None else y[rows], s[rows])
        defined.append(v is not None)
        if v is not None:
            values.append(v)
    return np.array(values), np.array(defined)


CASES = [("auroc", "y_bin", "score_bin"), ("auroc", "y_bin", "score_cont"),
         ("median", None, "score_cont"), ("r2", "y_reg", "pred_reg"),
         ("mae", "y_reg", "pred_reg"), ("median", None, "pct"), ("mean", None, "pct"),
         ("recall@5", None, "pct"), ("recall@50", None, "pct")]


@pytest.mark.parametrize(("metric", "truth", "score"), CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_replicates_equal_a_materialising_loop(metric: str, truth: str | None, score: str,
                                               seed: int) -> None:
    c = _cohort(seed)
    y = None if truth is None else c[truth]
    values, defined = bootstrap_replicates(metric, c["pid"], y, c[score], n_resamples=60,
                                           seed=seed)
    ref_values, ref_defined = _loop(metric, c["pid"], y, c[score], 60, seed)
    np.testing.assert_array_equal(defined, ref_defined)
    np.testing.assert_allclose(values, ref_values, rtol=0, atol=1e-9)
    res = patient_bootstrap(metric, c["pid"], y, c[score], n_resamples=60, seed=seed)
    low, high = np.percentile(ref_values, [2.5, 97.5])
    assert res.ci_low == pytest.approx(low, abs=1e-9)
    assert res.ci_high == pytest.approx(high, abs=1e-9)
    assert res.n == np.unique(c["pid"]).size and res.n_rows == c["pid"].size


def test_point_value_is_the_full_data_metric() -> None:
    c = _cohort(3)
    res = patient_bootstrap("auroc", c["pid"], c["y_bin"], c["score_bin"], n_resamples=20)
    assert res.value == pytest.approx(auroc(c["y_bin"], c["score_bin"]), abs=1e-12)
    assert res.ci_low <= res.ci_high
    assert res.p_value is None and res.n_resamples == 20 and res.level == 0.95


def test_counts_do_not_depend_on_blocking_and_draw_every_patient_n_times() -> None:
    whole = resample_counts(37, 50, seed=5)
    for block in (1, 7, 50):
        blocks = np.concatenate(list(iter_resample_counts(37, 50, 5, block)))
        np.testing.assert_array_equal(blocks, whole)
    assert (whole.sum(axis=1) == 37).all()
    assert not np.array_equal(whole, resample_counts(37, 50, seed=6))


def test_undefined_resamples_are_counted_and_excluded() -> None:
    # 4 patients, one positive: P(no positive drawn) = (3/4)^4 = 0.32 per resample
    pid = np.array(["a", "b", "c", "d"])
    y = np.array([1, 0, 0, 0])
    s = np.array([0.9, 0.1, 0.5, 0.95])
    res = patient_bootstrap("auroc", pid, y, s, n_resamples=300, seed=1)
    _, ref_defined = _loop("auroc", pid, y, s, 300, 1)
    assert res.n_undefined == int((~ref_defined).sum())
    assert 60 < res.n_undefined < 140
    values, defined = bootstrap_replicates("auroc", pid, y, s, n_resamples=300, seed=1)
    assert values.size == 300 - res.n_undefined == defined.sum()
    res_r2 = patient_bootstrap("r2", pid, np.array([1.0, 1.0, 1.0, 2.0]), s, n_resamples=200)
    assert res_r2.n_undefined > 0


def test_errors_name_the_problem() -> None:
    c = _cohort(0)
    with pytest.raises(ValueError, match="unknown bootstrap metric 'recall@0'"):
        patient_bootstrap("recall@0", c["pid"], None, c["pct"])
    with pytest.raises(ValueError, match="needs y_true"):
        patient_bootstrap("auroc", c["pid"], None, c["score_bin"])
    with pytest.raises(ValueError, match="undefined on the full data"):
        patient_bootstrap("auroc", c["pid"], np.zeros(c["pid"].size), c["score_bin"])
    with pytest.raises(ValueError, match="patient_ids has"):
        patient_bootstrap("mean", c["pid"], None, c["pct"][:-1])
    with pytest.raises(ValueError, match="level"):
        patient_bootstrap("mean", c["pid"], None, c["pct"], level=1.0)


def test_paired_difference_uses_identical_resamples() -> None:
    c = _cohort(4, n_patients=80)
    a = c["score_bin"]
    b = a + np.random.default_rng(0).normal(0, 2.0, size=a.size)
    res = paired_bootstrap("auroc", c["pid"], c["y_bin"], a, b, n_resamples=200, seed=2)
    va, da = bootstrap_replicates("auroc", c["pid"], c["y_bin"], a, n_resamples=200, seed=2)
    vb, db = bootstrap_replicates("auroc", c["pid"], c["y_bin"], b, n_resamples=200, seed=2)
    diff = va - vb
    assert isinstance(res, BootstrapResult)
    assert res.value == pytest.approx(auroc(c["y_bin"], a) - auroc(c["y_bin"], b))
    assert res.ci_low == pytest.approx(np.percentile(diff, 2.5), abs=1e-12)
    tail = min((diff <= 0).sum(), (diff >= 0).sum()) + 1
    assert res.p_value == pytest.approx(min(1.0, 2 * tail / 201))
    assert res.p_value < 0.05
    same = paired_bootstrap("mean", c["pid"], None, c["pct"], c["pct"], n_resamples=50)
    assert same.value == 0.0 and same.p_value == 1.0


def test_adjust_holm_matches_hand_computation() -> None:
    p = np.array([0.01, 0.04, 0.03])
    np.testing.assert_allclose(adjust(p), [0.03, 0.06, 0.06])
    with pytest.raises(ValueError, match="p-values"):
        adjust([0.5, 1.5])


def _coverage(metric: str, n_sims: int, truth: float, draw) -> float:
    hits = 0
    for sim in range(n_sims):
        pid, y, s = draw(np.random.default_rng(1000 + sim))
        res = patient_bootstrap(metric, pid, y, s, n_resamples=400, seed=sim)
        hits += res.ci_low <= truth <= res.ci_high
    return hits / n_sims


def test_ci_covers_a_known_auroc_with_clustered_rows() -> None:
    """Two rows per patient sharing a patient effect; true row AUROC in closed form."""
    d, s_u, s_e, n = 1.0, 0.7, 0.7, 150
    truth = norm.cdf(d / np.sqrt(2 * (s_u**2 + s_e**2)))

    def draw(rng):
        label = rng.integers(0, 2, size=n)
        score = (d * label + rng.normal(0, s_u, size=n))[:, None] + rng.normal(0, s_e, (n, 2))
        return np.repeat(np.arange(n), 2), np.repeat(label, 2), score.ravel()

    cover = _coverage("auroc", 400, truth, draw)
    print(f"AUROC coverage {cover:.4f} (truth {truth:.4f})")
    assert 0.91 <= cover <= 0.985


def test_ci_covers_a_known_r2() -> None:
    n, slope, noise = 150, 0.8, 0.5
    truth = 1.0 - ((1 - slope) ** 2 + noise**2)

    def draw(rng):
        y = rng.normal(size=n)
        return np.arange(n), y, slope * y + rng.normal(0, noise, size=n)

    cover = _coverage("r2", 400, truth, draw)
    print(f"R2 coverage {cover:.4f} (truth {truth:.4f})")
    assert 0.91 <= cover <= 0.985
