"""MIMIC-IV-ECG: waveforms from ``record_list.csv``, reports from ``machine_measurements.csv``.

Each record gives an ``ecg_waveform`` sample (path = the WFDB ``.hea`` file, which
``readers.read_ecg`` accepts) at ``ecg_time``. Each row of ``machine_measurements.csv``
gives an ``ecg_text`` sample (inline: the non-empty ``report_0`` .. ``report_17`` joined
with ". ") and the labels ``rbbb``, ``lbbb``, ``pacemaker`` read from that text
(:mod:`clerc.adapters.labels`). Study ids are prefixed ``ecg:``.

Both public layouts are read: the full release (records under ``files/pNNNN/pSUBJECT/
sSTUDY/``, with ``machine_measurements.csv``) and the public demo (no ``pNNNN`` group
folder, 9-digit study ids, times with seconds, no ``machine_measurements.csv``). A record
whose listed ``path`` is missing is looked for in either folder layout. Without machine
measurements every waveform is kept as a waveform-only sample (counted in
``notes.ecg_waveform_only`` and said after the table); tables may be gzipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clerc.adapters.common import (
    BAD_TIME,
    EMPTY_REPORT,
    MISSING_FILE,
    MISSING_ID,
    NO_TIME,
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
from clerc.adapters.labels import ecg_labels
from clerc.data.manifest import resolve_path

RECORDS = "record_list.csv"
MEASUREMENTS = "machine_measurements.csv"
REPORT_COLUMNS = tuple(f"report_{i}" for i in range(18))


def join_report(row: Any) -> str | None:
    """The non-empty machine statements of a row joined with ". " (None when all empty)."""
    parts = [text_or_none(getattr(row, c, None)) for c in REPORT_COLUMNS]
    kept = [p for p in parts if p]
    return ". ".join(kept) if kept else None


def _has_record(rec: Path) -> bool:
    return all(rec.with_name(rec.name + ext).is_file() for ext in (".hea", ".dat"))


def find_record(root: Path, listed: Any, subject: str, study: str) -> Path:
    """The WFDB record of a row: the listed ``path``, else the study's folder in the full
    release's layout (``files/pNNNN/pSUBJECT/sSTUDY/STUDY``) or the demo's (no ``pNNNN``
    group folder, ``files/pSUBJECT/sSTUDY/STUDY``); the listed path when none exists."""
    first = resolve_path(root, str(listed).strip()) if text_or_none(listed) else None
    candidates = [first] if first is not None else []
    for base in (
        root / "files" / f"p{subject[:4]}" / f"p{subject}",
        root / "files" / f"p{subject}",
    ):
        candidates.append(base / f"s{study}" / study)
    hit = next((c for c in candidates if _has_record(c)), None)
    return hit or candidates[0]


def _waveforms(root: Path, account: Account) -> tuple[list[dict], dict[str, Any]]:
    path = root / RECORDS
    df = read_csv(path)
    require_columns(df, path, ("subject_id", "study_id", "ecg_time", "path"))
    rows, times = [], {}
    for i, r in enumerate(df.itertuples(index=False), start=2):
        account.read(RECORDS)
        pid, study = id_text(r.subject_id), id_text(r.study_id)
        ref = f"{path}:{i} study_id={study}"
        if pid is None or study is None:
            account.drop(RECORDS, MISSING_ID, f"{ref} subject_id={r.subject_id!r}")
            continue
        t = parse_time(r.ecg_time)
        if t is None:
            reason = NO_TIME if text_or_none(r.ecg_time) is None else BAD_TIME
            account.drop(RECORDS, reason, f"{ref} ecg_time={r.ecg_time!r}")
            continue
        times[study] = t
        rec = find_record(root, r.path, pid, study)
        hea = rec.with_name(rec.name + ".hea")
        if not _has_record(rec):
            account.drop(RECORDS, MISSING_FILE, f"{ref} path={hea}")
            continue
        account.keep(RECORDS)
        rows.append(
            {
                "patient_id": pid,
                "study_id": f"ecg:{study}",
                "sample_id": f"ecg:{study}:waveform",
                "modality": "ecg_waveform",
                "acquired_at": t,
                "path": str(hea),
                "text": None,
            }
        )
    return rows, times


def _reports(root: Path, times: dict[str, Any], account: Account) -> tuple[list, list]:
    path = table_path(root / MEASUREMENTS)
    if path is None:
        account.notes["ecg_layout"] = "waveforms only (no machine_measurements.csv: the demo)"
        account.say(
            f"MIMIC-IV-ECG: {root / MEASUREMENTS} not found (the public demo ships "
            f"none): {len(times)} waveform-only ECGs, no ECG text, no ECG labels"
        )
        return [], []
    account.notes["ecg_layout"] = f"waveforms + machine measurements ({path.name})"
    df = read_csv(path)
    require_columns(df, path, ("subject_id", "study_id"))
    samples, labels = [], []
    for i, r in enumerate(df.itertuples(index=False), start=2):
        account.read(MEASUREMENTS)
        pid, study = id_text(r.subject_id), id_text(r.study_id)
        ref = f"{path}:{i} study_id={study}"
        if pid is None or study is None:
            account.drop(MEASUREMENTS, MISSING_ID, f"{ref} subject_id={r.subject_id!r}")
            continue
        t = times.get(study) or parse_time(getattr(r, "ecg_time", None))
        if t is None:
            account.drop(MEASUREMENTS, NO_TIME, ref)
            continue
        report = join_report(r)
        if report is None:
            account.drop(MEASUREMENTS, EMPTY_REPORT, ref)
            continue
        account.keep(MEASUREMENTS)
        samples.append(
            {
                "patient_id": pid,
                "study_id": f"ecg:{study}",
                "sample_id": f"ecg:{study}:text",
                "modality": "ecg_text",
                "acquired_at": t,
                "path": None,
                "text": report,
            }
        )
        for task, value in ecg_labels(report).items():
            labels.append(
                {
                    "patient_id": pid,
                    "study_id": f"ecg:{study}",
                    "task": task,
                    "value": value,
                    "measured_at": t,
                    "source_modality": "ecg_waveform",
                }
            )
    return samples, labels


def read_mimic_ecg(root: str | Path, account: Account) -> Part:
    """Samples and labels of a MIMIC-IV-ECG copy at ``root`` (full release or demo)."""
    root = Path(root).resolve()
    waves, times = _waveforms(root, account)
    texts, labels = _reports(root, times, account)
    with_text = {s["study_id"] for s in texts}
    account.notes["ecg_waveform_only"] = sum(w["study_id"] not in with_text for w in waves)
    return Part(samples_frame(waves + texts), labels_frame(labels))
