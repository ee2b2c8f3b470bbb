"""pytest-benchmark: retrieval ranking at small N (`pytest benchmarks -q`)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_retrieval import case_argsort, case_matmul, case_ours

N = 1_500


@pytest.mark.parametrize("make", [case_ours, case_matmul, case_argsort],
                         ids=["ours", "matmul", "argsort"])
def test_retrieval(benchmark, make) -> None:
    benchmark.group = f"retrieval N={N}"
    benchmark.pedantic(make(N), rounds=3, iterations=1, warmup_rounds=1)


def test_ours_equals_argsort() -> None:
    ours, naive = case_ours(N)(), case_argsort(N)()
    np.testing.assert_array_equal(ours["ranks"], naive["ranks"])
    assert ours["recall"] == naive["recall"]
