"""MIMIC-IV-ECHO: cine DICOMs, LVEF from structured measurements, a built echo report.

- ``echo_video`` samples from ``echo-record-list.csv`` (``dicom_filepath`` under the
  root) at ``acquisition_datetime`` (else the study's ``study_datetime`` from
  ``echo-study-list.csv``). Single-frame stills (``NumberOfFrames`` absent or 1, read
  from the header only) are skipped and counted.
- ``lvef`` labels from ``structured-measurement.csv.gz`` rows with measurement
  ``lvef`` (result "55", "55%", "55-60" -> midpoint; others dropped and counted), at
  ``measurement_datetime``; the study is the one whose ``measurement_id`` matches in the
  study list, else ``echo:m<measurement_id>``.
- ``echo_text`` samples (inline), one per measurement set, built from the structured
  measurements: MIMIC-IV-ECHO releases no free-text echo reports.

Study ids are prefixed ``echo:``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from clerc.adapters.common import (
    BAD_TIME,
    DUPLICATE,
    EMPTY_REPORT,
    MISSING_FILE,
    MISSING_ID,
    NO_TIME,
    STILL,
    UNPARSEABLE_VALUE,
    UNREADABLE_FILE,
    Account,
    Part,
    id_text,
    labels_frame,
    parse_time,
    read_csv,
    require_columns,
    samples_frame,
    text_or_none,
)
from clerc.adapters.labels import lvef_sentence, parse_lvef
from clerc.data.manifest import resolve_path

RECORDS = "echo-record-list.csv"
STUDIES = "echo-study-list.csv"
MEASUREMENTS = "structured-measurement.csv.gz"
REPORTS = "echo reports (built per measurement set)"


def frame_count(path: Path) -> int:
    """NumberOfFrames from the DICOM header (1 when absent); pixels are not read."""
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=True,
                         specific_tags=["NumberOfFrames"])
    value = ds.get("NumberOfFrames", 1)
    return int(value) if value not in (None, "") else 1


def _studies(root: Path, account: Account) -> tuple[dict, dict]:
    """study_id -> study time; measurement_id -> study_id."""
    path = root / STUDIES
    if not path.is_file():
        account.notes["echo_study_list"] = f"{path} not found: no study times or links"
        return {}, {}
    df = read_csv(path)
    require_columns(df, path, ("subject_id", "study_id", "study_datetime"))
    times, links = {}, {}
    for r in df.to_dict("records"):
        account.read(STUDIES)
        account.keep(STUDIES)
        study = id_text(r["study_id"])
        t = parse_time(r["study_datetime"])
        if t is not None:
            times[study] = t
        mid = id_text(r.get("measurement_id"))
        if mid is not None:
            links[mid] = study
    return times, links


def _videos(root: Path, study_times: dict, account: Account) -> list[dict]:
    path = root / RECORDS
    df = read_csv(path)
    require_columns(df, path, ("subject_id", "study_id", "acquisition_datetime",
                               "dicom_filepath"))
    rows = []
    for i, r in enumerate(df.itertuples(index=False), start=2):
        account.read(RECORDS)
        pid, study = id_text(r.subject_id), id_text(r.study_id)
        ref = f"{path}:{i} dicom_filepath={r.dicom_filepath}"
        if pid is None or study is None:
            account.drop(RECORDS, MISSING_ID, f"{ref} subject_id={r.subject_id!r}")
            continue
        t = parse_time(r.acquisition_datetime) or study_times.get(study)
        if t is None:
            bad = text_or_none(r.acquisition_datetime) is not None
            account.drop(RECORDS, BAD_TIME if bad else NO_TIME,
                         f"{ref} acquisition_datetime={r.acquisition_datetime!r}")
            continue
        dcm = resolve_path(root, r.dicom_filepath)
        if not dcm.is_file():
            account.drop(RECORDS, MISSING_FILE, f"{ref} path={dcm}")
            continue
        try:
            frames = frame_count(dcm)
        except Exception as exc:  # noqa: BLE001 - any unreadable header is counted, not fatal
            account.drop(RECORDS, UNREADABLE_FILE, f"{ref}: {type(exc).__name__}: {exc}")
            continue
        if frames <= 1:
            account.drop(RECORDS, STILL, f"{ref} NumberOfFrames={frames}")
            continue
        account.keep(RECORDS)
        rows.append({"patient_id": pid, "study_id": f"echo:{study}",
                     "sample_id": f"echo:{study}:{dcm.stem}", "modality": "echo_video",
                     "acquired_at": t, "path": str(dcm), "text": None})
    return rows


def _sentence(name: str, result: str | None, unit: str | None) -> str | None:
    if result is None:
        return None
    if name.lower() == "lvef":
        value = parse_lvef(result)
        return lvef_sentence(value) if value is not None else None
    return f"{name}: {result}{' ' + unit if unit else ''}."


def _measurements(root: Path, links: dict, account: Account) -> tuple[list, list]:
    path = root / MEASUREMENTS
    if not path.is_file():
        account.notes["echo_measurements"] = f"{path} not found: no LVEF labels, no echo text"
        return [], []
    df = read_csv(path)
    require_columns(df, path, ("subject_id", "measurement_id", "measurement_datetime",
                               "measurement", "result"))
    samples: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    for mid, group in df.groupby("measurement_id", sort=True):
        mid = id_text(mid)
        pid = id_text(group["subject_id"].iloc[0])
        study = f"echo:{links[mid]}" if mid in links else f"echo:m{mid}"
        t = parse_time(group["measurement_datetime"].iloc[0])
        sentences, lvef_done = [], False
        for i, r in zip(group.index, group.to_dict("records"), strict=True):
            name = str(r["measurement"]).strip()
            result, unit = text_or_none(r["result"]), text_or_none(r.get("unit"))
            if name.lower() == "lvef":
                lvef_done = _lvef_label(account, path, i, r, pid, study, t, lvef_done, labels)
            s = _sentence(name, result, unit)
            if s:
                sentences.append(s)
        account.read(REPORTS)
        if t is None or not sentences:
            account.drop(REPORTS, NO_TIME if t is None else EMPTY_REPORT,
                         f"{path} measurement_id={mid}")
            continue
        account.keep(REPORTS)
        samples.append({"patient_id": pid, "study_id": study,
                        "sample_id": f"echo:m{mid}:text", "modality": "echo_text",
                        "acquired_at": t, "path": None, "text": " ".join(sentences)})
    return samples, labels


def _lvef_label(account: Account, path: Path, i: int, r: dict, pid: str | None, study: str,
                t: pd.Timestamp | None, done: bool, labels: list) -> bool:
    """Append the LVEF label of one row (or count why not); returns whether one exists."""
    source = f"{MEASUREMENTS} lvef"
    account.read(source)
    ref = f"{path}:{i + 2} measurement_id={r['measurement_id']} result={r['result']!r}"
    value = parse_lvef(text_or_none(r["result"]))
    reason = (NO_TIME if t is None else UNPARSEABLE_VALUE if value is None
              else DUPLICATE if done else None)
    if reason is not None:
        account.drop(source, reason, ref)
        return done or False
    account.keep(source)
    labels.append({"patient_id": pid, "study_id": study, "task": "lvef", "value": value,
                   "measured_at": t, "source_modality": "echo_video"})
    return True


def read_mimic_echo(root: str | Path, account: Account) -> Part:
    """Samples and labels of a MIMIC-IV-ECHO copy at ``root``."""
    root = Path(root).resolve()
    study_times, links = _studies(root, account)
    videos = _videos(root, study_times, account)
    texts, labels = _measurements(root, links, account)
    return Part(samples_frame(videos + texts), labels_frame(labels))
