"""``clerc adapt mimic`` on a tiny MIMIC copy in the true formats (tests/adapter_fixtures.py)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from clerc.adapters.common import assign_splits
from clerc.adapters.mimic import MimicOptions, adapt_mimic
from clerc.cli import main
from clerc.data.manifest import read_manifest
from clerc.data.validate import validate_manifest
from tests.adapter_fixtures import A, B, C, write_mimic_fixture

T = pd.Timestamp


@pytest.fixture(scope="module")
def mimic(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_mimic_fixture(tmp_path_factory.mktemp("mimic"))


@pytest.fixture(scope="module")
def adapted(mimic: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The full adapter through the CLI, with a 30-day gap and seed 0."""
    out = tmp_path_factory.mktemp("mimic_out")
    argv = ["adapt", "mimic", "--ecg", str(mimic["ecg"]), "--cxr", str(mimic["cxr"]),
            "--echo", str(mimic["echo"]), "--hosp", str(mimic["hosp"]), "--out", str(out),
            "--max-gap-days", "30", "--seed", "0"]
    assert main(argv) == 0
    return out


def run(mimic: dict[str, Path], out: Path, **kw) -> Path:
    opts = MimicOptions(out=out, **{k: mimic[k] for k in ("ecg", "cxr", "echo", "hosp")}, **kw)
    return adapt_mimic(opts, quiet=True)


def test_manifest_is_valid_and_decodes(adapted: Path) -> None:
    assert validate_manifest(adapted, deep=True) == []


def test_samples_exactly(adapted: Path) -> None:
    s = read_manifest(adapted).samples
    got = {r.sample_id: (r.patient_id, r.study_id, r.modality, r.acquired_at)
           for r in s.itertuples()}
    assert got == {
        "ecg:40689238:waveform": (A, "ecg:40689238", "ecg_waveform", T("2180-07-23 08:44")),
        "ecg:40689239:waveform": (A, "ecg:40689239", "ecg_waveform", T("2180-07-24 09:00")),
        "ecg:42000001:waveform": (C, "ecg:42000001", "ecg_waveform", T("2182-01-01 12:00")),
        "ecg:40689238:text": (A, "ecg:40689238", "ecg_text", T("2180-07-23 08:44")),
        "ecg:40689239:text": (A, "ecg:40689239", "ecg_text", T("2180-07-24 09:00")),
        "ecg:41000001:text": (B, "ecg:41000001", "ecg_text", T("2181-01-10 10:00")),
        "ecg:42000001:text": (C, "ecg:42000001", "ecg_text", T("2182-01-01 12:00")),
        "cxr:02aa804e-bde0afdd-112c0b34-7bc16630-4e384014":
            (A, "cxr:50414267", "cxr_image", T("2180-05-06 00:45:12.5")),
        "cxr:2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab":
            (B, "cxr:57375967", "cxr_image", T("2181-01-12 14:30:00")),
        "cxr:50414267:text": (A, "cxr:50414267", "cxr_text", T("2180-05-06 00:45:12.5")),
        "cxr:57375967:text": (B, "cxr:57375967", "cxr_text", T("2181-01-12 14:30:00")),
        "echo:94106955:94106955_0001": (A, "echo:94106955", "echo_video", T("2180-07-25 10:00")),
        "echo:95000001:95000001_0001": (C, "echo:95000001", "echo_video", T("2182-03-01 08:00")),
        "echo:m1001:text": (A, "echo:94106955", "echo_text", T("2180-07-25 11:00")),
        "echo:m1002:text": (C, "echo:95000001", "echo_text", T("2182-03-01 09:00")),
        "echo:m1004:text": (C, "echo:m1004", "echo_text", T("2185-06-01 10:00")),
    }


def test_paths_and_texts(adapted: Path, mimic: dict[str, Path]) -> None:
    s = read_manifest(adapted).samples.set_index("sample_id")
    wave = Path(s.loc["ecg:40689238:waveform", "path"])
    assert wave == mimic["ecg"].resolve() / "files/p1000/p10000032/s40689238/40689238.hea"
    assert s.loc["ecg:40689238:text", "text"] == "Sinus rhythm. Right bundle branch block"
    assert pd.isna(s.loc["ecg:40689238:text", "path"])
    assert s.loc["cxr:50414267:text", "text"] == ("There is a focal consolidation at the left "
                                                 "lung base. Left lower lobe pneumonia.")
    assert s.loc["cxr:57375967:text", "text"] == "Lungs are clear without edema."
    assert s.loc["echo:m1001:text", "text"] == ("The left ventricular ejection fraction is "
                                               "estimated to be 57.5%. lvidd: 4.5 cm.")
    assert Path(s.loc["echo:95000001:95000001_0001", "path"]).suffix == ".dcm"


