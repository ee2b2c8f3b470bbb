"""MIMIC-IV hosp ``patients.csv.gz``: sex and age of every patient that has samples.

``gender`` (F/M) -> sex; ``anchor_age`` is the age at ``anchor_time`` = 1 January of
``anchor_year`` (MIMIC shifts each patient's dates by one offset, so the anchor and the
sample times compare within a patient). Patients missing from the file keep sex <NA>
and anchor_age NaN; race is not in this table and stays <NA>.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from clerc.adapters.common import (
    NO_SAMPLE,
    UNPARSEABLE_VALUE,
    Account,
    id_text,
    read_csv,
    require_columns,
    table_path,
    text_or_none,
)

PATIENTS = "patients.csv.gz"


def _locate(root: Path) -> Path:
    """``root/patients.csv.gz`` or ``root/hosp/patients.csv.gz`` (MIMIC-IV's own layout)."""
    for candidate in (root / PATIENTS, root / "hosp" / PATIENTS):
        found = table_path(candidate)
        if found is not None:
            return found
    raise FileNotFoundError(
        f"{root / PATIENTS}: required file not found (also looked for {root / 'hosp' / PATIENTS})"
    )


def _row(r: dict) -> dict | None:
    sex = text_or_none(r["gender"])
    sex = sex.upper() if sex and sex.upper() in ("F", "M") else None
    try:
        age = float(r["anchor_age"])
        year = int(float(r["anchor_year"]))
        anchor = pd.Timestamp(year=year, month=1, day=1)
    except (TypeError, ValueError):
        return None
    return {"sex": sex, "anchor_age": age, "anchor_time": anchor}


def read_patients(
    root: str | Path | None, patient_ids: Iterable[str], account: Account
) -> pd.DataFrame:
    """The patients table for ``patient_ids`` (rows of other patients are counted, not kept)."""
    wanted = sorted(set(patient_ids))
    found: dict[str, dict] = {}
    if root is not None:
        path = _locate(Path(root).resolve())
        df = read_csv(path)
        require_columns(df, path, ("subject_id", "gender", "anchor_age", "anchor_year"))
        keep = set(wanted)
        for i, r in enumerate(df.to_dict("records"), start=2):
            pid = id_text(r["subject_id"])
            account.read(PATIENTS)
            if pid not in keep:
                account.drop(PATIENTS, NO_SAMPLE, f"{path}:{i} subject_id={pid}")
                continue
            row = _row(r)
            if row is None:
                account.drop(
                    PATIENTS,
                    UNPARSEABLE_VALUE,
                    f"{path}:{i} subject_id={pid} anchor_age={r['anchor_age']!r} "
                    f"anchor_year={r['anchor_year']!r}",
                )
                continue
            account.keep(PATIENTS)
            found[pid] = row
    missing = [p for p in wanted if p not in found]
    account.notes["patients_without_demographics"] = len(missing)
    rows = [
        {
            "patient_id": p,
            **found.get(p, {"sex": None, "anchor_age": float("nan"), "anchor_time": pd.NaT}),
            "race": None,
        }
        for p in wanted
    ]
    return pd.DataFrame(rows, columns=["patient_id", "sex", "anchor_age", "anchor_time", "race"])
