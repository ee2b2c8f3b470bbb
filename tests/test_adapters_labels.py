"""Label rules, CXR report sections and times, the account and the patient split helper."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from clerc.adapters.common import (
    MISSING_FILE,
    Account,
    assign_splits,
    drop_beyond_gap,
    id_text,
    labels_frame,
    parse_time,
    samples_frame,
)
from clerc.adapters.labels import ecg_labels, lvef_sentence, parse_lvef
from clerc.adapters.mimic_cxr import label_value, report_sections, study_time
from clerc.adapters.ptbxl import language, scp_labels

RBBB_POSITIVE = [
    "Right bundle branch block",
    "Sinus rhythm. RBBB with left anterior fascicular block",
    "Complete right bundle branch block",
    "right bundle-branch block",
    "Incomplete left bundle branch block. Right bundle branch block",
]
RBBB_NEGATIVE = [
    "Incomplete right bundle branch block",
    "Sinus rhythm. incomplete RBBB",
    "Partial right bundle branch block",
    "Left bundle branch block",
    "Sinus rhythm. Normal ECG",
    "IRBBB",
]
LBBB_POSITIVE = ["Left bundle branch block", "LBBB", "Sinus rhythm. Left bundle-branch block"]
LBBB_NEGATIVE = ["Incomplete left bundle branch block", "Incomplete LBBB",
                 "Left anterior fascicular block", "Right bundle branch block"]
PACED_POSITIVE = ["Atrial-paced rhythm", "Ventricular pacing", "Demand pacing",
                  "Pacemaker rhythm - no further analysis", "AV dual-paced rhythm",
                  "Electronic ventricular PACED complexes"]
PACED_NEGATIVE = ["Sinus rhythm", "Wandering atrial pacemaker", "Wandering pacemaker",
                  "Atrial fibrillation with rapid ventricular response", "Space-occupying"]


@pytest.mark.parametrize("text", RBBB_POSITIVE)
def test_rbbb_positive(text: str) -> None:
    assert ecg_labels(text)["rbbb"] == 1.0


@pytest.mark.parametrize("text", RBBB_NEGATIVE)
def test_rbbb_negative(text: str) -> None:
    assert ecg_labels(text)["rbbb"] == 0.0


@pytest.mark.parametrize("text", LBBB_POSITIVE)
def test_lbbb_positive(text: str) -> None:
    assert ecg_labels(text)["lbbb"] == 1.0


@pytest.mark.parametrize("text", LBBB_NEGATIVE)
def test_lbbb_negative(text: str) -> None:
    assert ecg_labels(text)["lbbb"] == 0.0


@pytest.mark.parametrize("text", PACED_POSITIVE)
def test_pacemaker_positive(text: str) -> None:
    assert ecg_labels(text)["pacemaker"] == 1.0


@pytest.mark.parametrize("text", PACED_NEGATIVE)
def test_pacemaker_negative(text: str) -> None:
    assert ecg_labels(text)["pacemaker"] == 0.0


@pytest.mark.parametrize("text", [None, "", "   "])
def test_empty_report_has_no_labels(text: str | None) -> None:
    assert ecg_labels(text) == {}


@pytest.mark.parametrize(("text", "value"), [
    ("55", 55.0), ("55%", 55.0), (" 55 % ", 55.0), ("55-60", 57.5), ("55 - 60%", 57.5),
    ("50 to 55", 52.5), ("62.5", 62.5), ("0", 0.0), ("100", 100.0),
    (">55", None), ("normal", None), ("", None), (None, None), ("150", None), ("55-", None),
])
def test_parse_lvef(text: str | None, value: float | None) -> None:
    assert parse_lvef(text) == value


def test_lvef_sentence() -> None:
    assert lvef_sentence(57.5) == ("The left ventricular ejection fraction is estimated to be "
                                   "57.5%.")
    assert lvef_sentence(55.0).endswith("be 55%.")


@pytest.mark.parametrize(("date", "time", "expected"), [
    ("21800506", "213014.531", "2180-05-06 21:30:14.531"),
    ("21800506", "4512.5", "2180-05-06 00:45:12.5"),  # lost two leading zeros
    ("21800506", "12.0", "2180-05-06 00:00:12"),
    ("21800506", "93000", "2180-05-06 09:30:00"),
    ("21800506.0", "93000.0", "2180-05-06 09:30:00"),
])
def test_study_time_pads_lost_zeros(date: str, time: str, expected: str) -> None:
    assert study_time(date, time) == pd.Timestamp(expected)


@pytest.mark.parametrize(("date", "time"), [
    ("21800506", ""), ("", "93000"), ("2180056", "93000"), ("21801306", "93000"),
    ("21800506", "1234567"), ("21800506", "ab")])
def test_study_time_rejects_bad_values(date: str, time: str) -> None:
    assert study_time(date, time) is None


def test_report_sections_findings_then_impression() -> None:
    text = (" FINAL REPORT\n INDICATION: Cough.\n\n IMPRESSION:\n No pneumonia.\n\n"
            " FINDINGS:\n Lungs are\n clear.\n")
    assert report_sections(text) == "Lungs are clear. No pneumonia."


def test_report_sections_falls_back_to_last_paragraph() -> None:
    assert report_sections("WET READ: none\n\nFirst para.\n\n  Last\n paragraph.\n\n") == \
        "Last paragraph."
    assert report_sections("   \n\n ") is None


@pytest.mark.parametrize(("raw", "rule", "expected"), [
    ("1.0", "drop", (1.0, None)), ("0.0", "drop", (0.0, None)),
    ("-1.0", "drop", (None, "uncertain label")), ("-1.0", "positive", (1.0, None)),
    ("-1.0", "negative", (0.0, None)), (None, "positive", (None, "no label")),
    ("", "drop", (None, "no label")), ("2.0", "drop", (None, "unparseable value")),
])
def test_chexpert_value_rule(raw: str | None, rule: str, expected: tuple) -> None:
    assert label_value(raw, rule) == expected


def test_scp_codes_presence_is_positive() -> None:
    assert scp_labels("{'CRBBB': 100.0, 'SR': 0.0}") == {"rbbb": 1.0, "lbbb": 0.0,
                                                         "pacemaker": 0.0}
    assert scp_labels("{'PACE': 0.0, 'CLBBB': 50.0}") == {"rbbb": 0.0, "lbbb": 1.0,
                                                          "pacemaker": 1.0}
    assert scp_labels("{'IRBBB': 100.0}") == {"rbbb": 0.0, "lbbb": 0.0, "pacemaker": 0.0}
    assert scp_labels("{'NORM': 100.0") is None
    assert scp_labels("['CRBBB']") is None


def test_report_language() -> None:
    assert language("sinusrhythmus lagetyp normal") == "de"
    assert language("sinus rhythm. normal ecg") == "en"
    assert language("12345") == "unknown"


def test_ids_and_times() -> None:
    assert id_text("15709.0") == "15709"
    assert id_text(" 42 ") == "42"
    assert id_text(float("nan")) is None
    assert parse_time("2180-07-23 08:44:00") == pd.Timestamp("2180-07-23 08:44:00")
    assert parse_time("not a time") is None
    assert parse_time(None) is None


def test_assign_splits_respects_official_and_is_reproducible() -> None:
    ids = [str(10_000_000 + i) for i in range(2000)]
    official = {ids[0]: "test", ids[1]: "val", ids[2]: "train"}
    a = assign_splits(ids, seed=3, official=official)
    assert a == assign_splits(list(reversed(ids)), seed=3, official=official)
    assert [a[i] for i in ids[:3]] == ["test", "val", "train"]
    counts = pd.Series(a).value_counts(normalize=True)
    assert 0.77 < counts["train"] < 0.83 and 0.08 < counts["val"] < 0.12
    b = assign_splits(ids, seed=4, official=official)
    assert [b[i] for i in ids[:3]] == ["test", "val", "train"]
    assert sum(a[i] != b[i] for i in ids) > 300  # another seed, other splits
    sub = assign_splits(ids[:100], seed=3)  # a patient's split ignores the other patients
    assert all(sub[i] == assign_splits([i], seed=3)[i] for i in ids[3:100])


def test_assign_splits_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="summing to 1"):
        assign_splits(["1"], 0, fractions=(0.5, 0.1, 0.1))
    with pytest.raises(ValueError, match="validate"):
        assign_splits(["1"], 0, official={"1": "validate"})


def test_account_counts_examples_and_json(tmp_path) -> None:
    acc = Account("demo", {"seed": 1})
    acc.read("a.csv", 7)
    acc.keep("a.csv", 1)
    for i in range(6):
        acc.drop("a.csv", MISSING_FILE, f"row {i}")
    with pytest.raises(ValueError, match="unknown drop reason"):
        acc.drop("a.csv", "because", "row 9")
    data = json.loads(acc.write(tmp_path / "account.json").read_text())
    src = data["sources"]["a.csv"]
    assert (src["read"], src["kept"], src["dropped"]) == (7, 1, {"missing file": 6})
    assert src["examples"]["missing file"] == [f"row {i}" for i in range(5)]
    assert data["settings"] == {"seed": 1}


def test_account_shows_rows_read_live_per_source() -> None:
    from rich.progress import Progress

    progress = Progress(disable=True)
    acc = Account("demo", progress=progress)
    acc.read("a.csv", 3)
    acc.read("b.csv")
    acc.read("a.csv")
    shown = {t.description: t.completed for t in progress.tasks}
    assert shown == {"reading a.csv": 4, "reading b.csv": 1}


def test_gap_filter_counts_what_it_drops() -> None:
    t = pd.Timestamp("2180-01-01")
    samples = samples_frame([
        {"patient_id": "1", "modality": "echo_video", "acquired_at": t},
        {"patient_id": "1", "modality": "ecg_waveform", "acquired_at": t + pd.Timedelta(
            days=40)},  # another modality near the second label does not count
        {"patient_id": "3", "modality": "echo_video", "acquired_at": t}])
    labels = labels_frame([
        {"patient_id": "1", "task": "lvef", "value": 50.0, "measured_at": t + pd.Timedelta(
            days=3), "source_modality": "echo_video"},
        {"patient_id": "1", "task": "lvef", "value": 40.0, "measured_at": t + pd.Timedelta(
            days=40), "source_modality": "echo_video"},
        {"patient_id": "2", "task": "lvef", "value": 30.0, "measured_at": t,
         "source_modality": "echo_video"},
        {"patient_id": "3", "task": "lvef", "value": 20.0, "measured_at": t - pd.Timedelta(
            days=30), "source_modality": "echo_video"}])  # exactly at the gap: kept
    acc = Account("demo")
    kept = drop_beyond_gap(samples, labels, 30, acc)
    assert kept["value"].tolist() == [50.0, 20.0]
    assert acc.dropped("labels lvef") == {"beyond the time gap": 2}
    assert acc.to_dict()["sources"]["labels lvef"]["kept"] == 2
    assert drop_beyond_gap(samples, labels, None, acc) is labels
