"""Manifest validation: every kind of problem is found at the right table, row and column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clerc.cli import main
from clerc.data.manifest import read_manifest, write_manifest
from clerc.data.validate import Problem, summarise, unknown_label_tasks, validate_manifest


def write_valid(root: Path) -> Path:
    """A small valid manifest: 3 patients, files for every non-text sample."""
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "v.npy", np.full((4, 112, 112), 9, np.uint8))
    np.save(root / "e.npy", np.sin(np.arange(5000) / 50.0)[None].repeat(12, 0))
    np.save(root / "x.npy", np.full((256, 256), 3, np.uint8))
    (root / "r.txt").write_text("Normal ECG.")
    rows = [("p1", "echo_video", "v.npy", None, "train"), ("p1", "echo_text", None, "ok",
            "train"), ("p1", "ecg_waveform", "e.npy", None, "train"),
            ("p2", "ecg_waveform", "e.npy", None, "val"), ("p2", "ecg_text", "r.txt", None,
            "val"), ("p3", "cxr_image", "x.npy", None, "test")]
    samples = pd.DataFrame([
        {"patient_id": p, "study_id": f"st{i}", "sample_id": f"s{i}", "modality": m,
         "acquired_at": pd.Timestamp("2020-01-01") + pd.Timedelta(days=i), "path": path,
         "text": text, "split": split} for i, (p, m, path, text, split) in enumerate(rows)])
    labels = pd.DataFrame({"patient_id": ["p1", "p2"], "study_id": ["st0", pd.NA],
                           "task": ["lvef", "rbbb"], "value": [55.0, 1.0],
                           "measured_at": ["2020-01-01", "2020-01-04"],
                           "source_modality": ["echo_video", "ecg_waveform"]})
    patients = pd.DataFrame({"patient_id": ["p1", "p2", "p3"], "sex": ["F", "M", pd.NA],
                             "anchor_age": [60.0, 70.0, 50.0],
                             "anchor_time": ["2020-01-01"] * 3, "race": ["a", "b", pd.NA]})
    return write_manifest(root, samples, labels, patients)


def edit(root: Path, table: str, fn) -> None:
    """Rewrite a raw table (no schema cast) so invalid values survive."""
    df = pd.read_parquet(root / f"{table}.parquet")
    df = fn(df)
    df.to_parquet(root / f"{table}.parquet", index=False)


def where(problems: list[Problem]) -> set[tuple]:
    return {(p.table, p.row, p.column) for p in problems}


def set_cell(table_row: int, column: str, value):
    def fn(df):
        if isinstance(value, str):  # a string in a typed column: store the column as text
            df[column] = df[column].astype("string")
        else:
            df = df.astype({column: object})
        df.at[table_row, column] = value
        return df
    return fn


def test_valid_manifest_has_no_problems(tmp_path):
    assert validate_manifest(write_valid(tmp_path)) == []
    assert validate_manifest(tmp_path, deep=True) == []


@pytest.mark.parametrize(("table", "row", "column", "value", "message"), [
    ("samples", 2, "modality", "ecg_wavefrom", "did you mean 'ecg_waveform'"),
    ("samples", 5, "split", "testing", "invalid split"),
    ("samples", 4, "modality", None, "unknown modality"),
    ("samples", 0, "patient_id", None, "missing patient_id"),
    ("samples", 2, "acquired_at", None, "missing time"),
    ("samples", 1, "sample_id", "s0", "duplicate sample_id (first at row 0)"),
    ("samples", 3, "acquired_at", "yesterday-ish", "cannot parse"),
    ("samples", 3, "patient_id", "p9", "not in patients.parquet"),
    ("samples", 0, "path", "gone.npy", "file not found"),
    ("labels", 1, "patient_id", "p404", "not in patients.parquet"),
    ("labels", 0, "value", float("inf"), "non-finite label value"),
    ("labels", 0, "value", "high", "not a number"),
    ("labels", 1, "measured_at", "31/31/2020", "cannot parse"),
    ("labels", 0, "source_modality", "echo_text", "diagnostic modality"),
    ("patients", 2, "sex", "female", "expected F, M"),
    ("patients", 1, "anchor_age", -3.0, "non-negative age"),
    ("patients", 1, "patient_id", "p1", "duplicate patient_id"),
])
def test_each_problem_is_located(tmp_path, table, row, column, value, message):
    root = write_valid(tmp_path)
    edit(root, table, set_cell(row, column, value))
    problems = validate_manifest(root)
    hits = [p for p in problems if (p.table, p.row, p.column) == (table, row, column)]
    assert hits, problems
    assert any(message in p.message for p in hits), hits
    assert all(p.row is not None for p in problems)


def test_nan_label_value_reported(tmp_path):
    root = write_valid(tmp_path)
    edit(root, "labels", set_cell(1, "value", float("nan")))
    assert ("labels", 1, "value") in where(validate_manifest(root))


def test_patient_in_two_splits(tmp_path):
    root = write_valid(tmp_path)
    edit(root, "samples", set_cell(2, "split", "test"))
    (p,) = validate_manifest(root)
    assert (p.table, p.row, p.column, p.value) == ("samples", 2, "split", "test")
    assert "p1" in p.message and "test, train" in p.message


def test_sample_without_path_or_text_and_empty_file(tmp_path):
    root = write_valid(tmp_path)
    edit(root, "samples", set_cell(1, "text", None))
    edit(root, "samples", set_cell(0, "path", None))
    edit(root, "samples", set_cell(0, "text", "a video given as text"))
    (root / "x.npy").write_bytes(b"")
    got = {(p.row, p.column): p.message for p in validate_manifest(root)}
    assert "neither a path nor a text" in got[(1, "path")]
    assert "needs a file path" in got[(0, "path")]
    assert "file is empty" in got[(5, "path")]


def test_missing_table_and_column(tmp_path):
    root = write_valid(tmp_path)
    (root / "labels.parquet").unlink()
    edit(root, "samples", lambda df: df.drop(columns=["split"]))
    found = where(validate_manifest(root))
    assert ("labels", None, None) in found and ("samples", None, "split") in found


def test_missing_directory_is_one_problem(tmp_path):
    (p,) = validate_manifest(tmp_path / "nope")
    assert p.value == str(tmp_path / "nope") and p.message == "no such directory"


def test_wfdb_record_path_checks_header(tmp_path):
    root = write_valid(tmp_path)
    edit(root, "samples", set_cell(2, "path", "records/r1"))
    (p,) = validate_manifest(root)
    assert (p.row, p.column) == (2, "path") and "r1.hea" in p.message


def test_deep_finds_corrupt_and_flat(tmp_path):
    root = write_valid(tmp_path)
    (root / "v.npy").write_bytes(b"\x93NUMPY broken")
    np.save(root / "flat.npy", np.zeros((12, 5000), np.float32))
    edit(root, "samples", set_cell(3, "path", "flat.npy"))
    assert validate_manifest(root) == []
    got = {p.row: p.message for p in validate_manifest(root, deep=True)}
    assert "v.npy" in got[0] and "flat" in got[3]


def test_summary_counts(tmp_path):
    s = summarise(read_manifest(write_valid(tmp_path)))
    assert s.samples.loc["ecg_waveform"].tolist() == [1, 1, 0, 2]
    assert s.samples["total"].sum() == 6
    assert s.patients.loc["ecg_waveform", "echo_video"] == 1
    assert s.patients.loc["ecg_waveform", "ecg_waveform"] == 2
    assert s.patients.loc["cxr_image", "ecg_text"] == 0


def test_cli_exit_codes(tmp_path, capsys):
    root = write_valid(tmp_path)
    assert main(["validate", str(root)]) == 0
    assert "Patients with each pair" in capsys.readouterr().out
    edit(root, "samples", set_cell(5, "split", "holdout"))
    assert main(["validate", str(root), "--deep"]) == 1
    out = capsys.readouterr().out
    assert "holdout" in out and "invalid split" in out


def test_read_manifest_names_a_missing_column_and_a_bad_file(tmp_path):
    root = write_valid(tmp_path)
    edit(root, "samples", lambda df: df.rename(columns={"modality": "Modality"}))
    with pytest.raises(ValueError, match=r"samples\.parquet: required column 'modality' "
                                         r"missing \(found 'Modality'\)"):
        read_manifest(root)
    (root / "labels.parquet").write_text("task,value\nlvef,55\n")
    edit(root, "samples", lambda df: df.rename(columns={"Modality": "modality"}))
    with pytest.raises(ValueError, match=r"labels\.parquet: cannot read Parquet"):
        read_manifest(root)


def test_binary_label_values_and_unknown_label_tasks(tmp_path, capsys):
    root = write_valid(tmp_path)
    edit(root, "labels", set_cell(1, "value", 2.0))  # rbbb = 2
    (p,) = validate_manifest(root)
    assert (p.table, p.row, p.column, p.value) == ("labels", 1, "value", "2.0")
    assert "rbbb is a binary task" in p.message
    edit(root, "labels", lambda df: df.assign(value=[55.0, 1.0], task=["LVEF", "rbbb"]))
    assert validate_manifest(root) == []  # a task name of one's own is not an error
    (w,) = unknown_label_tasks(read_manifest(root))
    assert "'LVEF' (1 rows)" in w and "did you mean 'lvef'" in w
    assert main(["validate", str(root)]) == 0
    assert "did you mean 'lvef'" in " ".join(capsys.readouterr().out.split())  # rich wraps


def test_conflicting_labels_are_located(tmp_path):
    root = write_valid(tmp_path)
    # row 2: same study as row 0, another LVEF -> conflict; row 3: an exact repeat -> fine;
    # row 4: p2's RBBB at the same time as row 1 with another value -> conflict
    edit(root, "labels", lambda df: pd.concat([df, pd.DataFrame({
        "patient_id": ["p1", "p1", "p2"], "study_id": ["st0", "st0", None],
        "task": ["lvef", "lvef", "rbbb"], "value": [35.0, 55.0, 0.0],
        "measured_at": pd.to_datetime(["2020-01-01", "2020-01-01", "2020-01-04"]),
        "source_modality": ["echo_video", "echo_video", "ecg_waveform"]})], ignore_index=True))
    problems = [p for p in validate_manifest(root) if "conflicts" in p.message]
    assert {(p.row, p.value) for p in problems} == {(2, "35.0"), (4, "0.0")}
    by_row = {p.row: p.message for p in problems}
    assert "row 0" in by_row[2] and "same study" in by_row[2]
    assert "row 1" in by_row[4] and "same measured_at" in by_row[4]