def test_labels_exactly(adapted: Path) -> None:
    lab = read_manifest(adapted).labels
    got = sorted((r.patient_id, r.study_id, r.task, r.value, r.source_modality)
                 for r in lab.itertuples())
    assert got == sorted([
        (A, "ecg:40689238", "rbbb", 1.0, "ecg_waveform"),
        (A, "ecg:40689238", "lbbb", 0.0, "ecg_waveform"),
        (A, "ecg:40689238", "pacemaker", 0.0, "ecg_waveform"),
        (A, "ecg:40689239", "rbbb", 0.0, "ecg_waveform"),  # incomplete block
        (A, "ecg:40689239", "lbbb", 0.0, "ecg_waveform"),
        (A, "ecg:40689239", "pacemaker", 0.0, "ecg_waveform"),
        (C, "ecg:42000001", "rbbb", 0.0, "ecg_waveform"),
        (C, "ecg:42000001", "lbbb", 1.0, "ecg_waveform"),
        (C, "ecg:42000001", "pacemaker", 0.0, "ecg_waveform"),
        (A, "cxr:50414267", "consolidation", 1.0, "cxr_image"),
        (B, "cxr:57375967", "edema", 0.0, "cxr_image"),
        (A, "echo:94106955", "lvef", 57.5, "echo_video"),
        (C, "echo:95000001", "lvef", 60.0, "echo_video"),
    ])
    cxr = lab[lab["task"] == "consolidation"].iloc[0]
    assert cxr["measured_at"] == T("2180-05-06 00:45:12.5")


def test_splits_respect_official_and_seed(adapted: Path) -> None:
    split = read_manifest(adapted).patient_split().to_dict()
    assert split == {A: "test", B: "val", C: assign_splits([C], seed=0)[C]}


def test_patients_from_hosp(adapted: Path) -> None:
    p = read_manifest(adapted).patients.set_index("patient_id")
    assert list(p.index) == [A, B, C]
    assert p.loc[A, ["sex", "anchor_age"]].tolist() == ["F", 52.0]
    assert p.loc[A, "anchor_time"] == T("2180-01-01")
    assert p.loc[B, "sex"] == "M" and p.loc[B, "anchor_time"] == T("2181-01-01")
    assert pd.isna(p.loc[C, "sex"]) and pd.isna(p.loc[C, "anchor_age"])


def test_account_of_dropped_rows(adapted: Path) -> None:
    acc = json.loads((adapted / "account.json").read_text())
    dropped = {k: (v["read"], v["kept"], v["dropped"]) for k, v in acc["sources"].items()}
    assert dropped == {
        "record_list.csv": (6, 3, {"missing file": 1, "unparseable time": 1, "missing id": 1}),
        "machine_measurements.csv": (6, 4, {"no time": 1, "missing id": 1}),
        "mimic-cxr-2.0.0-metadata.csv": (3, 2, {"non-frontal view": 1}),
        "cxr reports (files/p*/p*/s*.txt)": (2, 2, {}),
        "mimic-cxr-2.0.0-chexpert.csv Consolidation": (2, 1, {"no label": 1}),
        "mimic-cxr-2.0.0-chexpert.csv Edema": (2, 1, {"uncertain label": 1}),
        "mimic-cxr-2.0.0-split.csv": (3, 3, {}),
        "echo-study-list.csv": (2, 2, {}),
        "echo-record-list.csv": (4, 2, {"missing file": 1, "single-frame still": 1}),
        "structured-measurement.csv.gz lvef": (4, 3, {"unparseable value": 1}),
        "echo reports (built per measurement set)": (4, 3, {"empty report": 1}),
        "labels rbbb": (4, 3, {"beyond the time gap": 1}),  # B's ECG file is missing
        "labels lbbb": (4, 3, {"beyond the time gap": 1}),
        "labels pacemaker": (4, 3, {"beyond the time gap": 1}),
        "labels consolidation": (1, 1, {}),
        "labels edema": (1, 1, {}),
        "labels lvef": (3, 2, {"beyond the time gap": 1}),  # 1004: 3 years after a video
        "patients.csv.gz": (3, 2, {"patient has no sample": 1}),
    }
    assert acc["settings"]["max_gap_days"] == 30
    assert acc["settings"]["uncertain"] == "drop"
    still = acc["sources"]["echo-record-list.csv"]["examples"]["single-frame still"][0]
    assert "94106955_0002.dcm" in still
    expected = Counter(["test", "val", assign_splits([C], seed=0)[C]])
    assert acc["outputs"]["splits"] == dict(expected)
    assert acc["outputs"]["samples"]["ecg_waveform"] == 3


