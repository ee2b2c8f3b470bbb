"""MIMIC-IV-ECHO: cine DICOMs, LVEF from structured measurements, a built echo report.

- ``echo_video`` samples from ``echo-record-list.csv`` (``dicom_filepath`` under the
  root) at ``acquisition_datetime`` (else the study's ``study_datetime`` from
  ``echo-study-list.csv``). Single-frame stills (``NumberOfFrames`` absent or 1, read
  from the header only) are skipped and counted. Cines without FrameTime, CineRate,
  RecommendedDisplayFrameRate or FrameTimeVector are kept, counted and said: the reader
  reads them at the default fps (``CLERC_DEFAULT_FPS``, 30) as well.
- ``lvef`` labels from the structured measurements, as released under either name
  (``structured-measurement.csv.gz`` or ``structured_measurement.csv.gz``, or
  un-gzipped) and in either layout: long (``measurement``, ``result`` rows) or wide (a
  column per variable). One per measurement set, the first parseable of ``lvef`` (result
  "55", "55%", "55-60" -> midpoint; with an ``lvef_upper`` of the same set, the midpoint
  of the two), ``biplane_lvef``, ``lvef_3d``; the others are counted as duplicates, the
  unparseable as such, and which variable each label came from is in the account. At
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
    table_path,
    text_or_none,
)
from clerc.adapters.labels import lvef_sentence, parse_lvef
from clerc.data.manifest import resolve_path

RECORDS = "echo-record-list.csv"
STUDIES = "echo-study-list.csv"
MEASUREMENTS = "structured-measurement.csv.gz"
#: The measurement table's names across releases (each also read un-gzipped).
MEASUREMENT_FILES = (MEASUREMENTS, "structured_measurement.csv.gz")
#: LVEF variables in order of preference; ``lvef`` with an ``lvef_upper`` is a range.
LVEF_VARIABLES = ("lvef", "biplane_lvef", "lvef_3d")
LVEF_UPPER = "lvef_upper"
TIMING_TAGS = (
    "NumberOfFrames",
    "FrameTime",
    "CineRate",
    "RecommendedDisplayFrameRate",
    "FrameTimeVector",
)
REPORTS = "echo reports (built per measurement set)"


def frame_count(path: Path) -> int:
    """NumberOfFrames from the DICOM header (1 when absent); pixels are not read."""
    return header_timing(path)[0]


def header_timing(path: Path) -> tuple[int, float | None]:
    """NumberOfFrames (1 when absent) and the fps the reader would find (None: the reader
    assumes ``default_fps()``), from the header only."""
    import pydicom

    from clerc.data.readers import dicom_fps

    ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(TIMING_TAGS))
    value = ds.get("NumberOfFrames", 1)
    return (int(value) if value not in (None, "") else 1), dicom_fps(ds)


def _studies(root: Path, account: Account) -> tuple[dict, dict]:
    """study_id -> study time; measurement_id -> study_id."""
    path = table_path(root / STUDIES)
    if path is None:
        account.notes["echo_study_list"] = (
            f"{root / STUDIES}(.gz) not found: no study times or links"
        )
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
    require_columns(df, path, ("subject_id", "study_id", "acquisition_datetime", "dicom_filepath"))
    rows, no_rate = [], []
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
            account.drop(
                RECORDS,
                BAD_TIME if bad else NO_TIME,
                f"{ref} acquisition_datetime={r.acquisition_datetime!r}",
            )
            continue
        dcm = resolve_path(root, r.dicom_filepath)
        if not dcm.is_file():
            account.drop(RECORDS, MISSING_FILE, f"{ref} path={dcm}")
            continue
        try:
            frames, fps = header_timing(dcm)
        except Exception as exc:  # noqa: BLE001 - any unreadable header is counted, not fatal
            account.drop(RECORDS, UNREADABLE_FILE, f"{ref}: {type(exc).__name__}: {exc}")
            continue
        if frames <= 1:
            account.drop(RECORDS, STILL, f"{ref} NumberOfFrames={frames}")
            continue
        if fps is None:
            no_rate.append(str(dcm))
        account.keep(RECORDS)
        rows.append(
            {
                "patient_id": pid,
                "study_id": f"echo:{study}",
                "sample_id": f"echo:{study}:{dcm.stem}",
                "modality": "echo_video",
                "acquired_at": t,
                "path": str(dcm),
                "text": None,
            }
        )
    _say_default_fps(no_rate, account)
    return rows


def _say_default_fps(no_rate: list[str], account: Account) -> None:
    """Cines without timing tags are kept: the reader gives them the default fps too."""
    from clerc.data.readers import FPS_ENV, default_fps

    account.notes["echo_videos_default_fps"] = len(no_rate)
    if no_rate:
        account.say(
            f"MIMIC-IV-ECHO: {len(no_rate)} cines have no FrameTime, CineRate, "
            f"RecommendedDisplayFrameRate or FrameTimeVector; read at the default "
            f"{default_fps():g} fps (set {FPS_ENV} to change), e.g. {no_rate[0]}"
        )


def _sentence(name: str, result: str | None, unit: str | None) -> str | None:
    if result is None:
        return None
    if name.lower() == "lvef":
        value = parse_lvef(result)
        return lvef_sentence(value) if value is not None else None
    return f"{name}: {result}{' ' + unit if unit else ''}."


def measurement_table(root: Path, account: Account) -> tuple[pd.DataFrame, Path] | None:
    """The structured measurements in long form (one row per measurement) and the file
    read, or None. Both published names are accepted (``structured-measurement`` and
    ``structured_measurement``, gzipped or not), long (``measurement``, ``result``
    columns) or wide (one column per variable: ``lvef``, ``biplane_lvef``, ...); which
    file and layout were found is noted in the account."""
    path = next((p for p in (table_path(root / n) for n in MEASUREMENT_FILES) if p), None)
    if path is None:
        account.notes["echo_measurements"] = (
            f"{root / MEASUREMENTS} not found (nor "
            f"{', '.join(MEASUREMENT_FILES[1:])}, or "
            "un-gzipped): no LVEF labels, no echo text"
        )
        return None
    df = read_csv(path)
    ids = ("subject_id", "measurement_id", "measurement_datetime")
    if {"measurement", "result"} <= set(df.columns):
        layout = "long"
    elif "measurement_id" in df.columns and set(LVEF_VARIABLES) & set(df.columns):
        require_columns(df, path, ids)
        layout = "wide"
        keep = [c for c in df.columns if c not in ids]
        df = df.melt(
            id_vars=list(ids), value_vars=keep, var_name="measurement", value_name="result"
        ).dropna(subset=["result"])
        df = df.assign(unit=None).sort_values(["measurement_id"], kind="stable")
        df = df.reset_index(drop=True)
    else:
        layout = "unknown"
    require_columns(df, path, (*ids, "measurement", "result"))
    account.notes["echo_measurements"] = f"{path.name}: {layout} layout"
    account.say(f"MIMIC-IV-ECHO measurements: {path.name}, {layout} layout")
    return df, path


def _measurements(root: Path, links: dict, account: Account) -> tuple[list, list]:
    found = measurement_table(root, account)
    if found is None:
        return [], []
    df, path = found
    samples: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    for mid, group in df.groupby("measurement_id", sort=True):
        mid = id_text(mid)
        pid = id_text(group["subject_id"].iloc[0])
        study = f"echo:{links[mid]}" if mid in links else f"echo:m{mid}"
        t = parse_time(group["measurement_datetime"].iloc[0])
        sentences, lvef_rows, upper = [], [], None
        for i, r in zip(group.index, group.to_dict("records"), strict=True):
            name = str(r["measurement"]).strip()
            result, unit = text_or_none(r["result"]), text_or_none(r.get("unit"))
            if name.lower() in LVEF_VARIABLES:
                lvef_rows.append((i, r, name.lower()))
            elif name.lower() == LVEF_UPPER:
                upper = parse_lvef(result)
            s = _sentence(name, result, unit)
            if s:
                sentences.append(s)
        done = False
        for i, r, name in sorted(lvef_rows, key=lambda x: LVEF_VARIABLES.index(x[2])):
            done = _lvef_label(
                account,
                path,
                i,
                r,
                (pid, study, t),
                done,
                labels,
                upper if name == "lvef" else None,
            )
        account.read(REPORTS)
        if t is None or not sentences:
            account.drop(
                REPORTS, NO_TIME if t is None else EMPTY_REPORT, f"{path} measurement_id={mid}"
            )
            continue
        account.keep(REPORTS)
        samples.append(
            {
                "patient_id": pid,
                "study_id": study,
                "sample_id": f"echo:m{mid}:text",
                "modality": "echo_text",
                "acquired_at": t,
                "path": None,
                "text": " ".join(sentences),
            }
        )
    return samples, labels


def _lvef_label(
    account: Account,
    path: Path,
    i: int,
    r: dict,
    where: tuple,
    done: bool,
    labels: list,
    upper: float | None,
) -> bool:
    """Append the LVEF label of one row (or count why not); returns whether one exists.

    ``where`` is (patient, study, time); ``upper`` (``lvef_upper``) makes ``lvef`` the
    lower bound of a range, labelled with its midpoint."""
    pid, study, t = where
    source = f"{MEASUREMENTS if path.name == MEASUREMENTS else path.name} lvef"
    account.read(source)
    name = str(r["measurement"]).strip().lower()
    ref = f"{path}:{i + 2} measurement_id={r['measurement_id']} {name}={r['result']!r}"
    value = parse_lvef(text_or_none(r["result"]))
    if value is not None and upper is not None:
        value = (value + upper) / 2
    reason = (
        NO_TIME
        if t is None
        else UNPARSEABLE_VALUE
        if value is None
        else DUPLICATE
        if done
        else None
    )
    if reason is not None:
        account.drop(source, reason, ref)
        return done
    account.keep(source)
    used = account.notes.setdefault("lvef_variable_used", {})
    used[name] = used.get(name, 0) + 1
    labels.append(
        {
            "patient_id": pid,
            "study_id": study,
            "task": "lvef",
            "value": value,
            "measured_at": t,
            "source_modality": "echo_video",
        }
    )
    return True


def read_mimic_echo(root: str | Path, account: Account) -> Part:
    """Samples and labels of a MIMIC-IV-ECHO copy at ``root``."""
    root = Path(root).resolve()
    study_times, links = _studies(root, account)
    videos = _videos(root, study_times, account)
    texts, labels = _measurements(root, links, account)
    return Part(samples_frame(videos + texts), labels_frame(labels))
