"""The CLERC paper's published Tables 3-5 (``clerc/paper_values.toml``), keyed like records.

``paper_value(record)`` is the paper's number for a measured cell (or None): Table 3 by
(query, retrieved) for the median percentile, Table 4 by (modality, task, setting, metric),
Table 5 by (task, feature modality, metric); the label modality is not part of the key (the
paper prints one row per task). The report shows it beside the cell with the difference.
"""

from __future__ import annotations

import math
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

from clerc.modalities import DIAGNOSTIC, MODALITY_NAMES

PAPER_FILE = Path(__file__).resolve().parents[1] / "paper_values.toml"
Key = tuple[str, ...]


def _table3(doc: dict[str, Any], out: dict[Key, float]) -> None:
    t3 = doc["table3"]
    columns = t3["columns"]
    if sorted(columns) != sorted(MODALITY_NAMES) or sorted(t3["rows"]) != sorted(MODALITY_NAMES):
        raise ValueError(f"{PAPER_FILE}: table3 rows and columns must be the 8 modalities")
    for query, values in t3["rows"].items():
        if len(values) != len(columns):
            raise ValueError(
                f"{PAPER_FILE}: table3 row {query} has {len(values)} values, "
                f"expected {len(columns)}"
            )
        for gallery, v in zip(columns, values, strict=True):
            if (query == gallery) != math.isnan(v):
                raise ValueError(
                    f"{PAPER_FILE}: table3 {query}->{gallery}: nan exactly on the diagonal, got {v}"
                )
            if query != gallery:
                out[("table3", "retrieval", query, gallery, t3["metric"])] = float(v)


def _table4(doc: dict[str, Any], out: dict[Key, float]) -> None:
    for row in doc["table4"]:
        if row["modality"] not in DIAGNOSTIC:
            raise ValueError(f"{PAPER_FILE}: table4 modality {row['modality']!r}")
        for setting in ("zero_shot", "linear_probe"):
            out[("table4", setting, row["modality"], row["task"], row["metric"])] = float(
                row[setting]
            )


def _table5(doc: dict[str, Any], out: dict[Key, float]) -> None:
    columns = doc["table5"]["columns"]
    if sorted(columns) != sorted(DIAGNOSTIC):
        raise ValueError(f"{PAPER_FILE}: table5 columns must be {DIAGNOSTIC}")
    for row in doc["table5"]["rows"]:
        for modality, v in zip(columns, row["values"], strict=True):
            out[("table5", "linear_probe", modality, row["task"], row["metric"])] = float(v)


@cache
def paper_values(path: Path = PAPER_FILE) -> dict[Key, float]:
    """Every published value, keyed as :func:`record_key` keys a record."""
    doc = tomllib.loads(Path(path).read_text())
    out: dict[Key, float] = {}
    _table3(doc, out)
    _table4(doc, out)
    _table5(doc, out)
    return out


@cache
def paper_source(path: Path = PAPER_FILE) -> tuple[str, tuple[str, ...]]:
    """(citation, discrepancy notes) of the paper values file."""
    doc = tomllib.loads(Path(path).read_text())
    return str(doc["source"]), tuple(doc.get("notes", ()))


def record_key(rec: dict[str, Any]) -> Key | None:
    """The paper-values key of a record (a dict with the record's fields), or None."""
    table = rec["table"]
    if table == "table3":
        return (
            "table3",
            rec["setting"],
            rec["query_modality"],
            rec["gallery_modality"],
            rec["metric"],
        )
    if table in ("table4", "table5"):
        return (table, rec["setting"], rec["modality"], rec["task"], rec["metric"])
    return None


def paper_value(rec: dict[str, Any]) -> float | None:
    """The paper's number for the record's cell, or None where the paper has none."""
    key = record_key(rec)
    return None if key is None else paper_values().get(key)
