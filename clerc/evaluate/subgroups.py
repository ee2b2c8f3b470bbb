"""Subgroups of the scored test rows: sex, age band and race, from the patients table.

A *family* (``sex``, ``age``, ``race``) splits the rows of a cell into groups. Sex and race
are per patient (a missing value is the group ``unknown``); the age band is per study,
from the patient's age at the study's time, so a patient scanned at 59 and at 61 counts
in both bands. Bands are decades (``60-69``) by default, or ``[lo, hi)`` intervals between
user-set edges (``<40``, ``40-65``, ``>=65``). Records carry ``"<family>=<group>"`` in
their ``subgroup`` key; groups with fewer than ``min_patients`` patients are reported as
too small and not scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from clerc.data.manifest import Manifest

FAMILIES: tuple[str, ...] = ("sex", "age", "race")
UNKNOWN = "unknown"


@dataclass(frozen=True)
class SubgroupConfig:
    """Which families are scored, the age band edges (empty = decades), the minimum size."""

    families: tuple[str, ...] = FAMILIES
    age_edges: tuple[float, ...] = ()
    min_patients: int = 10

    def __post_init__(self) -> None:
        bad = [f for f in self.families if f not in FAMILIES]
        if bad:
            raise ValueError(f"subgroup families {bad} unknown; expected some of {FAMILIES}")
        edges = tuple(float(e) for e in self.age_edges)
        if any(not np.isfinite(e) for e in edges) or list(edges) != sorted(set(edges)):
            raise ValueError(
                f"age band edges must be finite and strictly increasing, got {list(self.age_edges)}"
            )
        object.__setattr__(self, "age_edges", edges)
        if int(self.min_patients) < 2:
            raise ValueError(f"subgroup min_patients must be >= 2, got {self.min_patients}")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def age_band(age: np.ndarray, edges: tuple[float, ...] = ()) -> np.ndarray:
    """Band label of each age: decades (``60-69``) or ``[lo, hi)`` between ``edges``
    (``<lo``, ``lo-hi``, ``>=hi``); a missing age is ``unknown``."""
    a = np.asarray(age, dtype=np.float64)
    out = np.full(a.shape, UNKNOWN, dtype=object)
    ok = np.isfinite(a)
    if not edges:
        lo = (np.floor(a[ok] / 10) * 10).astype(np.int64)
        out[ok] = [f"{v}-{v + 9}" for v in lo]
        return out
    labels = (
        [f"<{_num(edges[0])}"]
        + [f"{_num(lo)}-{_num(hi)}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
        + [f">={_num(edges[-1])}"]
    )
    out[ok] = np.asarray(labels, dtype=object)[np.searchsorted(edges, a[ok], side="right")]
    return out


def _band_order(label: str) -> tuple[int, float, str]:
    if label == UNKNOWN:
        return (2, 0.0, label)
    head = label.lstrip("<>=").split("-")[0]
    try:
        return (0, float(head) - (0.5 if label.startswith("<") else 0.0), label)
    except ValueError:
        return (1, 0.0, label)


def group_order(family: str, labels: list[str]) -> list[str]:
    """Groups in display order: age bands by age, others alphabetically, unknown last."""
    if family == "age":
        return sorted(labels, key=_band_order)
    return sorted(labels, key=lambda g: (g == UNKNOWN, g))


def study_times(manifest: Manifest) -> pd.Series:
    """study_id -> time of the study's first sample (a sample without a study is its own
    study ``sample:<id>``, as the tasks number them)."""
    s = manifest.samples
    study = s["study_id"].fillna("sample:" + s["sample_id"].astype(str)).astype(str)
    return s["acquired_at"].groupby(study.to_numpy()).min()


def group_tables(manifest: Manifest, config: SubgroupConfig) -> dict[str, pd.Series]:
    """Per family, the group of every patient (sex, race: indexed by patient_id) or of
    every study (age: indexed by study_id, from the patient's age at the study's time);
    built once and shared by every cell (`assign` with ``tables``)."""
    patients = manifest.patients.astype({"patient_id": str}).set_index("patient_id")
    out = {}
    for family in config.families:
        if family in ("sex", "race"):
            v = patients[family]
            out[family] = v.astype(object).where(v.notna(), UNKNOWN).astype(str)
            continue
        s = manifest.samples
        study = s["study_id"].fillna("sample:" + s["sample_id"].astype(str)).astype(str)
        first = (
            s.assign(study=study.to_numpy())
            .groupby("study", sort=False)
            .agg(patient_id=("patient_id", "first"), time=("acquired_at", "min"))
        )
        age = manifest.age_at(first["patient_id"].astype(str), first["time"])
        out[family] = pd.Series(
            age_band(age.to_numpy(dtype=np.float64), config.age_edges), index=first.index
        )
    return out


def assign(
    manifest: Manifest,
    frame: pd.DataFrame,
    family: str,
    config: SubgroupConfig,
    times: pd.Series | None = None,
    tables: dict[str, pd.Series] | None = None,
) -> np.ndarray:
    """The group of each row of ``frame`` (columns patient_id, study_id) in ``family``
    (looked up in ``tables`` from `group_tables` when given)."""
    if tables is not None and family in tables:
        col = "study_id" if family == "age" else "patient_id"
        g = tables[family].reindex(frame[col].astype(str).to_numpy())
        return g.where(g.notna(), UNKNOWN).to_numpy(dtype=object)
    pid = frame["patient_id"].astype(str).to_numpy()
    patients = manifest.patients.astype({"patient_id": str}).set_index("patient_id")
    if family in ("sex", "race"):
        v = patients[family].reindex(pid)
        return v.astype(object).where(v.notna(), UNKNOWN).astype(str).to_numpy(dtype=object)
    if family != "age":
        raise ValueError(f"unknown subgroup family {family!r}; expected one of {FAMILIES}")
    times = study_times(manifest) if times is None else times
    t = times.reindex(frame["study_id"].astype(str).to_numpy())
    age = manifest.age_at(pd.Series(pid), pd.Series(t.to_numpy())).to_numpy(dtype=np.float64)
    return age_band(age, config.age_edges)
