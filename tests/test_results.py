"""Records, results.json round trip, predictions.parquet and the cohort tables."""

from __future__ import annotations

import json
from dataclasses import fields

import pandas as pd
import pytest

from clerc.data.manifest import read_manifest
from clerc.evaluate.cohort import cohort, table1, table2
from clerc.evaluate.results import (
    Record,
    provenance,
    read_results,
    write_predictions,
    write_results,
)
from tests.planted_cohort import planted

KEYS = ["table", "task", "setting", "query_modality", "gallery_modality", "modality",
        "label_modality", "metric", "value", "ci_low", "ci_high", "n", "n_undefined", "note",
        "subgroup", "train_fraction"]


def _rec(**kw) -> Record:
    d = dict(table="table4", task="rbbb", setting="zero_shot", query_modality=None,
             gallery_modality=None, modality="ecg_waveform", label_modality="ecg_waveform",
             metric="auroc", value=0.9, ci_low=0.8, ci_high=0.95, n=12, n_undefined=0, note=None)
    d.update(kw)
    return Record(**d)


def test_record_has_the_contract_keys():
    assert [f.name for f in fields(Record)] == KEYS
    assert list(_rec().to_dict()) == KEYS


@pytest.mark.parametrize("bad, match", [
    ({"value": float("nan")}, "finite"),
    ({"value": None}, "needs a note"),
    ({"table": "table9"}, "table"),
    ({"setting": "few_shot"}, "setting"),
])
def test_record_refuses_bad_values(bad, match):
    with pytest.raises(ValueError, match=match):
        _rec(**bad)


def test_results_round_trip(tmp_path):
    recs = [_rec(), _rec(value=None, ci_low=None, ci_high=None, note="one class only")]
    prov = provenance(checkpoint_hash="abc", manifest_hash="def", seed=3, command=["x"])
    path = write_results(tmp_path / "r" / "results.json", recs, prov, {"table1": {}})
    back, prov2, coh = read_results(path)
    assert back == recs and prov2 == prov and coh == {"table1": {}}
    assert "NaN" not in path.read_text()
    assert prov["seed"] == 3 and prov["versions"]["numpy"]
    assert json.loads(path.read_text())["records"][1]["value"] is None


def test_predictions_parquet(tmp_path):
    part = pd.DataFrame({"cell": "a|b", "kind": "binary", "y_true": [0.0, 1.0],
                         "y_score": [0.2, 0.7]})
    path = write_predictions(tmp_path / "predictions.parquet", [part])
    df = pd.read_parquet(path)
    assert list(df.columns) == ["cell", "kind", "y_true", "y_score"] and len(df) == 2
    with pytest.raises(ValueError, match="kinds"):
        write_predictions(tmp_path / "p2.parquet", [part.assign(kind="ranking")])


def test_cohort_tables(tmp_path):
    planted(tmp_path, 20)
    m = read_manifest(tmp_path)
    t1 = table1(m)
    assert t1["patients"]["echo_video"] == 20
    assert t1["pairs"]["echo_video|ecg_waveform"] == 20 and len(t1["pairs"]) == 28
    t2 = table2(m)
    rows = t2["rows"]
    assert t2["splits"] == ["total", "train", "val", "test"]
    assert rows["patients"] == {"total": 20, "train": 10, "val": 4, "test": 6}
    assert rows["samples"]["echo_video"]["total"] == 40
    assert rows["studies"]["cxr_image"]["test"] == 6
    female = int((m.patients["sex"] == "F").sum())
    assert rows["female"]["total"]["n"] == female
    assert sum(v["total"]["n"] for v in rows["race"].values()) == 20
    assert 20 < rows["age"]["total"]["mean"] < 100 and rows["age"]["total"]["std"] > 0
    json.dumps(cohort(m), allow_nan=False)
