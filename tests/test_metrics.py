"""Metrics against slow, obvious references (Python loops, sklearn, closed forms)."""

import numpy as np
import pytest
from sklearn.metrics import r2_score, roc_auc_score

from clerc.evaluate.metrics import (
    auroc,
    l2_normalise,
    mae,
    mid_ranks,
    percentile_from_ranks,
    percentile_ranks,
    r2,
    recall_at_k,
    retrieval_ranks,
    softmax_expectation,
)


def _loop_ranks(q: np.ndarray, g: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Reference: count other gallery items scoring >= the target, one query at a time."""
    out = []
    for i in range(len(q)):
        scores = [float(np.dot(q[i], g[j])) for j in range(len(g))]
        own = scores[target[i]]
        out.append(sum(1 for j, s in enumerate(scores) if j != target[i] and s >= own))
    return np.array(out)


def _lattice(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit vectors with exactly representable entries (+-e_i or +-0.5 everywhere): their
    float32 dot products are exact in any summation order, so ties are genuine."""
    out = np.zeros((n, 4), dtype=np.float32)
    halves = rng.random(n) < 0.5
    out[halves] = rng.choice([-0.5, 0.5], size=(int(halves.sum()), 4))
    axis = rng.integers(0, 4, size=n)
    out[~halves, axis[~halves]] = rng.choice([-1.0, 1.0], size=int((~halves).sum()))
    return out


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 2048])
@pytest.mark.parametrize("seed", [0, 1])
def test_retrieval_ranks_match_loop_with_ties_and_negatives(chunk: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    q, g = _lattice(rng, 23), _lattice(rng, 31)
    g[5] = g[3]  # exact duplicate gallery items
    target = rng.integers(0, 31, size=23)
    target[:3] = [3, 5, 3]
    scores = q @ g.T
    assert (scores < 0).any()
    assert all(np.unique(row).size < row.size for row in scores)
    got = retrieval_ranks(q, g, target, chunk=chunk)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, _loop_ranks(q, g, target))


@pytest.mark.parametrize("chunk", [5, 2048])
def test_retrieval_ranks_match_loop_on_random_embeddings(chunk: int) -> None:
    rng = np.random.default_rng(7)
    q = l2_normalise(rng.normal(size=(19, 24)))
    g = l2_normalise(rng.normal(size=(40, 24)))
    target = rng.integers(0, 40, size=19)
    np.testing.assert_array_equal(retrieval_ranks(q, g, target, chunk=chunk),
                                  _loop_ranks(q.astype(np.float64), g.astype(np.float64),
                                              target))


@pytest.mark.parametrize("chunk", [1, 7, 2048])
def test_mid_ranks_count_ties_half_against_a_loop(chunk: int) -> None:
    rng = np.random.default_rng(3)
    q, g = _lattice(rng, 23), _lattice(rng, 31)
    g[5] = g[3]
    target = rng.integers(0, 31, size=23)
    target[:3] = [3, 5, 3]
    want = []
    for i, t in enumerate(target):
        s = g.astype(np.float64) @ q[i].astype(np.float64)
        others = np.delete(s, t)
        want.append((others > s[t]).sum() + 0.5 * (others == s[t]).sum())
    got = mid_ranks(q, g, target, chunk=chunk)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, want)
    assert (got <= retrieval_ranks(q, g, target, chunk=chunk)).all()


def test_retrieval_ranks_ties_count_against_the_model() -> None:
    g = l2_normalise(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
    q = l2_normalise(np.array([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]]))
    # target 0 ties with item 1 -> rank 1; target 1 ties with 0 -> rank 1; item 3 alone first
    np.testing.assert_array_equal(retrieval_ranks(q, g, np.array([0, 1, 3])), [1, 1, 0])


def test_oracle_embeddings_rank_first_random_about_fifty() -> None:
    rng = np.random.default_rng(3)
    x = l2_normalise(rng.normal(size=(400, 32)))
    np.testing.assert_array_equal(percentile_ranks(x, x, chunk=128), np.zeros(400))
    other = l2_normalise(rng.normal(size=(400, 32)))
    pct = percentile_ranks(x, other, chunk=100)
    assert 45.0 < pct.mean() < 55.0
    assert pct.min() >= 0.0 and pct.max() <= 100.0


