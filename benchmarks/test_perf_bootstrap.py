"""pytest-benchmark: AUROC bootstrap, ours vs the sklearn loop (`pytest benchmarks -q`)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_bootstrap import case_loop, case_ours

N, RESAMPLES = 2_000, 50


@pytest.mark.parametrize("make", [case_ours, case_loop], ids=["ours", "sklearn_loop"])
def test_bootstrap_auroc(benchmark, make) -> None:
    benchmark.group = f"AUROC bootstrap n={N}, {RESAMPLES} resamples"
    benchmark.pedantic(make(N, "auroc", RESAMPLES), rounds=3, iterations=1)


@pytest.mark.parametrize("metric", ["auroc", "r2", "median"])
def test_same_values(metric: str) -> None:
    values, defined = case_ours(N, metric, 10)()
    assert defined.all()
    np.testing.assert_allclose(values, case_loop(N, metric, 10)(), rtol=0, atol=1e-9)
