"""``clerc adapt echonet`` and ``clerc adapt ptbxl`` on tiny copies in their true formats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clerc.adapters.echonet import PLACEHOLDER_TIME
from clerc.cli import main
from clerc.data.manifest import read_manifest
from clerc.data.readers import read_ecg
from clerc.data.validate import validate_manifest
from tests.adapter_fixtures import write_echonet_fixture, write_mimic_ecg, write_ptbxl_fixture


@pytest.fixture(scope="module")
def echonet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_echonet_fixture(tmp_path_factory.mktemp("echonet"))
    out = tmp_path_factory.mktemp("echonet_out")
    assert main(["adapt", "echonet", str(root), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def ptbxl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_ptbxl_fixture(tmp_path_factory.mktemp("ptbxl"))
    out = tmp_path_factory.mktemp("ptbxl_out")
    assert main(["adapt", "ptbxl", str(root), "--out", str(out)]) == 0
    return out


def sources(out: Path) -> dict[str, tuple]:
    acc = json.loads((out / "account.json").read_text())
    return {k: (v["read"], v["kept"], v["dropped"]) for k, v in acc["sources"].items()}


# --------------------------------------------------------------------------- EchoNet
def test_echonet_manifest(echonet: Path) -> None:
    assert validate_manifest(echonet, deep=True) == []
    m = read_manifest(echonet)
    s = m.samples.set_index("sample_id")
    assert list(s.index) == ["echonet:0X1A", "echonet:0X1B", "echonet:0X1D"]
    assert s["split"].tolist() == ["train", "val", "test"]
    assert (s["modality"] == "echo_video").all()
    assert (s["acquired_at"] == PLACEHOLDER_TIME).all()
    assert s["patient_id"].tolist() == ["0X1A", "0X1B", "0X1D"]
    assert Path(s.loc["echonet:0X1A", "path"]).name == "0X1A.avi"
    lab = m.labels
    assert lab[["patient_id", "task", "value"]].values.tolist() == [
        ["0X1A", "lvef", 55.3], ["0X1B", "lvef", 30.1]]
    assert (lab["source_modality"] == "echo_video").all()
    assert m.patients["sex"].isna().all() and m.patients["anchor_age"].isna().all()


def test_echonet_account(echonet: Path) -> None:
    assert sources(echonet) == {
        "FileList.csv": (4, 3, {"missing file": 1}),
        "FileList.csv EF": (3, 2, {"unparseable value": 1}),
    }


# --------------------------------------------------------------------------- PTB-XL
def test_ptbxl_manifest(ptbxl: Path) -> None:
    assert validate_manifest(ptbxl, deep=True) == []
    m = read_manifest(ptbxl)
    got = {r.sample_id: (r.patient_id, r.modality, r.acquired_at, r.split)
           for r in m.samples.itertuples()}
    t1, t2 = pd.Timestamp("1984-11-09 09:17:34"), pd.Timestamp("1984-11-14 12:55:37")
    t3, t5 = pd.Timestamp("1984-11-15 12:49:10"), pd.Timestamp("1986-01-01 08:00:00")
    assert got == {
        "ptbxl:1:waveform": ("15709", "ecg_waveform", t1, "train"),
        "ptbxl:1:text": ("15709", "ecg_text", t1, "train"),
        "ptbxl:2:waveform": ("13243", "ecg_waveform", t2, "val"),
        "ptbxl:2:text": ("13243", "ecg_text", t2, "val"),
        "ptbxl:3:waveform": ("20372", "ecg_waveform", t3, "test"),
        "ptbxl:3:text": ("20372", "ecg_text", t3, "test"),
        "ptbxl:5:waveform": ("17014", "ecg_waveform", t5, "train"),
    }
    text = m.samples.set_index("sample_id")["text"]
    assert text["ptbxl:3:text"] == "schrittmacher-ekg"


def test_ptbxl_labels(ptbxl: Path) -> None:
    lab = read_manifest(ptbxl).labels
    wide = lab.pivot(index="study_id", columns="task", values="value")
    assert wide.to_dict("index") == {
        "ptbxl:1": {"lbbb": 0.0, "pacemaker": 0.0, "rbbb": 0.0},
        "ptbxl:2": {"lbbb": 0.0, "pacemaker": 0.0, "rbbb": 1.0},
        "ptbxl:3": {"lbbb": 0.0, "pacemaker": 1.0, "rbbb": 0.0},  # PACE likelihood 0.0
    }
    assert (lab["source_modality"] == "ecg_waveform").all()


def test_ptbxl_patients(ptbxl: Path) -> None:
    p = read_manifest(ptbxl).patients.set_index("patient_id")
    assert p["sex"].to_dict() == {"13243": "M", "15709": "F", "17014": "F", "20372": "M"}
    assert np.isnan(p.loc["13243", "anchor_age"])  # coded 300: over 89
    assert p.loc["15709", "anchor_age"] == 56.0
    assert p.loc["15709", "anchor_time"] == pd.Timestamp("1984-11-09 09:17:34")


def test_ptbxl_account(ptbxl: Path) -> None:
    assert sources(ptbxl) == {
        "ptbxl_database.csv": (6, 4, {"missing file": 1, "unparseable time": 1}),
        "reports": (4, 3, {"empty report": 1}),
        "scp_codes": (4, 3, {"unparseable value": 1}),
    }
    notes = json.loads((ptbxl / "account.json").read_text())["notes"]
    assert notes["report_language"] == {"de": 2, "en": 1}
    assert notes["patients_age_unknown"] == 1


# --------------------------------------------------------------------------- fixtures
@pytest.mark.parametrize(("which", "amplitude_avl"), [("mimic", 0.6), ("ptbxl", 0.5)])
def test_fixture_leads_reorder_by_name(tmp_path: Path, which: str, amplitude_avl: float) -> None:
    """aVL is the 6th lead in MIMIC files and the 5th in PTB-XL: read by name, both land at 4."""
    if which == "mimic":
        hea = write_mimic_ecg(tmp_path) / "files/p1000/p10000032/s40689238/40689238.hea"
    else:
        hea = write_ptbxl_fixture(tmp_path) / "records500/00000/00001_hr.hea"
    sig = read_ecg(hea)
    assert sig.shape == (12, 5000)
    t = np.arange(5000) / 500
    assert np.allclose(sig[4], amplitude_avl * np.sin(2 * np.pi * t), atol=0.05)


def test_cli_missing_root(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["adapt", "ptbxl", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert main(["adapt", "echonet", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "FileList.csv: required file not found" in capsys.readouterr().err
