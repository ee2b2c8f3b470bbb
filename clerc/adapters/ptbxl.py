"""PTB-XL 1.0.3: WFDB records, cardiologist reports, SCP codes, stratified folds.

Each row of ``ptbxl_database.csv`` gives an ``ecg_waveform`` sample (``filename_hr`` +
``.hea``, the 500 Hz ``records500/``; with ``rate=100``, ``filename_lr``, the 100 Hz
``records100/``; a record missing at the asked rate is taken at the other when present,
and the account says how many) and an ``ecg_text`` sample (the ``report``, inline,
mostly German, not translated; languages are counted in the account) at
``recording_date``. Labels come from ``scp_codes``: CRBBB -> ``rbbb``, CLBBB -> ``lbbb``,
PACE -> ``pacemaker``. A code *present* in the dict is positive whatever its likelihood:
PTB-XL gives likelihoods only for diagnostic statements and writes 0 ("unknown") for form
and rhythm statements, so a "> 0" rule would erase statements the cardiologist made.
Folds: 9 -> val, 10 -> test, 1-8 -> train (one fold per patient in PTB-XL). Patients:
sex 0 -> M, 1 -> F; the anchor is the patient's first recording (its age and date). Ages
above 89 are coded 300 in PTB-XL: those become NaN (unknown) and are counted.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pandas as pd

from clerc.adapters.common import (
    BAD_TIME,
    EMPTY_REPORT,
    MISSING_FILE,
    MISSING_ID,
    UNKNOWN_SPLIT,
    UNPARSEABLE_VALUE,
    Account,
    assign_splits,
    finish,
    id_text,
    labels_frame,
    parse_time,
    read_csv,
    require_columns,
    samples_frame,
    text_or_none,
)

DATABASE = "ptbxl_database.csv"
#: SCP code -> task.
CODES: dict[str, str] = {"CRBBB": "rbbb", "CLBBB": "lbbb", "PACE": "pacemaker"}
#: sampling rate (Hz) -> the database column naming its record (records500/, records100/).
RATE_COLUMNS: dict[int, str] = {500: "filename_hr", 100: "filename_lr"}
FOLDS: dict[str, str] = {**{str(i): "train" for i in range(1, 9)}, "9": "val", "10": "test"}
MAX_AGE = 120
_GERMAN = re.compile(
    r"\b(?:sinusrhythmus|lagetyp|linkstyp|rechtstyp|steiltyp|ekg|und|kein|"
    r"keine|normales|unauff\w*|wahrscheinlich|vorhofflimmern|"
    r"schenkelblock|verdacht|bei|mit|nicht|moeglich|möglich|periphere)\b",
    re.IGNORECASE,
)
_ENGLISH = re.compile(
    r"\b(?:sinus rhythm|normal ecg|the|with|probable|possible|abnormal|"
    r"borderline|otherwise|leads?)\b",
    re.IGNORECASE,
)


def language(report: str) -> str:
    """``de``, ``en`` or ``unknown``: which marker words outnumber the others."""
    de, en = len(_GERMAN.findall(report)), len(_ENGLISH.findall(report))
    return "de" if de > en else "en" if en > de else "unknown"


def scp_labels(raw: object) -> dict[str, float] | None:
    """task -> 0/1 from an ``scp_codes`` dict string (None when it cannot be parsed)."""
    s = text_or_none(raw)
    try:
        codes = ast.literal_eval(s) if s is not None else None
    except (ValueError, SyntaxError):
        return None
    if not isinstance(codes, dict):
        return None
    return {task: float(code in codes) for code, task in CODES.items()}


def _age(value: object) -> float:
    try:
        age = float(value)  # type: ignore[arg-type]  # any cell; bad ones raise below
    except (TypeError, ValueError):
        return float("nan")
    return age if 0 <= age <= MAX_AGE else float("nan")


def _problem(
    ecg: str | None, pid: str | None, t: object, split: str | None, rec: Path
) -> str | None:
    """Why a database row cannot be used, or None."""
    if ecg is None or pid is None:
        return MISSING_ID
    if t is None:
        return BAD_TIME
    if split is None:
        return UNKNOWN_SPLIT
    if not _has_record(rec):
        return MISSING_FILE
    return None


def _has_record(rec: Path) -> bool:
    return all(rec.with_name(rec.name + ext).is_file() for ext in (".hea", ".dat"))


def _record_path(root: Path, r: dict, rate: int) -> tuple[Path, int]:
    """The record at ``rate``, else the other rate's when only that one is on disk."""
    other = 100 if rate == 500 else 500
    for hz in (rate, other):
        name = text_or_none(r.get(RATE_COLUMNS[hz]))
        if name is not None and _has_record(root / name):
            return root / name, hz
    return root / str(r.get(RATE_COLUMNS[rate]) or "").strip(), rate


