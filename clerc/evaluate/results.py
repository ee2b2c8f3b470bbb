"""The results schema (its one home): flat ``Record``s plus provenance, ``results.json``.

The record fields (``RECORD_FIELDS``), the key a record is identified by (``KEY_FIELDS``;
``CELL_FIELDS`` without the metric), the tables and settings, and the columns of
``predictions.parquet`` are defined here; ``check_record``/``index_records`` are the one
validation of a record read back as JSON (used by ``Record.from_dict``, the gate and the
report).

Every record has the same keys (see ``docs/CONTRACTS.md``). A metric that cannot be
computed is a record with ``value = None`` and a ``note`` saying why, never NaN.
Per-cell predictions for plots go to ``predictions.parquet`` (no patient ids; pairing
pseudonyms ``pair_patient``, ``pair_unit`` for ``clerc compare``): ``cell`` is
the record key fields ``table|task|setting|query|gallery|modality|label_modality`` (None
as empty), one row per test study (binary, regression: the study label and the averaged
score) or per query (retrieval: ``y_true = 1``, ``y_score`` = percentile of the match).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from importlib import metadata
from pathlib import Path
from typing import Any, overload

import pandas as pd

from clerc.modalities import MODALITIES

TABLES: tuple[str, ...] = ("table3", "table4", "table5")
#: ``oracle``: a ceiling from a synthetic cohort's planted latent variables (Table 3).
SETTINGS: tuple[str, ...] = (
    "retrieval",
    "zero_shot",
    "linear_probe",
    "supervised",
    "difference",
    "oracle",
    "knn_probe",
)
#: The fields that name a table cell; with ``metric`` (and, for the subgroup and
#: label-efficiency tasks, ``subgroup``/``train_fraction``) they identify a record.
CELL_FIELDS: tuple[str, ...] = (
    "table",
    "task",
    "setting",
    "query_modality",
    "gallery_modality",
    "modality",
    "label_modality",
)
#: Record keys that older results files may lack (read as null).
OPTIONAL_FIELDS: tuple[str, ...] = ("subgroup", "train_fraction")
KEY_FIELDS: tuple[str, ...] = (*CELL_FIELDS, "metric", *OPTIONAL_FIELDS)
#: Every field of a record, in ``results.json`` order.
RECORD_FIELDS: tuple[str, ...] = (
    *CELL_FIELDS,
    "metric",
    "value",
    "ci_low",
    "ci_high",
    "n",
    "n_undefined",
    "note",
    *OPTIONAL_FIELDS,
)
MODALITY_FIELDS: tuple[str, ...] = (
    "query_modality",
    "gallery_modality",
    "modality",
    "label_modality",
)
#: Columns of ``predictions.parquet``.
PREDICTION_COLUMNS: tuple[str, ...] = ("cell", "kind", "y_true", "y_score")
PREDICTION_KINDS: tuple[str, ...] = ("binary", "regression", "retrieval")
#: Optional columns of ``predictions.parquet``: pseudonyms that pair two runs' rows by
#: patient and study (``clerc.compare.pairing``; never the ids themselves).
PAIRING_COLUMNS: tuple[str, ...] = ("pair_patient", "pair_unit")
_PACKAGES: tuple[str, ...] = (
    "clerc-harness",
    "torch",
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "pyarrow",
)


def _finite_or_none(name: str, x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"Record.{name} must be finite or None, got {x}")
    return x


@dataclass(frozen=True)
class Record:
    """One cell of one table: a metric with its patient-bootstrap interval."""

    table: str
    task: str
    setting: str
    query_modality: str | None
    gallery_modality: str | None
    modality: str | None
    label_modality: str | None
    metric: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    n_undefined: int
    note: str | None
    #: The patients scored when not all: ``"sex=F"``, ``"age=60-69"``, ``"race=Black"``, or
    #: a family alone (``"sex"``) for its largest between-group gap (metric ``<m>_gap``).
    subgroup: str | None = None
    #: Fraction of the training patients a probe was fitted on (label efficiency).
    train_fraction: float | None = None

    def __post_init__(self) -> None:
        if self.table not in TABLES:
            raise ValueError(f"Record.table must be one of {TABLES}, got {self.table!r}")
        if self.setting not in SETTINGS:
            raise ValueError(f"Record.setting must be one of {SETTINGS}, got {self.setting!r}")
        for name in ("value", "ci_low", "ci_high"):
            object.__setattr__(self, name, _finite_or_none(name, getattr(self, name)))
        object.__setattr__(self, "n", int(self.n))
        object.__setattr__(self, "n_undefined", int(self.n_undefined))
        if self.train_fraction is not None:
            f = float(self.train_fraction)
            if not 0.0 < f <= 1.0:
                raise ValueError(f"Record.train_fraction must lie in (0, 1], got {f}")
            object.__setattr__(self, "train_fraction", f)
        if self.value is None and not self.note:
            raise ValueError(f"Record {self.key()}: an undefined value needs a note saying why")

    def key(self) -> tuple[str | float | None, ...]:
        """Identity of the cell (what the gate compares on)."""
        return tuple(getattr(self, f) for f in KEY_FIELDS)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "record") -> Record:
        check_record(d, where)
        values: dict[str, Any] = {n: d.get(n) for n in RECORD_FIELDS}
        return cls(**values)


assert tuple(f.name for f in fields(Record)) == RECORD_FIELDS


def check_record(rec: object, where: str) -> None:
    """Check a record read as JSON: an object with every field (``OPTIONAL_FIELDS`` may be
    missing, read as null), a known table and setting, modality fields naming modalities.
    ``where`` prefixes the message."""
    if not isinstance(rec, dict):
        raise ValueError(f"{where}: expected an object, got {type(rec).__name__}")
    missing = [f for f in RECORD_FIELDS if f not in rec and f not in OPTIONAL_FIELDS]
    if missing:
        raise ValueError(f"{where}: missing {', '.join(missing)}")
    if rec["table"] not in TABLES:
        raise ValueError(f"{where}: table {rec['table']!r} is not one of {TABLES}")
    if rec["setting"] not in SETTINGS:
        raise ValueError(f"{where}: setting {rec['setting']!r} is not one of {SETTINGS}")
    for field in MODALITY_FIELDS:
        if rec[field] is not None and rec[field] not in MODALITIES:
            raise ValueError(f"{where}: {field} {rec[field]!r} is not a modality")


def index_records(doc: object, source: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Records of a results document keyed by ``KEY_FIELDS``, each checked
    (``check_record``); a document without a records list or a repeated key is an error."""
    records = doc.get("records") if isinstance(doc, dict) else None
    if not isinstance(records, list):
        raise ValueError(f"{source}: expected a JSON object with a 'records' list")
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for i, rec in enumerate(records):
        check_record(rec, f"{source}: record {i}")
        key = tuple(rec.get(f) for f in KEY_FIELDS)
        if key in out:
            raise ValueError(f"{source}: record {i} repeats the key {key}")
        out[key] = rec
    return out


