"""What every adapter shares: the account of rows read and dropped, splits, writing.

An adapter reads the CSVs of a public dataset row by row. Every row it reads is either
kept or dropped with a reason (one of ``REASONS``); the :class:`Account` counts both,
keeps a few example rows per reason, prints a table and is written as ``account.json``
beside the manifest. Bad rows never stop a run and never vanish silently.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clerc.data.manifest import SCHEMA, SPLITS, write_manifest

MISSING_FILE = "missing file"
UNREADABLE_FILE = "unreadable file"
BAD_TIME = "unparseable time"
NO_TIME = "no time"
NO_LABEL = "no label"
UNPARSEABLE_VALUE = "unparseable value"
UNCERTAIN = "uncertain label"
BEYOND_GAP = "beyond the time gap"
STILL = "single-frame still"
NON_FRONTAL = "non-frontal view"
UNKNOWN_VIEW = "unknown view"
EMPTY_REPORT = "empty report"
UNKNOWN_SPLIT = "unknown split"
DUPLICATE = "duplicate"
NO_SAMPLE = "patient has no sample"
MISSING_ID = "missing id"

REASONS: tuple[str, ...] = (
    MISSING_FILE,
    UNREADABLE_FILE,
    BAD_TIME,
    NO_TIME,
    NO_LABEL,
    UNPARSEABLE_VALUE,
    UNCERTAIN,
    BEYOND_GAP,
    STILL,
    NON_FRONTAL,
    UNKNOWN_VIEW,
    EMPTY_REPORT,
    UNKNOWN_SPLIT,
    DUPLICATE,
    NO_SAMPLE,
    MISSING_ID,
)

#: Examples kept per (source, reason) in account.json.
MAX_EXAMPLES = 5
#: Default train / val / test fractions for patients without an official split.
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.8, 0.1, 0.1)

SAMPLE_COLUMNS = [c for c in SCHEMA["samples"] if c != "split"]
LABEL_COLUMNS = list(SCHEMA["labels"])


@dataclass
class SourceTally:
    """Counts for one source (a CSV, or one kind of row in it)."""

    read: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "kept": self.kept,
            "dropped": dict(self.dropped),
            "examples": self.examples,
        }


class Account:
    """Rows read, kept and dropped (with reasons) per source, plus the run's settings."""

    def __init__(
        self, dataset: str, settings: Mapping[str, Any] | None = None, *, progress: Any = None
    ) -> None:
        self.dataset = dataset
        self.settings: dict[str, Any] = dict(settings or {})
        self.notes: dict[str, Any] = {}
        self.messages: list[str] = []  # what the user must know (a fallback, a layout found)
        self.outputs: dict[str, Any] = {}
        self.sources: dict[str, SourceTally] = {}
        self.progress = progress  # a rich Progress: one live row counter per source
        self._bars: dict[str, Any] = {}

    def _tally(self, source: str) -> SourceTally:
        return self.sources.setdefault(source, SourceTally())

    def read(self, source: str, n: int = 1) -> None:
        self._tally(source).read += n
        if self.progress is not None:
            if source not in self._bars:
                self._bars[source] = self.progress.add_task(f"reading {source}", total=None)
            self.progress.advance(self._bars[source], n)

    def keep(self, source: str, n: int = 1) -> None:
        self._tally(source).kept += n

    def drop(self, source: str, reason: str, ref: str, n: int = 1) -> None:
        """Count ``n`` rows of ``source`` dropped for ``reason``; ``ref`` names the row."""
        if reason not in REASONS:
            raise ValueError(f"unknown drop reason {reason!r}; expected one of {REASONS}")
        tally = self._tally(source)
        tally.dropped[reason] += n
        examples = tally.examples.setdefault(reason, [])
        if len(examples) < MAX_EXAMPLES:
            examples.append(ref)

    def drop_many(self, source: str, reason: str, n: int, refs: Iterable[str]) -> None:
        """Count ``n`` rows dropped for ``reason``; ``refs`` names (some of) them."""
        if n <= 0:
            return
        refs = list(refs)[:MAX_EXAMPLES]
        self.drop(source, reason, refs[0] if refs else "", n)
        examples = self.sources[source].examples[reason]
        examples.extend(refs[1 : MAX_EXAMPLES - len(examples) + 1])

    def say(self, text: str) -> None:
        """A message printed under the table and kept in ``account.json``."""
        self.messages.append(text)

    def dropped(self, source: str) -> dict[str, int]:
        """reason -> count for one source (empty when nothing was dropped)."""
        return dict(self.sources[source].dropped) if source in self.sources else {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "settings": self.settings,
            "notes": self.notes,
            "messages": self.messages,
            "sources": {k: v.to_dict() for k, v in self.sources.items()},
            "outputs": self.outputs,
        }

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False, default=str) + "\n")
        return path

    def print(self, console: Any = None) -> None:
        """Print the tally as a rich table (source, read, kept, dropped by reason)."""
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"clerc adapt {self.dataset}: rows read and dropped")
        for col in ("source", "read", "kept", "dropped (reason: rows)"):
            table.add_column(col, justify="right" if col in ("read", "kept") else "left")
        for name, t in self.sources.items():
            why = ", ".join(f"{r}: {n}" for r, n in sorted(t.dropped.items())) or "-"
            table.add_row(name, str(t.read), str(t.kept), why)
        (console or Console()).print(table)
        for text in self.messages:
            (console or Console()).print(text, markup=False, highlight=False)
        if self.outputs:
            (console or Console()).print(f"wrote {self.outputs}")


