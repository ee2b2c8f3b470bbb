"""Calibrated gate limits: learned from reruns, stored in the baseline, used and reported."""

from __future__ import annotations

import copy
import json

import pytest

from clerc import cli
from clerc.calibration import (
    DEFAULT_FLOORS,
    CalibrationSettings,
    calibrate,
    detectable,
    key_string,
)
from clerc.gate import KEY_FIELDS, compare, parse_tolerances
from tests.fixtures_results import make_results


def _key(rec: dict) -> str:
    return key_string(tuple(rec.get(f) for f in KEY_FIELDS))


def _shifted(doc: dict, shifts: dict[str, float]) -> dict:
    out = copy.deepcopy(doc)
    for rec in out["records"]:
        if rec["value"] is not None:
            rec["value"] += shifts.get(_key(rec), 0.0)
    return out


@pytest.fixture(scope="module")
def base() -> dict:
    doc = make_results(0)
    for rec in doc["records"]:
        rec["n"] = 100
    return doc


def _record(doc: dict, **match) -> dict:
    hits = [r for r in doc["records"] if all(r.get(k) == v for k, v in match.items())]
    assert len(hits) == 1, match
    return hits[0]


LVEF = dict(table="table4", task="lvef", setting="linear_probe", modality="echo_video",
            metric="r2")
RET = dict(table="table3", query_modality="echo_video", gallery_modality="ecg_waveform",
           metric="median_percentile")


def test_limit_is_factor_times_largest_deviation_with_a_floor(base):
    lvef, ret = _key(_record(base, **LVEF)), _key(_record(base, **RET))
    runs = [_shifted(base, {lvef: 0.05, ret: 0.1}), _shifted(base, {lvef: -0.02, ret: -0.2})]
    block = calibrate(base, runs, settings=CalibrationSettings(factor=3.0))
    assert block["limits"][lvef]["status"] == "gated"
    assert block["limits"][lvef]["limit"] == pytest.approx(0.15)
    assert block["limits"][lvef]["spread"] == pytest.approx(0.05)
    # a retrieval record that moved 0.2 would get 3 x 0.2 = 0.6: its floor of 1.0 wins
    assert block["limits"][ret]["limit"] == pytest.approx(DEFAULT_FLOORS["median_percentile"])
    untouched = _key(_record(base, table="table4", task="rbbb", setting="linear_probe",
                             modality="ecg_waveform", metric="auroc"))
    assert block["limits"][untouched]["limit"] == DEFAULT_FLOORS["auroc"]


def test_small_and_noisy_records_are_marked_not_gated(base):
    small = copy.deepcopy(base)
    rec = _record(small, **LVEF)
    rec["n"] = 12
    ret = _key(_record(small, **RET))
    runs = [_shifted(small, {ret: 30.0}), _shifted(small, {ret: -5.0})]
    block = calibrate(small, runs)
    assert block["limits"][_key(rec)] == {"status": "too_small",
                                          "reason": "n=12 < 30 patients"}
    assert block["limits"][ret]["status"] == "too_noisy"
    summary = detectable(block)
    assert summary["median_percentile"]["too_noisy"] == 1
    assert summary["r2"]["too_small"] == 1


def test_calibration_needs_two_reruns_and_valid_settings(base):
    with pytest.raises(ValueError, match="at least 2 reruns"):
        calibrate(base, [base])
    with pytest.raises(ValueError, match="factor"):
        CalibrationSettings(factor=0.5)
    with pytest.raises(ValueError, match="min_n"):
        CalibrationSettings(min_n=0)


def test_gate_uses_calibrated_limits_and_says_where_they_come_from(base):
    lvef = _key(_record(base, **LVEF))
    runs = [_shifted(base, {lvef: 0.01}), _shifted(base, {lvef: -0.01})]
    calibrated = {**base, "gate": calibrate(base, runs)}
    drifts = {key_string(d.key): d for d in compare(calibrated, _shifted(base, {lvef: 0.025}))}
    assert drifts[lvef].failed is False  # within 3 x 0.01 = 0.03
    drifts = {key_string(d.key): d for d in compare(calibrated, _shifted(base, {lvef: 0.04}))}
    assert drifts[lvef].failed is True
    assert "calibrated" in drifts[lvef].limit and "2 reruns" in drifts[lvef].limit
    # the fixed tolerance (r2: 0.08) would have let 0.04 through
    assert not {key_string(d.key): d for d in compare(base, _shifted(base, {lvef: 0.04}))}[
        lvef].failed


def test_too_small_records_are_reported_not_gated_but_structure_still_fails(base):
    small = copy.deepcopy(base)
    rec = _record(small, **LVEF)
    rec["n"] = 5
    calibrated = {**small, "gate": calibrate(small, [small, small])}
    moved = _shifted(small, {_key(rec): 0.5})
    d = {key_string(x.key): x for x in compare(calibrated, moved)}[_key(rec)]
    assert not d.failed and d.reason.startswith("not gated: too small")
    vanished = copy.deepcopy(small)
    _record(vanished, **LVEF)["value"] = None
    d = {key_string(x.key): x for x in compare(calibrated, vanished)}[_key(rec)]
    assert d.failed and d.reason == "became null"


def test_cli_calibrate_writes_limits_and_update_drops_them(tmp_path, base, capsys):
    lvef = _key(_record(base, **LVEF))
    b = tmp_path / "baseline.json"
    b.write_text(json.dumps(base))
    reruns = []
    for i, s in enumerate((0.01, -0.02)):
        p = tmp_path / f"rerun{i}.json"
        p.write_text(json.dumps(_shifted(base, {lvef: s})))
        reruns.append(str(p))
    assert cli.main(["gate", "--baseline", str(b), "--calibrate", *reruns]) == 0
    out = capsys.readouterr().out
    assert "from 2 reruns" in out and "median_percentile" in out
    stored = json.loads(b.read_text())["gate"]
    assert stored["limits"][lvef]["limit"] == pytest.approx(0.06)
    r = tmp_path / "results.json"
    r.write_text(json.dumps(_shifted(base, {lvef: 0.07})))
    assert cli.main(["gate", "--baseline", str(b), "--results", str(r)]) == 1
    assert "beyond calibrated limit" in capsys.readouterr().out
    assert cli.main(["gate", "--baseline", str(b), "--results", str(r), "--update"]) == 0
    assert "recalibrate" in capsys.readouterr().out
    assert "gate" not in json.loads(b.read_text())


def test_cli_gate_without_results_or_calibrate_is_a_user_error(tmp_path, base, capsys):
    b = tmp_path / "baseline.json"
    b.write_text(json.dumps(base))
    assert cli.main(["gate", "--baseline", str(b)]) == 2
    assert "--results" in capsys.readouterr().err


def test_tolerance_all_sets_every_kind():
    tol = parse_tolerances(["all=1e-6", "mae=2"])
    assert tol["auroc"] == tol["median_percentile"] == 1e-6 and tol["mae"] == 2.0
    with pytest.raises(ValueError, match="KIND one of all"):
        parse_tolerances(["everything=1"])