def undefined(base: dict[str, Any], metric: str, note: str, n: int = 0) -> Record:
    """A record whose metric could not be computed, with the reason."""
    return Record(
        **base, metric=metric, value=None, ci_low=None, ci_high=None, n=n, n_undefined=0, note=note
    )


def prediction_frame(cell: str, kind: str, y_true: Any, y_score: Any) -> pd.DataFrame:
    """One cell's rows of ``predictions.parquet`` (``PREDICTION_COLUMNS``)."""
    if kind not in PREDICTION_KINDS:
        raise ValueError(f"prediction kind {kind!r} not in {PREDICTION_KINDS}")
    return pd.DataFrame({"cell": cell, "kind": kind, "y_true": y_true, "y_score": y_score})


@dataclass(frozen=True, eq=False)
class TaskResult(Sequence[Record]):
    """What a task (or one cell of it) returns: its records and its prediction frames.

    A sequence of its records (``len``, indexing, iteration); ``+`` concatenates both
    parts, and a plain list of records can be added (it has no predictions).
    """

    records: tuple[Record, ...] = ()
    predictions: tuple[pd.DataFrame, ...] = ()

    def __add__(self, other: Iterable[Record]) -> TaskResult:
        if isinstance(other, TaskResult):
            return TaskResult(self.records + other.records, self.predictions + other.predictions)
        return TaskResult(self.records + tuple(other), self.predictions)

    @overload
    def __getitem__(self, i: int) -> Record: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Record]: ...
    def __getitem__(self, i: int | slice) -> Record | Sequence[Record]:
        return self.records[i]

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __eq__(self, other: object) -> bool:
        """Equal to a list or tuple of the same records; to a ``TaskResult`` with the same
        records and equal prediction frames."""
        if isinstance(other, TaskResult):
            return (
                self.records == other.records
                and len(self.predictions) == len(other.predictions)
                and all(
                    a.equals(b) for a, b in zip(self.predictions, other.predictions, strict=True)
                )
            )
        if isinstance(other, list | tuple):
            return list(self.records) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable-looking value: not hashable


