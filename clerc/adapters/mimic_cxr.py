"""MIMIC-CXR-JPG (+ MIMIC-CXR reports): images, report text, CheXpert labels, official split.

- ``cxr_image`` samples from ``mimic-cxr-2.0.0-metadata.csv``; the image is
  ``files/p{subject[:2]}/p{subject}/s{study}/{dicom_id}.jpg``. Frontal views (PA, AP)
  only unless ``all_views``; an empty ViewPosition is dropped as "unknown view".
  Every table is read as released, ``.csv.gz`` (MIMIC-CXR-JPG 2.x) or ``.csv``.
  The time is StudyDate (YYYYMMDD) + StudyTime (HHMMSS.fff,
  leading zeros lost in the CSV: zero-padded to six digits before the decimal).
- ``cxr_text`` samples (inline) from ``files/p../p{subject}/s{study}.txt``: the FINDINGS
  and IMPRESSION sections, else the last paragraph; at the study's earliest image time.
- ``consolidation`` and ``edema`` from ``mimic-cxr-2.0.0-chexpert.csv``: 1 -> 1, 0 -> 0,
  -1 (uncertain) -> the ``uncertain`` rule (positive, negative or drop), blank
  (unmentioned) -> dropped.
- the official split (``validate`` -> ``val``) per patient from ``mimic-cxr-2.0.0-split.csv``.

Study ids are prefixed ``cxr:``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from clerc.adapters.common import (
    BAD_TIME,
    EMPTY_REPORT,
    MISSING_FILE,
    MISSING_ID,
    NO_LABEL,
    NO_TIME,
    NON_FRONTAL,
    UNCERTAIN,
    UNKNOWN_SPLIT,
    UNKNOWN_VIEW,
    UNPARSEABLE_VALUE,
    Account,
    Part,
    id_text,
    labels_frame,
    read_csv,
    require_columns,
    samples_frame,
    table_path,
    text_or_none,
)

METADATA = "mimic-cxr-2.0.0-metadata.csv"
CHEXPERT = "mimic-cxr-2.0.0-chexpert.csv"
SPLIT = "mimic-cxr-2.0.0-split.csv"
FRONTAL = ("PA", "AP")
UNCERTAIN_RULES: dict[str, float | None] = {"positive": 1.0, "negative": 0.0, "drop": None}
#: CheXpert column -> task.
TASKS: dict[str, str] = {"Consolidation": "consolidation", "Edema": "edema"}
OFFICIAL_SPLITS: dict[str, str] = {"train": "train", "validate": "val", "test": "test"}
_SECTION = re.compile(r"^[ \t]*([A-Z][A-Z ,/&()-]*?)[ \t]*:", re.MULTILINE)


def study_time(date: object, time: object) -> pd.Timestamp | None:
    """StudyDate ``21800506`` + StudyTime ``4512.5`` -> 2180-05-06 00:45:12.5 (None if bad)."""
    d, t = text_or_none(date), text_or_none(time)
    if d is None or t is None:
        return None
    d = d[:-2] if d.endswith(".0") else d
    whole, _, frac = t.partition(".")
    if not (
        len(d) == 8
        and d.isdigit()
        and whole.isdigit()
        and len(whole) <= 6
        and (frac == "" or frac.isdigit())
    ):
        return None
    whole = whole.zfill(6)
    try:
        return pd.Timestamp(
            f"{d[:4]}-{d[4:6]}-{d[6:]} {whole[:2]}:{whole[2:4]}:{whole[4:]}"
            + (f".{frac}" if frac else "")
        )
    except ValueError:
        return None


def report_sections(text: str) -> str | None:
    """FINDINGS and IMPRESSION sections (in that order), else the last paragraph."""
    heads = list(_SECTION.finditer(text))
    found: dict[str, str] = {}
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        name = m.group(1).strip()
        if name in ("FINDINGS", "IMPRESSION"):
            found[name] = " ".join(text[m.end() : end].split())
    body = " ".join(v for k in ("FINDINGS", "IMPRESSION") if (v := found.get(k)))
    if body:
        return body
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    paragraphs = [p for p in paragraphs if p]
    return paragraphs[-1] if paragraphs else None


def study_dir(root: Path, subject: str, study: str) -> Path:
    return root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"


def _images(root: Path, all_views: bool, account: Account) -> tuple[list, dict]:
    path = root / METADATA
    df = read_csv(path)
    require_columns(
        df, path, ("dicom_id", "subject_id", "study_id", "ViewPosition", "StudyDate", "StudyTime")
    )
    rows: list[dict] = []
    first: dict[str, tuple[str, pd.Timestamp]] = {}
    for i, r in enumerate(df.itertuples(index=False), start=2):
        account.read(METADATA)
        pid, study, dicom = id_text(r.subject_id), id_text(r.study_id), str(r.dicom_id).strip()
        ref = f"{path}:{i} dicom_id={dicom}"
        if pid is None or study is None:
            account.drop(METADATA, MISSING_ID, f"{ref} subject_id={r.subject_id!r}")
            continue
        t = study_time(r.StudyDate, r.StudyTime)
        if t is None:
            account.drop(
                METADATA, BAD_TIME, f"{ref} StudyDate={r.StudyDate!r} StudyTime={r.StudyTime!r}"
            )
            continue
        if study not in first or t < first[study][1]:
            first[study] = (pid, t)
        view = text_or_none(r.ViewPosition)
        if not all_views and view not in FRONTAL:
            account.drop(
                METADATA, NON_FRONTAL if view else UNKNOWN_VIEW, f"{ref} ViewPosition={view!r}"
            )
            continue
        jpg = study_dir(root, pid, study) / f"{dicom}.jpg"
        if not jpg.is_file():
            account.drop(METADATA, MISSING_FILE, f"{ref} path={jpg}")
            continue
        account.keep(METADATA)
        rows.append(
            {
                "patient_id": pid,
                "study_id": f"cxr:{study}",
                "sample_id": f"cxr:{dicom}",
                "modality": "cxr_image",
                "acquired_at": t,
                "path": str(jpg),
                "text": None,
            }
        )
    return rows, first


def _reports(root: Path, first: dict, account: Account) -> list[dict]:
    source = "cxr reports (files/p*/p*/s*.txt)"
    rows = []
    for study, (pid, t) in sorted(first.items()):
        account.read(source)
        txt = study_dir(root, pid, study).with_suffix(".txt")
        if not txt.is_file():
            account.drop(source, MISSING_FILE, str(txt))
            continue
        text = report_sections(txt.read_text(errors="replace"))
        if text is None:
            account.drop(source, EMPTY_REPORT, str(txt))
            continue
        account.keep(source)
        rows.append(
            {
                "patient_id": pid,
                "study_id": f"cxr:{study}",
                "sample_id": f"cxr:{study}:text",
                "modality": "cxr_text",
                "acquired_at": t,
                "path": None,
                "text": text,
            }
        )
    return rows


def label_value(raw: object, uncertain: str) -> tuple[float | None, str | None]:
    """(value, None) or (None, drop reason) for one CheXpert cell."""
    s = text_or_none(raw)
    if s is None:
        return None, NO_LABEL
    try:
        v = float(s)
    except ValueError:
        return None, UNPARSEABLE_VALUE
    if v == -1:
        value = UNCERTAIN_RULES[uncertain]
        return (value, None) if value is not None else (None, UNCERTAIN)
    return (v, None) if v in (0.0, 1.0) else (None, UNPARSEABLE_VALUE)


def _labels(root: Path, first: dict, uncertain: str, account: Account) -> list[dict]:
    path = root / CHEXPERT
    df = read_csv(path)
    require_columns(df, path, ("subject_id", "study_id", *TASKS))
    rows = []
    for i, r in enumerate(df.to_dict("records"), start=2):
        pid, study = id_text(r["subject_id"]), id_text(r["study_id"])
        for column, task in TASKS.items():
            source = f"{CHEXPERT} {column}"
            account.read(source)
            ref = f"{path}:{i} study_id={study} {column}={r[column]!r}"
            value, reason = label_value(r[column], uncertain)
            if reason is None and study not in first:
                reason = NO_TIME
            if reason is not None:
                account.drop(source, reason, ref)
                continue
            account.keep(source)
            rows.append(
                {
                    "patient_id": pid,
                    "study_id": f"cxr:{study}",
                    "task": task,
                    "value": value,
                    "measured_at": first[study][1],
                    "source_modality": "cxr_image",
                }
            )
    return rows


def official_splits(root: Path, account: Account) -> dict[str, str]:
    """subject_id -> train/val/test from the split file (absent file: no official split)."""
    path = table_path(root / SPLIT)
    if path is None:
        account.notes["cxr_official_split"] = (
            f"{root / SPLIT}(.gz) not found: splits hashed from the seed"
        )
        return {}
    df = read_csv(path)
    require_columns(df, path, ("subject_id", "split"))
    out: dict[str, str] = {}
    for i, r in enumerate(df.itertuples(index=False), start=2):
        account.read(SPLIT)
        split = OFFICIAL_SPLITS.get(str(r.split).strip().lower())
        if split is None:
            account.drop(SPLIT, UNKNOWN_SPLIT, f"{path}:{i} split={r.split!r}")
            continue
        account.keep(SPLIT)
        pid = id_text(r.subject_id)
        if pid is not None:
            out.setdefault(pid, split)
    return out


def read_mimic_cxr(
    root: str | Path,
    account: Account,
    *,
    reports: str | Path | None = None,
    uncertain: str = "drop",
    all_views: bool = False,
) -> Part:
    """Samples, labels and official splits of a MIMIC-CXR-JPG copy at ``root``."""
    if uncertain not in UNCERTAIN_RULES:
        raise ValueError(f"uncertain must be one of {tuple(UNCERTAIN_RULES)}, got {uncertain!r}")
    root = Path(root).resolve()
    images, first = _images(root, all_views, account)
    texts = _reports(Path(reports).resolve() if reports else root, first, account)
    labels = _labels(root, first, uncertain, account)
    return Part(samples_frame(images + texts), labels_frame(labels), official_splits(root, account))