@dataclass(frozen=True)
class Part:
    """What one module of a dataset contributes: samples (no split yet), labels, splits."""

    samples: pd.DataFrame
    labels: pd.DataFrame
    official_splits: dict[str, str] = field(default_factory=dict)


def samples_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """A samples table (without split) from dict rows; empty rows give the right columns."""
    return pd.DataFrame(list(rows), columns=SAMPLE_COLUMNS)


def labels_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=LABEL_COLUMNS)


def table_path(path: Path) -> Path | None:
    """The table as released, gzipped or not: ``x.csv`` or ``x.csv.gz`` (either name may be
    given; the exact one wins), or None when neither exists."""
    path = Path(path)
    other = (
        path.with_name(path.name[:-3])
        if path.name.endswith(".gz")
        else path.with_name(path.name + ".gz")
    )
    return next((p for p in (path, other) if p.is_file()), None)


def read_csv(path: Path, **kwargs: Any) -> pd.DataFrame:
    """Read a CSV as strings, from ``path`` or its gzipped / plain twin (:func:`table_path`);
    a missing file names both."""
    found = table_path(path)
    if found is None:
        alt = path.name[:-3] if path.name.endswith(".gz") else path.name + ".gz"
        raise FileNotFoundError(f"{path}: required file not found (nor {alt})")
    return pd.read_csv(found, dtype=str, keep_default_na=True, **kwargs)


