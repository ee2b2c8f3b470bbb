"""The drift gate: tolerances, CI mode, direction, missing and null records, --update."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from clerc import cli
from clerc.gate import (
    DEFAULT_TOLERANCES,
    compare,
    direction,
    metric_kind,
    parse_tolerances,
)
from tests.fixtures_results import make_results


@pytest.fixture(scope="module")
def base() -> dict:
    return make_results(0)


def _find(doc: dict, **match) -> dict:
    hits = [r for r in doc["records"] if all(r[k] == v for k, v in match.items())]
    assert len(hits) == 1, f"{match} matched {len(hits)} records"
    return hits[0]


def _perturbed(doc: dict, delta: float, **match) -> dict:
    out = copy.deepcopy(doc)
    _find(out, **match)["value"] += delta
    return out


def _gate(tmp_path: Path, baseline: dict, results: dict, *extra: str) -> int:
    b, r = tmp_path / "baseline.json", tmp_path / "results.json"
    b.write_text(json.dumps(baseline))
    r.write_text(json.dumps(results))
    return cli.main(["gate", "--baseline", str(b), "--results", str(r), *extra])


ECHO_LVEF_R2 = dict(table="table4", task="lvef", setting="linear_probe", modality="echo_video",
                    metric="r2")
RETRIEVAL = dict(table="table3", query_modality="echo_video", gallery_modality="ecg_waveform",
                 metric="median_percentile")


def test_identical_results_pass(tmp_path, base, capsys):
    assert _gate(tmp_path, base, base) == 0
    assert "0 failed" in capsys.readouterr().out


def test_perturbed_metric_beyond_tolerance_fails_and_is_named(tmp_path, base, capsys):
    results = _perturbed(base, -0.2, **ECHO_LVEF_R2)
    assert _gate(tmp_path, base, results) == 1
    out = capsys.readouterr().out
    assert "lvef" in out and "r2" in out and "FAIL" in out and "worse" in out
    assert "1 failed" in out


def test_within_tolerance_passes_but_is_shown(tmp_path, base, capsys):
    results = _perturbed(base, 0.5 * DEFAULT_TOLERANCES["r2"], **ECHO_LVEF_R2)
    assert _gate(tmp_path, base, results) == 0
    out = capsys.readouterr().out
    assert "lvef" in out and "better" in out and "0 failed" in out


def test_missing_record_on_either_side_fails(tmp_path, base):
    fewer = copy.deepcopy(base)
    fewer["records"].remove(_find(fewer, **ECHO_LVEF_R2))
    drifts = compare(base, fewer)
    assert [d.reason for d in drifts if d.failed] == ["missing in results"]
    drifts = compare(fewer, base)
    assert [d.reason for d in drifts if d.failed] == ["missing in baseline"]
    assert _gate(tmp_path, base, fewer) == 1


def test_null_transitions_fail(base):
    results = copy.deepcopy(base)
    _find(results, **ECHO_LVEF_R2)["value"] = None
    assert [d.reason for d in compare(base, results) if d.failed] == ["became null"]
    assert [d.reason for d in compare(results, base) if d.failed] == ["stopped being null"]
    assert not [d for d in compare(results, results) if d.failed]


@pytest.mark.parametrize(("metric", "sign"), [
    ("auroc", 1), ("r2", 1), ("recall@5", 1), ("median_percentile", -1),
    ("mean_percentile", -1), ("mae", -1), ("auroc_p_holm", 0), ("brier", -1), ("kappa", 0),
])
def test_direction(metric, sign):
    assert direction(metric) == sign


def test_metric_kinds():
    assert metric_kind("recall@10") == "recall@k"
    assert metric_kind("r2_p_holm") == "p_value"
    assert metric_kind("something_new") == "default"


def test_direction_decides_worse_for_lower_is_better(base):
    worse = compare(base, _perturbed(base, 10.0, **RETRIEVAL))
    better = compare(base, _perturbed(base, -10.0, **RETRIEVAL))
    (w,) = [d for d in worse if d.failed]
    (b,) = [d for d in better if d.failed]
    assert w.worse is True and b.worse is False


def test_worse_only_lets_improvements_pass(base):
    better = _perturbed(base, -10.0, **RETRIEVAL)
    assert not [d for d in compare(base, better, worse_only=True) if d.failed]
    worse = _perturbed(base, 10.0, **RETRIEVAL)
    assert len([d for d in compare(base, worse, worse_only=True) if d.failed]) == 1


def test_custom_tolerance_changes_the_verdict(tmp_path, base):
    results = _perturbed(base, -0.03, **ECHO_LVEF_R2)
    assert _gate(tmp_path, base, results) == 0
    assert _gate(tmp_path, base, results, "--tolerance", "r2=0.01") == 1


def test_bad_tolerance_is_named():
    with pytest.raises(ValueError, match="'aurc=1'.*auroc"):
        parse_tolerances(["aurc=1"])
    with pytest.raises(ValueError, match="'x' is not a number"):
        parse_tolerances(["auroc=x"])


def test_ci_mode_uses_the_baseline_interval(tmp_path, base):
    rec = _find(base, **ECHO_LVEF_R2)
    half = rec["ci_high"] - rec["value"]
    assert half < DEFAULT_TOLERANCES["r2"]
    outside = _perturbed(base, half * 1.5, **ECHO_LVEF_R2)
    assert _gate(tmp_path, base, outside) == 0
    assert _gate(tmp_path, base, outside, "--ci-mode") == 1
    inside = _perturbed(base, half * 0.5, **ECHO_LVEF_R2)
    assert _gate(tmp_path, base, inside, "--ci-mode") == 0


def test_ci_mode_without_ci_falls_back_to_tolerance(base):
    no_ci = copy.deepcopy(base)
    rec = _find(no_ci, **ECHO_LVEF_R2)
    rec["ci_low"] = rec["ci_high"] = None
    (d,) = [d for d in compare(no_ci, _perturbed(no_ci, 0.2, **ECHO_LVEF_R2), ci_mode=True)
            if d.failed]
    assert "no CI" in d.limit


def test_update_rewrites_the_baseline(tmp_path, base, capsys):
    results = _perturbed(base, -0.2, **ECHO_LVEF_R2)
    assert _gate(tmp_path, base, results, "--update") == 0
    assert "rewritten" in capsys.readouterr().out
    assert json.loads((tmp_path / "baseline.json").read_text()) == results
    assert _gate(tmp_path, results, results) == 0


def test_unreadable_input_is_named(tmp_path, base, capsys):
    r = tmp_path / "results.json"
    r.write_text(json.dumps(base))
    code = cli.main(["gate", "--baseline", str(tmp_path / "nope.json"), "--results", str(r)])
    assert code == 2
    assert "nope.json does not exist" in capsys.readouterr().err
    binary = tmp_path / "ckpt.pt"
    binary.write_bytes(b"\x80\x02\xff\xfe")
    assert cli.main(["gate", "--baseline", str(binary), "--results", str(r)]) == 2
    assert "ckpt.pt is not a text (JSON) file" in capsys.readouterr().err
    assert cli.main(["gate", "--baseline", str(tmp_path), "--results", str(r)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_duplicate_key_is_an_error(base):
    doubled = copy.deepcopy(base)
    doubled["records"].append(copy.deepcopy(doubled["records"][0]))
    with pytest.raises(ValueError, match="results: record .* repeats the key"):
        compare(base, doubled)


def test_update_creates_a_missing_baseline(tmp_path, base, capsys):
    r = tmp_path / "results.json"
    r.write_text(json.dumps(base))
    target = tmp_path / "baselines" / "tiny.json"
    assert cli.main(["gate", "--baseline", str(target), "--results", str(r), "--update"]) == 0
    assert json.loads(target.read_text()) == base
    assert "rewritten" in capsys.readouterr().out


def test_markup_in_names_is_printed_literally(tmp_path, base, capsys):
    odd = copy.deepcopy(base)
    _find(odd, **ECHO_LVEF_R2)["task"] = "[bold]lvef[/bold]"
    assert _gate(tmp_path, base, odd) == 1
    assert "[bold]lvef[/bold]" in capsys.readouterr().out


def test_a_changed_n_fails_even_with_the_same_value(tmp_path, base, capsys):
    results = copy.deepcopy(base)
    record = _find(results, **ECHO_LVEF_R2)
    record["n"] = record["n"] - 3
    assert _gate(tmp_path, base, results) == 1
    out = capsys.readouterr().out
    assert "n changed" in out and "lvef" in out and "1 failed" in out
    assert _gate(tmp_path, base, results, "--allow-n-change") == 0