def test_no_gap_keeps_every_label(mimic: dict[str, Path], tmp_path: Path) -> None:
    lab = read_manifest(run(mimic, tmp_path)).labels
    assert len(lab) == 17
    assert set(lab.loc[lab["patient_id"] == B, "task"]) == {"rbbb", "lbbb", "pacemaker", "edema"}
    assert lab.loc[(lab["patient_id"] == B) & (lab["task"] == "pacemaker"), "value"].item() == 1


@pytest.mark.parametrize(("rule", "value"), [("positive", 1.0), ("negative", 0.0)])
def test_uncertain_rule(mimic: dict[str, Path], tmp_path: Path, rule: str, value: float) -> None:
    out = run(mimic, tmp_path, uncertain=rule)
    lab = read_manifest(out).labels
    edema = lab[(lab["patient_id"] == A) & (lab["task"] == "edema")]
    assert edema["value"].tolist() == [value]
    assert validate_manifest(out) == []


def test_all_views_and_other_seed(mimic: dict[str, Path], tmp_path: Path) -> None:
    out = run(mimic, tmp_path, all_views=True, seed=7)
    m = read_manifest(out)
    assert (m.samples["modality"] == "cxr_image").sum() == 3
    split = m.patient_split().to_dict()
    assert (split[A], split[B], split[C]) == ("test", "val", assign_splits([C], seed=7)[C])
    assert validate_manifest(out) == []


def test_single_module(mimic: dict[str, Path], tmp_path: Path) -> None:
    out = adapt_mimic(MimicOptions(out=tmp_path, ecg=mimic["ecg"]), quiet=True)
    m = read_manifest(out)
    assert set(m.samples["modality"]) == {"ecg_waveform", "ecg_text"}
    assert sorted(m.patients["patient_id"]) == [A, B, C]
    assert m.patients["sex"].isna().all()
    assert validate_manifest(out) == []


def test_cli_refuses_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["adapt", "mimic", "--out", str(tmp_path / "o")]) == 2
    assert "at least one of --ecg" in capsys.readouterr().err
    assert main(["adapt", "mimic", "--ecg", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_missing_csv_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "ecg").mkdir()
    with pytest.raises(FileNotFoundError, match="record_list.csv"):
        adapt_mimic(MimicOptions(out=tmp_path / "o", ecg=tmp_path / "ecg"), quiet=True)


def test_extra_patients_for_end_to_end(tmp_path: Path) -> None:
    roots = write_mimic_fixture(tmp_path / "data", extra_patients=4)
    out = adapt_mimic(MimicOptions(out=tmp_path / "out", max_gap_days=1, **roots), quiet=True)
    assert validate_manifest(out) == []
    m = read_manifest(out)
    extra = m.samples[m.samples["patient_id"].str.startswith("110000")]
    assert extra.groupby("patient_id")["modality"].nunique().tolist() == [6, 6, 6, 6]
    lab = m.labels[m.labels["patient_id"].str.startswith("110000")]
    assert lab["task"].value_counts().to_dict() == {t: 4 for t in (
        "rbbb", "lbbb", "pacemaker", "consolidation", "edema", "lvef")}


def test_reports_from_a_separate_root(tmp_path: Path) -> None:
    from tests.adapter_fixtures import write_mimic_cxr

    cxr = write_mimic_cxr(tmp_path / "cxr-jpg")
    reports = tmp_path / "cxr-reports"
    for txt in sorted((cxr / "files").rglob("s*.txt")):
        target = reports / txt.relative_to(cxr)
        target.parent.mkdir(parents=True, exist_ok=True)
        txt.rename(target)
    without = adapt_mimic(MimicOptions(out=tmp_path / "a", cxr=cxr), quiet=True)
    acc = json.loads((without / "account.json").read_text())["sources"]
    assert acc["cxr reports (files/p*/p*/s*.txt)"]["dropped"] == {"missing file": 2}
    out = adapt_mimic(MimicOptions(out=tmp_path / "b", cxr=cxr, cxr_reports=reports), quiet=True)
    texts = read_manifest(out).samples.query("modality == 'cxr_text'")["text"].tolist()
    assert texts == ["There is a focal consolidation at the left lung base. Left lower lobe "
                     "pneumonia.", "Lungs are clear without edema."]
    assert validate_manifest(out) == []


def test_echo_without_measurements(tmp_path: Path) -> None:
    from tests.adapter_fixtures import write_mimic_echo

    echo = write_mimic_echo(tmp_path / "echo")
    (echo / "structured-measurement.csv.gz").unlink()
    out = adapt_mimic(MimicOptions(out=tmp_path / "o", echo=echo), quiet=True)
    m = read_manifest(out)
    assert m.samples["modality"].tolist() == ["echo_video", "echo_video"] and m.labels.empty
    notes = json.loads((out / "account.json").read_text())["notes"]
    assert "structured-measurement.csv.gz not found" in notes["echo_measurements"]
    assert validate_manifest(out) == []