def require_columns(df: pd.DataFrame, path: Path, columns: Iterable[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")


def text_or_none(value: Any) -> str | None:
    """The stripped string, or None for NA / empty."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    s = str(value).strip()
    return s or None


def id_text(value: Any) -> str | None:
    """An identifier as text: ``"15709.0"`` -> ``"15709"``; NA -> None."""
    s = text_or_none(value)
    if s is None:
        return None
    if s.endswith(".0") and s[:-2].isdigit():
        return s[:-2]
    return s


def parse_time(value: Any) -> pd.Timestamp | None:
    """A timestamp from text, or None when empty or unparseable."""
    s = text_or_none(value)
    if s is None:
        return None
    try:
        t = pd.Timestamp(s)
    except (ValueError, TypeError, OverflowError):
        return None
    return None if pd.isna(t) else t.tz_localize(None) if t.tzinfo else t


def split_fraction(patient_id: str, seed: int) -> float:
    """A reproducible number in [0, 1) for a patient (SHA-256 of seed and id)."""
    digest = hashlib.sha256(f"{seed}:{patient_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_splits(
    patient_ids: Iterable[str],
    seed: int,
    official: Mapping[str, str] | None = None,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
) -> dict[str, str]:
    """patient_id -> split. An official split wins; the rest are hashed with ``seed``.

    Hashing each patient on its own keeps a patient's split unchanged when other
    patients are added or removed, and the same seed always gives the same splits.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(
            f"split fractions must be three non-negative numbers summing to 1, got {fractions}"
        )
    official = dict(official or {})
    bad = {p: s for p, s in official.items() if s not in SPLITS}
    if bad:
        raise ValueError(f"official splits must be one of {SPLITS}; got {bad}")
    out: dict[str, str] = {}
    for pid in patient_ids:
        if pid in official:
            out[pid] = official[pid]
            continue
        u = split_fraction(pid, seed)
        out[pid] = (
            "train" if u < fractions[0] else "val" if u < fractions[0] + fractions[1] else "test"
        )
    return out


def finish(
    out: str | Path,
    samples: pd.DataFrame,
    labels: pd.DataFrame,
    patients: pd.DataFrame,
    account: Account,
    *,
    quiet: bool = False,
) -> Path:
    """Write the manifest and ``account.json`` into ``out``; print the account."""
    out = Path(out)
    write_manifest(out, samples, labels, patients)
    account.outputs = {
        "samples": {
            str(k): int(v) for k, v in samples["modality"].value_counts().sort_index().items()
        },
        "labels": {str(k): int(v) for k, v in labels["task"].value_counts().sort_index().items()},
        "patients": len(patients),
        "splits": {
            str(k): int(v)
            for k, v in samples.drop_duplicates("patient_id")["split"]
            .value_counts()
            .sort_index()
            .items()
        },
    }
    account.write(out / "account.json")
    if not quiet:
        account.print()
    return out


def drop_beyond_gap(
    samples: pd.DataFrame, labels: pd.DataFrame, max_gap_days: float | None, account: Account
) -> pd.DataFrame:
    """Labels within ``max_gap_days`` of a sample of their own modality and patient.

    A label whose ``source_modality`` has no sample of the same patient within the gap
    (or none at all) is dropped and counted under ``labels <task>``.
    """
    if max_gap_days is None or labels.empty:
        return labels
    left = labels.assign(
        _row=range(len(labels)),
        _t=pd.to_datetime(labels["measured_at"]).astype("datetime64[ns]"),
        _p=labels["patient_id"].astype(str),
        _m=labels["source_modality"].astype(str),
    ).sort_values("_t")
    right = pd.DataFrame(
        {
            "_t": pd.to_datetime(samples["acquired_at"]).astype("datetime64[ns]"),
            "_p": samples["patient_id"].astype(str),
            "_m": samples["modality"].astype(str),
        }
    )
    right = right.dropna(subset=["_t"]).sort_values("_t").assign(_hit=True)
    near = pd.merge_asof(
        left.dropna(subset=["_t"]),
        right,
        on="_t",
        by=["_p", "_m"],
        direction="nearest",
        tolerance=pd.Timedelta(days=max_gap_days),
    )
    keep = np.zeros(len(labels), bool)
    keep[near.loc[near["_hit"].eq(True), "_row"].to_numpy(dtype=np.int64)] = True
    tasks = labels["task"].astype(str).to_numpy()
    for task in sorted(set(tasks)):
        source, rows = f"labels {task}", np.flatnonzero(tasks == task)
        kept = int(keep[rows].sum())
        account.read(source, len(rows))
        account.keep(source, kept)
        lost = rows[~keep[rows]]
        refs = (
            f"patient_id={labels['patient_id'].iloc[i]} study_id="
            f"{labels['study_id'].iloc[i]} measured_at={labels['measured_at'].iloc[i]}"
            for i in lost[:MAX_EXAMPLES]
        )
        account.drop_many(source, BEYOND_GAP, len(lost), refs)
    return labels[keep].reset_index(drop=True)


def drop_orphan_labels(
    labels: pd.DataFrame, patient_ids: set[str], account: Account
) -> pd.DataFrame:
    """Labels of patients that have at least one sample; the others are counted."""
    keep = labels["patient_id"].isin(patient_ids)
    for r in labels[~keep].itertuples(index=False):
        account.read(f"labels {r.task}")
        account.drop(
            f"labels {r.task}", NO_SAMPLE, f"patient_id={r.patient_id} study_id={r.study_id}"
        )
    return labels[keep].reset_index(drop=True)
