"""One spec per metric: tasks, bootstrap, gate and report all read ``metric_specs``."""

from __future__ import annotations

import numpy as np
import pytest

from clerc import gate
from clerc.evaluate import scorers
from clerc.evaluate.bootstrap import patient_bootstrap
from clerc.evaluate.metric_specs import (
    KIND_METRICS,
    METRICS,
    PROBABILITY_METRICS,
    RETRIEVAL_METRICS,
    MetricSpec,
    metric_spec,
)
from clerc.evaluate.tasks.common import _point
from clerc.registry import UnknownNameError
from clerc.report import tables

RNG = np.random.default_rng(0)
PID = np.repeat(np.arange(30), 2).astype(str)
Y = (RNG.random(60) < 0.4).astype(float)
S = RNG.random(60) + Y


@pytest.mark.parametrize("name", sorted({*METRICS.names(), *RETRIEVAL_METRICS,
                                         *(m for ms in KIND_METRICS.values() for m in ms)}))
def test_point_function_and_bootstrap_scorer_agree(name):
    spec = metric_spec(name)
    assert spec.point is not None and spec.scorer is not None and spec.label
    scores = np.floor(S * 5) if name.startswith("recall@") else S  # recall reads ranks
    if name in PROBABILITY_METRICS:  # Brier and ECE read probabilities
        scores = S / 2
    res = patient_bootstrap(name, PID, Y, scores, n_resamples=20, seed=0)
    assert res.value == pytest.approx(spec.point(Y, scores))


def test_families_and_unknown_names():
    recall = metric_spec("recall@7")
    assert recall.label == "Recall@7" and recall.kind == "recall@k"
    assert metric_spec("auroc_p_holm").kind == "p_value"
    with pytest.raises(UnknownNameError, match="Did you mean 'auroc'"):
        metric_spec("aurok")


def test_a_metric_registered_once_reaches_bootstrap_gate_and_report(monkeypatch):
    toy = MetricSpec("toy_brier", "Brier (toy)", -1, 0.01, 4, True,
                     lambda y, s: float(np.mean((y - s) ** 2)),
                     lambda c, n, y, s: scorers.mean_scorer(c, n, (y - s) ** 2))
    monkeypatch.setitem(METRICS._items, toy.name, toy)
    res = patient_bootstrap("toy_brier", PID, Y, S, n_resamples=50, seed=0)
    assert res.value == pytest.approx(np.mean((Y - S) ** 2)) and res.ci_low < res.ci_high
    assert _point("toy_brier", Y, S) == pytest.approx(res.value)  # the tasks' point value
    assert gate.direction("toy_brier") == -1 and gate.metric_kind("toy_brier") == "toy_brier"
    rec = {"table": "table4", "task": "t", "setting": "linear_probe", "query_modality": None,
           "gallery_modality": None, "modality": "ecg_waveform",
           "label_modality": "ecg_waveform", "metric": "toy_brier", "value": 0.2,
           "ci_low": None, "ci_high": None, "n": 5, "n_undefined": 0, "note": None}
    moved = {**rec, "value": 0.22}  # +0.02: beyond 0.01, within the default 0.05
    [drift] = gate.compare({"records": [rec]}, {"records": [moved]})
    assert drift.failed and drift.limit.startswith("±0.01 ") and drift.worse  # its own
    assert tables.fmt_value("toy_brier", 0.123456) == "0.1235"
    assert tables.metric_label("toy_brier") == "Brier (toy)"
