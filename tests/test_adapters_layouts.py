"""The public datasets as released: gzipped tables, demo layouts, 100 Hz records, both
MIMIC-IV-ECHO measurement layouts, an echo cine without timing tags."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clerc.adapters.mimic import MimicOptions, adapt_mimic
from clerc.adapters.ptbxl import adapt_ptbxl
from clerc.data.manifest import read_manifest
from clerc.data.readers import NoFrameRateWarning
from clerc.data.validate import validate_manifest
from tests.adapter_fixtures import (
    PTBXL_LEADS,
    A,
    C,
    write_csv,
    write_mimic_cxr,
    write_mimic_ecg,
    write_mimic_echo,
    write_ptbxl_fixture,
)


def account(out: Path) -> dict:
    return json.loads((out / "account.json").read_text())


def gzip_in_place(path: Path) -> None:
    with open(path, "rb") as src, gzip.open(path.with_name(path.name + ".gz"), "wb") as dst:
        shutil.copyfileobj(src, dst)
    path.unlink()


def test_mimic_cxr_jpg_gzipped_tables_and_unknown_view(tmp_path):
    cxr = write_mimic_cxr(tmp_path / "cxr")
    meta = pd.read_csv(cxr / "mimic-cxr-2.0.0-metadata.csv", dtype=str)
    meta.loc[2, "ViewPosition"] = None  # the AP image: no ViewPosition in the metadata
    meta.to_csv(cxr / "mimic-cxr-2.0.0-metadata.csv", index=False)
    for name in ("metadata", "chexpert", "split"):
        gzip_in_place(cxr / f"mimic-cxr-2.0.0-{name}.csv")  # the release as downloaded
    out = adapt_mimic(MimicOptions(out=tmp_path / "o", cxr=cxr), quiet=True)
    dropped = account(out)["sources"]["mimic-cxr-2.0.0-metadata.csv"]["dropped"]
    assert dropped == {"non-frontal view": 1, "unknown view": 1}
    assert "cxr_official_split" not in account(out)["notes"]  # the .gz split was read
    assert read_manifest(out).samples.query("modality == 'cxr_image'").shape[0] == 1


def test_missing_table_names_both_spellings(tmp_path):
    cxr = write_mimic_cxr(tmp_path / "cxr")
    (cxr / "mimic-cxr-2.0.0-chexpert.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"chexpert\.csv: required file not found "
                                                r"\(nor mimic-cxr-2\.0\.0-chexpert\.csv\.gz\)"):
        adapt_mimic(MimicOptions(out=tmp_path / "o", cxr=cxr), quiet=True)


def write_100hz(record: Path, seed: int) -> None:
    import wfdb

    record.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(1000) / 100
    sig = np.stack([(k + 1) * 0.1 * np.sin(2 * np.pi * t) for k in range(12)], axis=1)
    wfdb.wrsamp(record.name, fs=100, units=["mV"] * 12, sig_name=PTBXL_LEADS,
                p_signal=sig + 0.001 * seed, fmt=["16"] * 12, adc_gain=[1000.0] * 12,
                baseline=[0] * 12, write_dir=str(record.parent))


@pytest.fixture
def ptbxl_100_only(tmp_path) -> Path:
    """A copy with only records100/ (the common smaller download)."""
    root = write_ptbxl_fixture(tmp_path / "ptbxl")
    shutil.rmtree(root / "records500")
    db = pd.read_csv(root / "ptbxl_database.csv", dtype=str)
    for ecg, lr in zip(db["ecg_id"], db["filename_lr"], strict=True):
        if ecg != "4":  # the fixture's missing record stays missing
            write_100hz(root / lr, int(ecg))
    return root


def test_ptbxl_records100_only(ptbxl_100_only, tmp_path):
    out = adapt_ptbxl(ptbxl_100_only, tmp_path / "o100", rate=100, quiet=True)
    src = account(out)["sources"]["ptbxl_database.csv"]
    assert src["kept"] == 4 and src["dropped"] == {"missing file": 1, "unparseable time": 1}
    assert account(out)["notes"]["records_by_rate_hz"] == {"500": 0, "100": 4}
    assert validate_manifest(out, deep=True) == []  # 100 Hz read back at 500 Hz
    # asked for 500 Hz: the same records are taken at 100 Hz, and it says so
    fall = adapt_ptbxl(ptbxl_100_only, tmp_path / "o500", rate=500, quiet=True)
    assert account(fall)["sources"]["ptbxl_database.csv"]["kept"] == 4  # was 0: all "missing"
    assert "4 records exist only at 100 Hz" in account(fall)["messages"][0]
    with pytest.raises(ValueError, match="expected 500 or 100"):
        adapt_ptbxl(ptbxl_100_only, tmp_path / "x", rate=250, quiet=True)


def test_mimic_iv_ecg_demo_layout(tmp_path):
    """No machine_measurements.csv, no pNNNN group folder, 9-digit study ids, seconds."""
    records = ((A, "107143276", "2180-07-23 08:44:31", True, []),
               (C, "112000001", "2182-01-01 12:00:05", True, []))
    ecg = write_mimic_ecg(tmp_path / "demo", records)
    (ecg / "machine_measurements.csv").unlink()
    for subject, *_ in records:  # the demo keeps no files/pNNNN/ level
        src = ecg / "files" / f"p{subject[:4]}" / f"p{subject}"
        shutil.move(src, ecg / "files" / f"p{subject}")
    out = adapt_mimic(MimicOptions(out=tmp_path / "o", ecg=ecg), quiet=True)
    m = read_manifest(out)
    assert m.samples["modality"].tolist() == ["ecg_waveform"] * 2 and m.labels.empty
    assert m.samples["study_id"].tolist() == ["ecg:107143276", "ecg:112000001"]
    assert str(m.samples["acquired_at"].iloc[0]) == "2180-07-23 08:44:31"
    acc = account(out)
    assert acc["notes"]["ecg_waveform_only"] == 2
    assert "waveform-only" in acc["messages"][0]
    assert validate_manifest(out, deep=True) == []


def _measurement_study(tmp_path: Path, name: str, cols: list[str], rows: list[dict]) -> Path:
    echo = write_mimic_echo(tmp_path / "echo")
    (echo / "structured-measurement.csv.gz").unlink()
    write_csv(echo / name, cols, rows)
    return echo


def lvef_labels(out: Path) -> dict[str, float]:
    lab = read_manifest(out).labels
    return dict(zip(lab["study_id"], lab["value"], strict=True))


def test_mimic_iv_echo_new_release_long_layout(tmp_path):
    cols = ["subject_id", "measurement_id", "measurement_datetime", "test_type", "measurement",
            "result", "unit"]
    rows = [{"subject_id": A, "measurement_id": "1001", "measurement_datetime":
             "2180-07-25 11:00:00", "measurement": m, "result": v, "unit": "%"}
            for m, v in (("lvef", "55"), ("lvef_upper", "60"), ("biplane_lvef", "52"))]
    rows += [{"subject_id": C, "measurement_id": "1002", "measurement_datetime":
              "2182-03-01 09:00:00", "measurement": "biplane_lvef", "result": "41", "unit": "%"}]
    echo = _measurement_study(tmp_path, "structured_measurement.csv", cols, rows)
    out = adapt_mimic(MimicOptions(out=tmp_path / "o", echo=echo), quiet=True)
    assert lvef_labels(out) == {"echo:94106955": 57.5, "echo:95000001": 41.0}
    acc = account(out)
    assert acc["notes"]["echo_measurements"] == "structured_measurement.csv: long layout"
    assert acc["notes"]["lvef_variable_used"] == {"lvef": 1, "biplane_lvef": 1}
    assert acc["sources"]["structured_measurement.csv lvef"]["dropped"] == {"duplicate": 1}


def test_mimic_iv_echo_wide_layout(tmp_path):
    cols = ["subject_id", "measurement_id", "measurement_datetime", "lvef", "lvef_upper",
            "biplane_lvef", "lvef_3d", "lvedd"]
    rows = [{"subject_id": A, "measurement_id": "1001", "measurement_datetime":
             "2180-07-25 11:00:00", "lvef": "50", "lvef_upper": "55", "lvedd": "4.8"},
            {"subject_id": C, "measurement_id": "1002", "measurement_datetime":
             "2182-03-01 09:00:00", "lvef_3d": "33"}]
    echo = _measurement_study(tmp_path, "structured_measurement.csv.gz", cols, rows)
    out = adapt_mimic(MimicOptions(out=tmp_path / "o", echo=echo), quiet=True)
    assert lvef_labels(out) == {"echo:94106955": 52.5, "echo:95000001": 33.0}
    acc = account(out)
    assert acc["notes"]["echo_measurements"] == "structured_measurement.csv.gz: wide layout"
    assert "wide layout" in " ".join(acc["messages"])
    text = read_manifest(out).samples.query("modality == 'echo_text'")["text"].tolist()
    assert any("lvedd: 4.8." in t for t in text)


def test_echo_cine_without_timing_passes_adapter_and_deep_validation(tmp_path):
    """A real 2-frame palette-colour ultrasound without FrameTime: kept, said, readable."""
    from pydicom.data import get_testdata_file

    echo = write_mimic_echo(tmp_path / "echo")
    rel = f"files/p{A[:2]}/p{A}/s94106955/94106955_0001.dcm"
    shutil.copy(get_testdata_file("OBXXXX1A_2frame.dcm", download=False), echo / rel)
    with pytest.warns(NoFrameRateWarning):  # the reader says it too, naming the file
        out = adapt_mimic(MimicOptions(out=tmp_path / "o", echo=echo), quiet=True)
        problems = validate_manifest(out, deep=True)
    assert problems == []  # before: "cannot tell its fps"
    acc = account(out)
    assert acc["notes"]["echo_videos_default_fps"] == 1
    assert "read at the default 30 fps" in " ".join(acc["messages"])
    assert (read_manifest(out).samples["path"].str.endswith("94106955_0001.dcm")).any()