def test_percentile_from_ranks_ends_and_errors() -> None:
    np.testing.assert_allclose(percentile_from_ranks(np.array([0, 2, 4]), 5), [0, 50, 100])
    with pytest.raises(ValueError, match="at least 2"):
        percentile_from_ranks(np.array([0]), 1)
    with pytest.raises(ValueError, match="ranks must lie"):
        percentile_from_ranks(np.array([5]), 5)


def test_retrieval_ranks_reject_bad_inputs() -> None:
    x = l2_normalise(np.eye(3))
    with pytest.raises(ValueError, match="target indices"):
        retrieval_ranks(x, x, np.array([0, 1, 3]))
    with pytest.raises(ValueError, match="dim"):
        retrieval_ranks(x, x[:, :2], np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="NaN"):
        retrieval_ranks(np.full((3, 3), np.nan, np.float32), x, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="zero or non-finite norm"):
        l2_normalise(np.zeros((2, 3)))


def _clip_benchmark_recall(scores: np.ndarray, positive: np.ndarray, k: int) -> float:
    """Hand copy of CLIP_benchmark's recall@k: top-k indices by score, positive among them."""
    topk_indices = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float((topk_indices == positive[:, None]).any(axis=1).mean())


@pytest.mark.parametrize("k", [1, 5, 10])
def test_recall_at_k_equals_clip_benchmark_without_ties(k: int) -> None:
    rng = np.random.default_rng(k)
    q = l2_normalise(rng.normal(size=(60, 16)))
    g = l2_normalise(q + rng.normal(scale=1.2, size=q.shape).astype(np.float32))
    target = np.arange(60)
    ranks = retrieval_ranks(q, g, target, chunk=17)
    expected = _clip_benchmark_recall(q @ g.T, target, k)
    assert recall_at_k(ranks, k) == expected
    assert 0.0 < expected < 1.0 or k == 10


def test_recall_at_k_errors() -> None:
    with pytest.raises(ValueError, match="k >= 1"):
        recall_at_k(np.array([0]), 0)
    with pytest.raises(ValueError, match="zero queries"):
        recall_at_k(np.array([], dtype=int), 1)


@pytest.mark.parametrize("levels", [2, 5, 1000])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_matches_sklearn_including_ties(levels: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=300)
    score = rng.integers(0, levels, size=300) + 0.7 * y
    assert auroc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)


def test_auroc_one_class_raises() -> None:
    with pytest.raises(ValueError, match="one class"):
        auroc(np.ones(4), np.arange(4.0))
    with pytest.raises(ValueError, match="only 0 and 1"):
        auroc(np.array([0, 2]), np.arange(2.0))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_r2_and_mae_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(50, 10, size=200)
    pred = y + rng.normal(0, 5 + seed * 10, size=200)
    assert r2(y, pred) == pytest.approx(r2_score(y, pred), abs=1e-12)
    assert mae(y, pred) == pytest.approx(np.mean(np.abs(y - pred)), abs=1e-12)


def test_r2_zero_variance_raises() -> None:
    with pytest.raises(ValueError, match="zero variance"):
        r2(np.ones(5), np.arange(5.0))
    with pytest.raises(ValueError, match="5 values"):
        mae(np.ones(5), np.ones(4))


def test_softmax_expectation_matches_hand_computation() -> None:
    cos = np.array([[0.1, 0.3, -0.2], [0.5, 0.5, 0.5]])
    values = np.array([20.0, 50.0, 70.0])
    scale = 10.0
    w = np.exp(scale * cos[0])
    expected0 = float((w * values).sum() / w.sum())
    out = softmax_expectation(cos, values, scale)
    assert out[0] == pytest.approx(expected0, rel=1e-12)
    assert out[1] == pytest.approx(values.mean(), rel=1e-12)


def test_softmax_expectation_is_stable_at_large_scale() -> None:
    out = softmax_expectation(np.array([[0.9, 0.1]]), np.array([1.0, 2.0]), 1e5)
    assert out[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="scale"):
        softmax_expectation(np.zeros((1, 2)), np.ones(2), -1.0)