def file_hash(path: str | Path) -> str:
    """SHA-256 of a file's bytes (streamed)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def code_revision() -> str | None:
    """The git commit of the working tree (``+dirty`` when modified), or None."""
    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("+dirty" if dirty.strip() else "")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def provenance(
    *,
    checkpoint_hash: str | None,
    manifest_hash: str | None,
    seed: int,
    command: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Where results came from: code, inputs, seed, versions, time and command line."""
    return {
        "code_revision": code_revision(),
        "checkpoint_hash": checkpoint_hash,
        "manifest_hash": manifest_hash,
        "seed": int(seed),
        "versions": package_versions(),
        "python": sys.version.split()[0],
        "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": list(sys.argv if command is None else command),
        **extra,
    }


def write_results(
    path: str | Path, records: list[Record], provenance: dict[str, Any], cohort: dict[str, Any]
) -> Path:
    """Write ``results.json``; keys are sorted by record order, values JSON-native."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"provenance": provenance, "cohort": cohort, "records": [r.to_dict() for r in records]}
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, allow_nan=False))
    tmp.replace(path)
    return path


def read_results(path: str | Path) -> tuple[list[Record], dict[str, Any], dict[str, Any]]:
    """Read ``results.json`` -> (records, provenance, cohort)."""
    doc = json.loads(Path(path).read_text())
    for key in ("provenance", "cohort", "records"):
        if key not in doc:
            raise ValueError(f"{path}: results lack the {key!r} block")
    records = [Record.from_dict(d, f"{path}: record {i}") for i, d in enumerate(doc["records"])]
    return records, doc["provenance"], doc["cohort"]


def predictions_frame(parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate per-cell prediction frames into the ``predictions.parquet`` shape."""
    if not parts:
        return pd.DataFrame(
            {
                "cell": pd.Series(dtype="string"),
                "kind": pd.Series(dtype="string"),
                "y_true": pd.Series(dtype="float64"),
                "y_score": pd.Series(dtype="float64"),
            }
        )
    pairing = [c for c in PAIRING_COLUMNS if all(c in p.columns for p in parts)]
    df = pd.concat([p[[*PREDICTION_COLUMNS, *pairing]] for p in parts], ignore_index=True)
    bad = sorted(set(df["kind"]) - set(PREDICTION_KINDS))
    if bad:
        raise ValueError(f"prediction kinds {bad} not in {PREDICTION_KINDS}")
    return df.astype(
        {
            "cell": "string",
            "kind": "string",
            "y_true": "float64",
            "y_score": "float64",
            **{c: "string" for c in pairing},
        }
    )


def write_predictions(path: str | Path, parts: Sequence[pd.DataFrame]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    predictions_frame(parts).to_parquet(path, index=False)
    return path
