"""End to end on a MIMIC fixture tree in the true formats: adapt -> validate -> train -> benchmark.

The fixture (``tests/adapter_fixtures.py``) writes MIMIC-IV-ECG (WFDB, aVF before aVL),
MIMIC-CXR-JPG (JPG, metadata, CheXpert labels, reports), MIMIC-IV-ECHO (multi-frame DICOM)
and hosp/patients.csv.gz; the harness must train and benchmark on the adapter's output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clerc.cli import main
from tests.adapter_fixtures import write_mimic_fixture


@pytest.mark.slow
def test_mimic_fixture_adapts_trains_and_benchmarks(tmp_path: Path) -> None:
    roots = write_mimic_fixture(tmp_path / "mimic", extra_patients=24)
    data, run = tmp_path / "manifest", tmp_path / "run"
    assert main(["adapt", "mimic", "--ecg", str(roots["ecg"]), "--cxr", str(roots["cxr"]),
                 "--echo", str(roots["echo"]), "--hosp", str(roots["hosp"]),
                 "--out", str(data)]) == 0
    assert json.loads((data / "account.json").read_text())
    assert main(["validate", str(data), "--deep"]) == 0
    assert main(["prepare", str(data)]) == 0
    assert main(["train", "--data", str(data), "--config", "tiny", "--out", str(run),
                 "--epochs", "1", "--device", "cpu", "--no-progress"]) == 0
    assert main(["benchmark", "--checkpoint", str(run / "ckpt.pt"), "--data", str(data),
                 "--out", str(run / "bench"), "--bootstrap", "50", "--device", "cpu",
                 "--no-report"]) == 0
    doc = json.loads((run / "bench" / "results.json").read_text())
    cells = {(r["table"], r["setting"]) for r in doc["records"]}
    assert ("table3", "retrieval") in cells and ("table4", "linear_probe") in cells
    # MIMIC has no angiography: those cells exist and say why they are empty.
    angio = [r for r in doc["records"] if r["query_modality"] == "angio_video"]
    assert angio and all(r["value"] is None and r["note"] for r in angio)
