"""pytest-benchmark: ridge path vs one sklearn Ridge fit per alpha (`pytest benchmarks -q`)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_probe import alphas, case_ridge_ours, case_ridge_sklearn, features

N = 4_000


@pytest.mark.parametrize("make", [case_ridge_ours, case_ridge_sklearn],
                         ids=["ridge_path", "sklearn_per_alpha"])
def test_ridge(benchmark, make) -> None:
    benchmark.group = f"ridge, {N} x 512, 33 alphas"
    benchmark.pedantic(make(N), rounds=2, iterations=1)


def test_same_predictions() -> None:
    coefs, intercepts = case_ridge_ours(N)()
    fits = case_ridge_sklearn(N, n_alphas=3)()  # the three smallest alphas
    xt, _ = features(200, seed=1)
    order = np.argsort(alphas(N))
    for (c, b), i in zip(fits, order, strict=False):
        ref = xt @ c + b
        ours = xt @ coefs[i] + intercepts[i]
        assert np.max(np.abs(ours - ref)) <= 1e-6 * np.max(np.abs(ref))
