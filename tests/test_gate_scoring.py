"""The scoring half of the drift gate: committed embeddings reproduce committed results on
any float order, and planted scoring regressions fail the gate.

The fixture (``tests/data/scoring/``, see ``tests/scoring_fixture.py``) holds embeddings
on a 2**-11 grid (means of two-sample studies on 2**-12), so cosines are exact in float32
whatever the BLAS or thread count; the
gate then uses ``SCORING_TOLERANCE`` for every record. Each planted regression is a small
code change of the kind a refactor could make; the test names the records that caught it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clerc import cli
from clerc.gate import compare, index_records, parse_tolerances
from tests.scoring_fixture import BENCH_ARGS, FIXTURE, SCORING_TOLERANCE, benchmark

TIGHT = parse_tolerances([f"all={SCORING_TOLERANCE}"])


def _committed() -> dict:
    return json.loads((FIXTURE / "results.json").read_text())


def _failures(results: dict) -> list[str]:
    """Failed records of ``results`` against the committed ones it covers (a run of a
    subset of tasks is compared on that subset)."""
    base = _committed()
    keys = set(index_records(results, "results"))
    base["records"] = [r for r in base["records"]
                       if tuple(r.get(f) for f in _key_fields()) in keys]
    return [" ".join(str(v) for v in d.key if v is not None)
            for d in compare(base, results, tolerances=TIGHT) if d.failed]


def _key_fields() -> tuple[str, ...]:
    from clerc.gate import KEY_FIELDS

    return KEY_FIELDS


@pytest.mark.slow
def test_committed_embeddings_reproduce_committed_results_on_other_thread_counts(tmp_path):
    """The fixture was scored with one thread; two must give the same records."""
    for threads in (2,):
        results = json.loads(benchmark(FIXTURE, tmp_path / f"t{threads}",
                                       threads=threads).read_text())
        assert len(results["records"]) == len(_committed()["records"])
        assert _failures(results) == [], f"{threads} threads"


def test_fixture_vectors_and_study_means_keep_float32_products_exact():
    """The premise of the tight gate: coordinates on the 2**-11 grid and studies of at most
    two samples, so every study mean lies on the 2**-12 grid."""
    from clerc.evaluate.embeddings import Embeddings

    emb = Embeddings.load(FIXTURE / "embeddings.npz")
    for x in (emb.vectors, emb.prompt_vectors):
        assert np.array_equal(np.round(x.astype(np.float64) * 2**11), x * 2**11)
    sizes = emb.samples.groupby(["modality", "study_id"]).size()
    assert sizes.max() <= 2 and (sizes == 2).any()


def _score(tmp_path: Path, tasks: list[str]) -> dict:
    out = tmp_path / "bench"
    code = cli.main(["benchmark", "--embeddings", str(FIXTURE / "embeddings.npz"), "--data",
                     str(FIXTURE / "manifest"), "--supervised",
                     str(FIXTURE / "supervised.parquet"), "--out", str(out), "--tasks", *tasks,
                     *BENCH_ARGS])
    assert code == 0
    return json.loads((out / "results.json").read_text())


def _patch_tasks(monkeypatch: pytest.MonkeyPatch, name: str, wrap: Callable) -> None:
    """Replace ``name`` in every loaded task module that imported it."""
    hits = 0
    for mod_name, mod in list(sys.modules.items()):
        if mod_name.startswith("clerc.evaluate") and hasattr(mod, name):
            monkeypatch.setattr(mod, name, wrap(getattr(mod, name)))
            hits += 1
    assert hits, f"no clerc.evaluate module has {name}"


def _no_scale(monkeypatch):
    import clerc.evaluate.metrics as m

    orig = m.softmax_expectation
    monkeypatch.setattr(m, "softmax_expectation",
                        lambda cos, values, scale: orig(cos, values, 1.0))


def _misaligned(monkeypatch):
    def wrap(orig):
        def shifted(left, right, max_gap):
            pairs = orig(left, right, max_gap)
            pairs["right_idx"] = np.roll(pairs["right_idx"].to_numpy(), 1)
            return pairs
        return shifted
    _patch_tasks(monkeypatch, "closest_pairs", wrap)


def _inverted(monkeypatch):
    def wrap(orig):
        def labels(ctx, rows, d):
            y, dropped = orig(ctx, rows, d)
            return (1.0 - y if d.label == "rbbb" else y), dropped
        return labels
    _patch_tasks(monkeypatch, "study_labels", wrap)


def _first_sample(monkeypatch):
    def wrap(orig):
        def first(rows, scores, y):
            f = pd.DataFrame({"study_id": rows["study_id"].astype(str).to_numpy(),
                              "s": np.asarray(scores, float)})
            keep = ~f["study_id"].duplicated().to_numpy()
            return orig(rows[keep], np.asarray(scores, float)[keep], y)
        return first
    _patch_tasks(monkeypatch, "study_mean", wrap)


#: name -> (patch, tasks to score, a record prefix that must be among the failures)
REGRESSIONS = {
    "zero-shot softmax without the learned scale": (
        _no_scale, ["zero_shot"], "table4 lvef zero_shot echo_video"),
    "retrieval galleries misaligned with their queries": (
        _misaligned, ["retrieval"], "table3 retrieval retrieval echo_video ecg_waveform"),
    # a probe refit on inverted labels learns the inverted direction and scores the same:
    # only the zero-shot cell, whose prompt is fixed, can see it
    "one label task inverted (rbbb)": (
        _inverted, ["zero_shot", "linear_probe"], "table4 rbbb zero_shot ecg_waveform"),
    "study averaging removed": (
        _first_sample, ["linear_probe"], "table4 lvef linear_probe echo_video"),
}


@pytest.mark.parametrize("name", list(REGRESSIONS))
def test_planted_scoring_regression_fails_the_gate(name, tmp_path, monkeypatch, capsys):
    plant, tasks, expected = REGRESSIONS[name]
    plant(monkeypatch)
    failed = _failures(_score(tmp_path / "planted", tasks))
    with capsys.disabled():
        print(f"\n[{name}] caught by {len(failed)} records, e.g. {failed[:3]}")
    assert any(f.startswith(expected) for f in failed), failed