def _record(
    root: Path, r: dict, i: int, account: Account, rate: int, used: dict[int, int]
) -> dict | None:
    """The parsed row, or None after counting why it was dropped."""
    path = root / DATABASE
    ecg, pid = id_text(r["ecg_id"]), id_text(r["patient_id"])
    ref = f"{path}:{i} ecg_id={ecg}"
    t = parse_time(r["recording_date"])
    split = FOLDS.get(id_text(r["strat_fold"]) or "")
    rec, hz = _record_path(root, r, rate)
    hea = rec.with_name(rec.name + ".hea")
    reason = _problem(ecg, pid, t, split, rec)
    if reason is not None:
        account.drop(
            DATABASE,
            reason,
            f"{ref} recording_date={r['recording_date']!r} "
            f"strat_fold={r['strat_fold']!r} path={hea}",
        )
        return None
    account.keep(DATABASE)
    used[hz] += 1
    return {
        "ecg": ecg,
        "pid": pid,
        "t": t,
        "split": split,
        "hea": hea,
        "age": _age(r["age"]),
        "sex": {"0": "M", "1": "F"}.get(id_text(r["sex"]) or ""),
        "report": text_or_none(r["report"]),
        "scp": r["scp_codes"],
        "ref": ref,
    }


def _rows(rec: dict, account: Account) -> tuple[list, list]:
    base = {"patient_id": rec["pid"], "study_id": f"ptbxl:{rec['ecg']}", "acquired_at": rec["t"]}
    samples = [
        {
            **base,
            "sample_id": f"ptbxl:{rec['ecg']}:waveform",
            "modality": "ecg_waveform",
            "path": str(rec["hea"]),
            "text": None,
        }
    ]
    account.read("reports")
    if rec["report"] is None:
        account.drop("reports", EMPTY_REPORT, rec["ref"])
    else:
        account.keep("reports")
        lang = language(rec["report"])
        account.notes.setdefault("report_language", {}).setdefault(lang, 0)
        account.notes["report_language"][lang] += 1
        samples.append(
            {
                **base,
                "sample_id": f"ptbxl:{rec['ecg']}:text",
                "modality": "ecg_text",
                "path": None,
                "text": rec["report"],
            }
        )
    account.read("scp_codes")
    values = scp_labels(rec["scp"])
    if values is None:
        account.drop("scp_codes", UNPARSEABLE_VALUE, f"{rec['ref']} scp_codes={rec['scp']!r}")
        return samples, []
    account.keep("scp_codes")
    labels = [
        {
            "patient_id": rec["pid"],
            "study_id": base["study_id"],
            "task": task,
            "value": v,
            "measured_at": rec["t"],
            "source_modality": "ecg_waveform",
        }
        for task, v in values.items()
    ]
    return samples, labels


def _patients(records: list[dict], account: Account) -> tuple[pd.DataFrame, dict[str, str]]:
    """Patients table (anchor = first recording) and patient -> official split."""
    first: dict[str, dict] = {}
    for rec in sorted(records, key=lambda x: x["t"]):
        first.setdefault(rec["pid"], rec)
    folds = {p: r["split"] for p, r in first.items()}
    conflicts = sorted({r["pid"] for r in records if r["split"] != folds[r["pid"]]})
    account.notes["patients_in_several_folds"] = len(conflicts)
    account.notes["patients_age_unknown"] = sum(pd.isna(r["age"]) for r in first.values())
    rows = [
        {
            "patient_id": p,
            "sex": r["sex"],
            "anchor_age": r["age"],
            "anchor_time": r["t"],
            "race": None,
        }
        for p, r in sorted(first.items())
    ]
    return pd.DataFrame(
        rows, columns=["patient_id", "sex", "anchor_age", "anchor_time", "race"]
    ), folds


def _say_rates(account: Account, rate: int, used: dict[int, int]) -> None:
    other = 100 if rate == 500 else 500
    account.notes["records_by_rate_hz"] = {str(k): v for k, v in used.items()}
    if used[other]:
        account.say(
            f"--rate {rate}: {used[other]} records exist only at {other} Hz "
            f"({RATE_COLUMNS[other]}) and were taken at that rate (read back at 500 Hz "
            f"by resampling); {used[rate]} at {rate} Hz"
        )


def adapt_ptbxl(
    root: str | Path, out: str | Path, *, rate: int = 500, quiet: bool = False, progress: Any = None
) -> Path:
    """Write the manifest and account.json for a PTB-XL copy at ``root``, reading the
    ``rate`` Hz records (500: ``records500/``, 100: ``records100/``) and falling back, per
    record, to the other rate where only that one is on disk (said and counted)."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise ValueError(f"{root}: not a directory")
    if rate not in RATE_COLUMNS:
        raise ValueError(f"rate {rate!r}: expected 500 or 100 (Hz)")
    account = Account(
        "ptbxl", {"root": str(root), "out": str(out), "rate": rate}, progress=progress
    )
    account.notes["scp_rule"] = "code present in scp_codes (any likelihood, 0 = unknown) -> 1"
    path = root / DATABASE
    df = read_csv(path)
    require_columns(
        df,
        path,
        (
            "ecg_id",
            "patient_id",
            "age",
            "sex",
            "recording_date",
            "report",
            "scp_codes",
            "strat_fold",
            RATE_COLUMNS[rate],
        ),
    )
    records, sample_rows, label_rows = [], [], []
    used = {500: 0, 100: 0}
    for i, r in enumerate(df.to_dict("records"), start=2):
        account.read(DATABASE)
        rec = _record(root, r, i, account, rate, used)
        if rec is None:
            continue
        records.append(rec)
        s, lab = _rows(rec, account)
        sample_rows += s
        label_rows += lab
    _say_rates(account, rate, used)
    patients, folds = _patients(records, account)
    splits = assign_splits(patients["patient_id"], 0, folds)
    samples = samples_frame(sample_rows)
    samples = samples.assign(split=samples["patient_id"].map(splits))
    return finish(out, samples, labels_frame(label_rows), patients, account, quiet=quiet)
