"""The manifest contract: three Parquet tables describing a cohort.

A manifest is a directory holding ``samples.parquet``, ``labels.parquet`` and
``patients.parquet`` (and, for synthetic cohorts, ``ground_truth.parquet``, never an
input to training). Sample paths are relative to that directory (absolute paths are
allowed). See ``docs/CONTRACTS.md`` for the full schema.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

SPLITS: tuple[str, ...] = ("train", "val", "test")

#: column -> pandas dtype, per table. Times are naive ``datetime64[ns]``.
SCHEMA: dict[str, dict[str, str]] = {
    "samples": {
        "patient_id": "string",
        "study_id": "string",
        "sample_id": "string",
        "modality": "string",
        "acquired_at": "datetime64[ns]",
        "path": "string",  # file path (relative to the manifest dir) or <NA> for inline text
        "text": "string",  # inline report text, or <NA>
        "split": "string",  # train | val | test, one per patient
    },
    "labels": {
        "patient_id": "string",
        "study_id": "string",  # may be <NA>
        "task": "string",  # lvef, pacemaker, rbbb, lbbb, lad_occlusion, ... (see tasks.toml)
        "value": "float64",  # binary tasks 0/1, continuous in natural units (LVEF in %)
        "measured_at": "datetime64[ns]",
        "source_modality": "string",  # diagnostic modality the label was read from
    },
    "patients": {
        "patient_id": "string",
        "sex": "string",  # "F" | "M" | <NA>
        "anchor_age": "float64",  # age in years at anchor_time
        "anchor_time": "datetime64[ns]",
        "race": "string",  # free text category, <NA> when unknown
    },
}

TABLES: tuple[str, ...] = tuple(SCHEMA)

#: Columns a table may lack (samples needs at least one of path and text).
OPTIONAL_COLUMNS: dict[str, set[str]] = {
    "samples": {"path", "text", "study_id"},
    "labels": {"study_id", "measured_at"},
    "patients": {"race"},
}


def resolve_path(root: str | Path, path: str | Path) -> Path:
    """``path`` as given when absolute, else relative to ``root`` (surrounding spaces cut)."""
    p = Path(str(path).strip())
    return p if p.is_absolute() else Path(root) / p


@dataclass(frozen=True)
class Manifest:
    """A loaded cohort: the three tables and the directory paths are relative to."""

    root: Path
    samples: pd.DataFrame
    labels: pd.DataFrame
    patients: pd.DataFrame

    def table(self, name: str) -> pd.DataFrame:
        return {"samples": self.samples, "labels": self.labels, "patients": self.patients}[name]

    def resolve(self, path: str) -> Path:
        """Absolute path of a sample file."""
        return resolve_path(self.root, path)

    def patient_split(self) -> pd.Series:
        """patient_id -> split, from the samples table."""
        s = self.samples.drop_duplicates("patient_id").set_index("patient_id")["split"]
        return s

    def age_at(self, patient_ids: pd.Series, times: pd.Series) -> pd.Series:
        """Age in years of each patient at each time (anchor_age + elapsed years)."""
        p = self.patients.set_index("patient_id")
        anchor_age = p["anchor_age"].reindex(patient_ids.to_numpy()).to_numpy()
        anchor_time = p["anchor_time"].reindex(patient_ids.to_numpy()).to_numpy()
        years = (times.to_numpy() - anchor_time) / pd.Timedelta(days=365.25)
        return pd.Series(anchor_age + years, index=patient_ids.index, name="age")


def empty_table(name: str) -> pd.DataFrame:
    """An empty table with the schema's columns and dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in SCHEMA[name].items()})


def coerce(name: str, df: pd.DataFrame) -> pd.DataFrame:
    """Return ``df`` with exactly the schema's columns, cast to the schema's dtypes.

    Missing optional columns are added as all-<NA>; extra columns are kept after the
    schema's. Raises ``ValueError`` naming the table and column when a cast fails.
    """
    out = df.copy()
    for col, dtype in SCHEMA[name].items():
        if col not in out.columns:
            out[col] = pd.Series(pd.NA, index=out.index, dtype="string")
        try:
            if dtype.startswith("datetime"):
                out[col] = pd.to_datetime(out[col], format="ISO8601")
            else:
                out[col] = out[col].astype(dtype)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name}.{col}: cannot cast to {dtype}: {exc}") from exc
    cols = list(SCHEMA[name]) + [c for c in out.columns if c not in SCHEMA[name]]
    return out[cols].reset_index(drop=True)


def write_manifest(
    root: str | Path, samples: pd.DataFrame, labels: pd.DataFrame, patients: pd.DataFrame
) -> Path:
    """Write the three tables as Parquet into ``root`` (created if needed)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for name, df in (("samples", samples), ("labels", labels), ("patients", patients)):
        coerce(name, df).to_parquet(root / f"{name}.parquet", index=False)
    return root


def read_manifest(root: str | Path) -> Manifest:
    """Load a manifest directory; a missing table, an unreadable file or a missing required
    column is an error naming the file (and the column)."""
    root = Path(root)
    tables = {}
    for name in TABLES:
        f = root / f"{name}.parquet"
        if not f.is_file():
            raise FileNotFoundError(f"{f}: manifest table {name!r} not found")
        tables[name] = coerce(name, _read_table(f, name))
    return Manifest(root=root, **tables)


def _read_table(f: Path, name: str) -> pd.DataFrame:
    """One raw table; refuses a file that is not Parquet or lacks a required column."""
    try:
        df = pd.read_parquet(f)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise ValueError(f"{f}: cannot read Parquet: {exc}") from exc
    for col in SCHEMA[name]:
        if col not in df.columns and col not in OPTIONAL_COLUMNS[name]:
            close = difflib.get_close_matches(col, [str(c) for c in df.columns], n=1, cutoff=0.6)
            hint = f" (found {close[0]!r})" if close else ""
            raise ValueError(
                f"{f}: required column {col!r} missing{hint}; "
                f"`clerc validate {f.parent}` lists every problem"
            )
    return df


def manifest_hash(root: str | Path) -> str:
    """SHA-256 over the three table files (not the media they point to)."""
    h = hashlib.sha256()
    for name in TABLES:
        h.update((Path(root) / f"{name}.parquet").read_bytes())
    return h.hexdigest()


def require_disjoint_splits(manifest: Manifest) -> None:
    """Refuse a manifest with a patient in more than one split: training on a patient that
    is also scored leaks (the paper splits by patient). The message names the patients."""
    s = manifest.samples[["patient_id", "split"]].dropna().astype(str).drop_duplicates()
    counts = s.groupby("patient_id")["split"].agg(lambda v: ", ".join(sorted(v)))
    both = counts[s.groupby("patient_id").size() > 1]
    if both.empty:
        return
    shown = "; ".join(f"{p}: {v}" for p, v in list(both.items())[:5])
    raise ValueError(
        f"{manifest.root / 'samples.parquet'}: {len(both)} patient(s) in more "
        f"than one split ({shown}{'; ...' if len(both) > 5 else ''}); splits "
        f"must be by patient, or the scores leak. `clerc validate "
        f"{manifest.root}` lists every row"
    )
