"""Benchmark runs to compare: records, provenance and predictions of one ``clerc benchmark``
output directory (or its ``results.json``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from clerc.evaluate.results import CELL_FIELDS, PAIRING_COLUMNS, PREDICTION_COLUMNS

#: Settings that depend on the model (supervised baselines and their differences do not).
MODEL_SETTINGS: tuple[str, ...] = ("retrieval", "zero_shot", "linear_probe")


@dataclass(frozen=True)
class Run:
    """One run: its display name, records (dicts), provenance and predictions (or None)."""

    name: str
    path: Path
    records: list[dict[str, Any]]
    provenance: dict[str, Any]
    predictions: pd.DataFrame | None

    @property
    def manifest_hash(self) -> str | None:
        return self.provenance.get("manifest_hash")

    @property
    def pairable(self) -> bool:
        """Whether its predictions carry the pairing pseudonyms."""
        return self.predictions is not None and all(
            c in self.predictions.columns for c in PAIRING_COLUMNS
        )

    @property
    def model(self) -> str:
        p = self.provenance
        return str(p.get("model") or p.get("checkpoint") or "—")

    def values(self) -> dict[tuple, dict[str, Any]]:
        """Model-dependent records of the paper's tables (no subgroup or label-efficiency
        records) keyed by cell fields + metric."""
        return {
            (*(r[f] for f in CELL_FIELDS), r["metric"]): r
            for r in self.records
            if r["setting"] in MODEL_SETTINGS
            and not r["metric"].endswith("_p_holm")
            and r.get("subgroup") is None
            and r.get("train_fraction") is None
        }


def cell_key(key: tuple) -> str:
    """The ``predictions.parquet`` cell of a record key (cell fields + metric)."""
    return "|".join(v or "" for v in key[: len(CELL_FIELDS)])


def load_run(path: str | Path, name: str) -> Run:
    """Read a run directory (``results.json`` + ``predictions.parquet``) or a results file."""
    from clerc.report.html import load_results

    path = Path(path)
    results = path / "results.json" if path.is_dir() else path
    doc = load_results(results)
    pred_path = results.with_name("predictions.parquet")
    predictions = None
    if pred_path.is_file():
        frame = pd.read_parquet(pred_path)
        missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"{pred_path}: missing columns {', '.join(missing)}")
        keep = [c for c in (*PREDICTION_COLUMNS, *PAIRING_COLUMNS) if c in frame.columns]
        predictions = frame[keep]
    return Run(name, results.parent, doc["records"], doc["provenance"], predictions)


def run_names(paths: list[Path], names: list[str] | None) -> list[str]:
    """The given names, or each run's directory name (made unique with ``#2``, ``#3``)."""
    if names:
        if len(names) != len(paths):
            raise ValueError(f"--names: {len(names)} names for {len(paths)} runs")
        if len(set(names)) != len(names):
            raise ValueError(f"--names: names must be distinct, got {names}")
        return list(names)
    out: list[str] = []
    for p in paths:
        p = Path(p)
        base = (p if p.is_dir() else p.parent).resolve().name or str(p)
        name, k = base, 2
        while name in out:
            name, k = f"{base}#{k}", k + 1
        out.append(name)
    return out
