"""Probes: ridge path equals sklearn Ridge per alpha; validation picks a sensible alpha."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import r2_score, roc_auc_score

import clerc.evaluate.probe as probe_module
from clerc.evaluate.probe import Probe, default_alphas, fit_probe, ridge_path


def _planted_regression(seed: int, n: int, d: int, informative: int = 5) -> tuple:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, size=d) + rng.normal(size=d)
    w = np.zeros(d)
    w[:informative] = rng.normal(size=informative)
    y = x @ w + 40.0 + rng.normal(0, 2.0, size=n)
    return x, y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("chunk", [7, 65_536])
def test_ridge_path_equals_sklearn_ridge(dtype, chunk: int, monkeypatch) -> None:
    monkeypatch.setattr(probe_module, "_ROW_CHUNK", chunk)
    x, y = _planted_regression(0, 120, 10)
    x = x.astype(dtype)
    alphas = np.logspace(-3, 4, 8)
    coefs, intercepts = ridge_path(x, y, alphas)
    assert coefs.shape == (8, 10) and intercepts.shape == (8,)
    for i, alpha in enumerate(alphas):
        ref = Ridge(alpha=alpha).fit(x.astype(np.float64), y)
        np.testing.assert_allclose(coefs[i], ref.coef_, rtol=1e-7, atol=1e-9)
        assert intercepts[i] == pytest.approx(ref.intercept_, rel=1e-9, abs=1e-9)


def test_ridge_path_rejects_bad_alphas() -> None:
    x, y = _planted_regression(0, 20, 6)
    with pytest.raises(ValueError, match="alphas"):
        ridge_path(x, y, np.array([]))
    with pytest.raises(ValueError, match="alphas"):
        ridge_path(x, y, np.array([-1.0]))


def test_regression_probe_picks_the_validation_best_alpha() -> None:
    x_all, y_all = _planted_regression(1, 560, 60)
    x, y, xv, yv = x_all[:160], y_all[:160], x_all[160:], y_all[160:]
    probe = fit_probe("regression", x, y, xv, yv)
    assert isinstance(probe, Probe)
    assert probe.path_alphas.size >= 30
    mean, scale = x.mean(0), x.std(0)
    brute = [r2_score(yv, Ridge(alpha=a).fit((x - mean) / scale, y).predict((xv - mean) / scale))
             for a in probe.path_alphas]
    np.testing.assert_allclose(probe.path_scores, brute, rtol=1e-7, atol=1e-9)
    best = int(np.argmax(brute))
    assert probe.alpha == probe.path_alphas[best]
    assert 0 < best < probe.path_alphas.size - 1, "planted data should need moderate alpha"
    assert probe.val_score == pytest.approx(r2_score(yv, probe.predict(xv)), abs=1e-9)
    assert probe.val_score > 0.5
    np.testing.assert_allclose(probe.mean, x.mean(0))


def _planted_binary(seed: int, n: int, d: int, prevalence: float = 0.5) -> tuple:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    w = np.zeros(d)
    w[:3] = [1.5, -1.0, 0.8]
    logit = x @ w + np.log(prevalence / (1 - prevalence))
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, y


def test_binary_probe_matches_sklearn_and_picks_by_auroc() -> None:
    x_all, y_all = _planted_binary(3, 700, 30)
    x, y, xv, yv = x_all[:300], y_all[:300], x_all[300:], y_all[300:]
    probe = fit_probe("binary", x, y, xv, yv)
    assert probe.kind == "binary" and probe.path_converged.all()
    mean, scale = x.mean(0), x.std(0)
    best = int(np.argmax(probe.path_scores))
    assert probe.alpha == probe.path_alphas[best]
    ref = LogisticRegression(C=1.0 / probe.alpha, max_iter=1000).fit((x - mean) / scale, y)
    proba = probe.predict(xv)
    np.testing.assert_allclose(proba, ref.predict_proba((xv - mean) / scale)[:, 1], atol=1e-3)
    assert probe.val_score == pytest.approx(roc_auc_score(yv, proba), abs=1e-9)
    assert probe.val_score > 0.75
    assert probe.path_scores[0] <= probe.val_score


def test_balanced_class_weight_shifts_the_intercept_towards_the_rare_class() -> None:
    x_all, y_all = _planted_binary(4, 900, 5, prevalence=0.1)
    x, y, xv, yv = x_all[:500], y_all[:500], x_all[500:], y_all[500:]
    alphas = np.array([1.0])
    plain = fit_probe("binary", x, y, xv, yv, alphas=alphas)
    balanced = fit_probe("binary", x, y, xv, yv, alphas=alphas, class_weight="balanced")
    assert balanced.intercept > plain.intercept + 1.0
    assert balanced.predict(xv).mean() > plain.predict(xv).mean()


def test_default_alphas_are_a_descending_log_grid() -> None:
    grid = default_alphas("regression", 1000)
    assert grid.size >= 30 and np.all(np.diff(grid) < 0)
    assert np.all(np.diff(default_alphas("binary", 1000)) < 0)


def test_probe_errors_name_the_problem() -> None:
    x, y = _planted_binary(5, 50, 4)
    with pytest.raises(ValueError, match="both classes"):
        fit_probe("binary", x, np.zeros(50), x, y)
    with pytest.raises(ValueError, match="kind"):
        fit_probe("logistic", x, y, x, y)
    with pytest.raises(ValueError, match="features"):
        fit_probe("regression", x, y, x[:, :3], y)
    with pytest.raises(ValueError, match="NaN"):
        fit_probe("regression", np.full_like(x, np.nan), y, x, y)
    probe = fit_probe("regression", x, y.astype(float), x, y.astype(float), alphas=[1.0])
    with pytest.raises(ValueError, match="expects 4 features"):
        probe.predict(x[:, :2])


def test_nan_error_names_the_first_bad_row() -> None:
    x, y = _planted_regression(6, 40, 6)
    x[17, 2] = np.inf
    with pytest.raises(ValueError, match="X_train contains NaN or infinite values.*row 17"):
        fit_probe("regression", x, y, x[:10] * 0 + 1, y[:10])


@pytest.mark.parametrize("chunk", [13, 65_536])
def test_standardised_ridge_path_equals_the_path_on_standardised_x(chunk, monkeypatch) -> None:
    monkeypatch.setattr(probe_module, "_ROW_CHUNK", chunk)
    x, y = _planted_regression(7, 90, 8)
    x = x.astype(np.float32)
    mean, scale = probe_module._standardise(x)
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(scale, x.astype(np.float64).std(0), rtol=1e-10)
    alphas = np.logspace(-2, 3, 6)
    got = probe_module._standardised_ridge(x, y, alphas, mean, scale)
    want = ridge_path((x.astype(np.float64) - mean) / scale, y, alphas)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-10)


def test_regression_probe_never_copies_float32_features_to_float64(monkeypatch) -> None:
    import tracemalloc

    monkeypatch.setattr(probe_module, "_ROW_CHUNK", 4096)
    rng = np.random.default_rng(8)
    n, d = 200_000, 64
    x = rng.standard_normal((n, d), dtype=np.float32)
    y = x[:, 0].astype(np.float64) + rng.normal(size=n)
    xv, yv = x[: n // 4], y[: n // 4]  # a large validation set is not copied either
    tracemalloc.start()
    try:
        probe = fit_probe("regression", x, y, xv, yv)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert probe.val_score > 0.4
    one_copy = n * d * 8  # 102 MB: what one float64 copy of X would take
    assert peak < 0.25 * one_copy, f"peak {peak / 1e6:.1f} MB"


def test_logistic_path_runs_blas_single_threaded(monkeypatch) -> None:
    """lbfgs's small products run on one BLAS thread even where the process allows more
    (with torch's OpenMP pool, 2 BLAS threads made the demo's probes 13x slower)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    seen: list[int] = []
    fit = LogisticRegression.fit

    def spy(self, *args, **kwargs):
        seen.extend(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(LogisticRegression, "fit", spy)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(80, 6)), (rng.random(80) > 0.5).astype(float)
    with threadpool_limits(limits=2, user_api="blas"):
        assert {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"} == {2}
        fit_probe("binary", x[:60], y[:60], x[60:], y[60:])
        assert {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"} == {2}
    assert seen and set(seen) == {1}
