"""Tables 1 and 2 of the paper (cohort counts and demographics) from a manifest.

Both are JSON-able dicts stored under ``results.json["cohort"]``:

- ``table1 = {"patients": {modality: n}, "pairs": {"a|b": n}}`` over all eight
  modalities, ``a`` before ``b`` in ``MODALITY_NAMES`` order; the four diagnostic
  modalities' pairs are the paper's Table 1.
- ``table2 = {"splits": ["total", "train", "val", "test"], "rows": {...}}`` with rows
  ``patients {split: n}``, ``age {split: {"mean", "std"}}`` (years at the patient's first
  sample; ``None`` when no patient has an age), ``female {split: {"n", "pct"}}``,
  ``race {race: {split: {"n", "pct"}}}`` (missing race counted as ``"Unknown"``), and
  ``patients_with_modality`` / ``studies`` / ``samples`` ``{modality: {split: n}}`` for
  the four diagnostic modalities.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from clerc.data.manifest import SPLITS, Manifest
from clerc.modalities import DIAGNOSTIC, MODALITY_NAMES

TABLE2_SPLITS: tuple[str, ...] = ("total", *SPLITS)


def table1(manifest: Manifest) -> dict[str, Any]:
    """Patients per modality and per pair of modalities."""
    s = manifest.samples
    have = {m: set(s.loc[s["modality"] == m, "patient_id"]) for m in MODALITY_NAMES}
    return {
        "patients": {m: len(have[m]) for m in MODALITY_NAMES},
        "pairs": {f"{a}|{b}": len(have[a] & have[b]) for a, b in combinations(MODALITY_NAMES, 2)},
    }


def _split_frames(manifest: Manifest) -> dict[str, pd.DataFrame]:
    s = manifest.samples
    return {"total": s, **{sp: s[s["split"] == sp] for sp in SPLITS}}


def _pct(n: int, total: int) -> dict[str, Any]:
    return {"n": int(n), "pct": round(100.0 * n / total, 1) if total else None}


def _age_stats(manifest: Manifest, samples: pd.DataFrame) -> dict[str, float | None]:
    first = samples.groupby("patient_id", sort=False)["acquired_at"].min()
    if first.empty:
        return {"mean": None, "std": None}
    ages = manifest.age_at(
        pd.Series(first.index, dtype="string"), pd.Series(first.to_numpy())
    ).to_numpy(dtype=float)
    ages = ages[np.isfinite(ages)]
    if ages.size == 0:
        return {"mean": None, "std": None}
    std = float(np.std(ages, ddof=1)) if ages.size > 1 else None
    return {"mean": round(float(np.mean(ages)), 2), "std": None if std is None else round(std, 2)}


def table2(manifest: Manifest) -> dict[str, Any]:
    """Demographics and per-modality counts for the whole cohort and each split."""
    frames = _split_frames(manifest)
    pat = manifest.patients.set_index("patient_id")
    race_all = pat["race"].fillna("Unknown")
    races = list(race_all.value_counts().index)
    rows: dict[str, Any] = {k: {} for k in ("patients", "age", "female")}
    rows["race"] = {r: {} for r in races}
    for key in ("patients_with_modality", "studies", "samples"):
        rows[key] = {m: {} for m in DIAGNOSTIC}
    for split, s in frames.items():
        ids = pd.Index(s["patient_id"].unique())
        n = len(ids)
        rows["patients"][split] = n
        rows["age"][split] = _age_stats(manifest, s)
        sex = pat["sex"].reindex(ids)
        rows["female"][split] = _pct(int((sex == "F").sum()), n)
        counts = race_all.reindex(ids).fillna("Unknown").value_counts()
        for r in races:
            rows["race"][r][split] = _pct(int(counts.get(r, 0)), n)
        for m in DIAGNOSTIC:
            sm = s[s["modality"] == m]
            rows["patients_with_modality"][m][split] = int(sm["patient_id"].nunique())
            rows["studies"][m][split] = int(sm["study_id"].nunique())
            rows["samples"][m][split] = len(sm)
    return {"splits": list(TABLE2_SPLITS), "rows": rows}


def cohort(manifest: Manifest) -> dict[str, Any]:
    """``{"table1": ..., "table2": ...}`` for ``results.json``."""
    return {"table1": table1(manifest), "table2": table2(manifest)}
