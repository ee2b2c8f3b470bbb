"""Which tasks a baseline learns, and the label of every sample for each of them.

The tasks come from the evaluation's own definitions (``clerc/evaluate/tasks.toml``), so a
baseline predicts exactly the cells the supervised scorer fills: every Table 4 definition
owned by the modality (echo: lvef, pacemaker_echo; ECG: rbbb, lbbb, pacemaker_ecg; angio:
the three occlusions; CXR: consolidation, edema) plus the demographic ``age`` and ``sex``.
Prediction rows name the definition (``pacemaker_ecg``), which the scorer resolves
unambiguously.

A sample's label is its study's label when that study is labelled (same ``study_id``,
task and source modality), else the same patient's label closest in time to the sample
within ``max_gap`` (:func:`clerc.evaluate.matching.study_or_nearest`); age is the patient's
age at the sample's time (``Manifest.age_at``), sex is 1 for F and 0 for M. Missing
labels are NaN; the loss masks them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

from clerc.data.manifest import Manifest
from clerc.evaluate.matching import study_or_nearest
from clerc.evaluate.registry import DEMOGRAPHIC, TaskDef, load_definitions
from clerc.modalities import DIAGNOSTIC

#: Largest time between a sample and a label of another study matched to it.
DEFAULT_MAX_GAP = timedelta(days=365)


@dataclass(frozen=True)
class HeadSpec:
    """One output head: the task definition it predicts, its label and its kind."""

    name: str
    label: str
    kind: str
    label_modality: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("binary", "regression"):
            raise ValueError(
                f"head {self.name!r}: kind must be binary or regression, got {self.kind!r}"
            )
        if self.label not in DEMOGRAPHIC and self.label_modality not in DIAGNOSTIC:
            raise ValueError(
                f"head {self.name!r}: label {self.label!r} needs a label_modality "
                f"among {DIAGNOSTIC}, got {self.label_modality!r}"
            )

    @classmethod
    def from_def(cls, d: TaskDef) -> HeadSpec:
        return cls(d.name, d.label, d.kind, d.label_modality)

    def to_dict(self) -> dict[str, str | None]:
        return {
            "name": self.name,
            "label": self.label,
            "kind": self.kind,
            "label_modality": self.label_modality,
        }

    @classmethod
    def from_dict(cls, d: dict) -> HeadSpec:
        return cls(str(d["name"]), str(d["label"]), str(d["kind"]), d.get("label_modality"))


def baseline_heads(
    modality: str, definitions: Sequence[TaskDef] | None = None
) -> tuple[HeadSpec, ...]:
    """The heads of ``modality``'s baseline: its Table 4 tasks, then age and sex."""
    if modality not in DIAGNOSTIC:
        raise ValueError(
            f"baselines: {modality!r} is not a diagnostic modality; expected one of {DIAGNOSTIC}"
        )
    defs = tuple(definitions) if definitions is not None else load_definitions()
    own = [d for d in defs if d.table4 and d.modality == modality]
    demo = [d for d in defs if d.label in DEMOGRAPHIC and d.modality is None]
    return tuple(HeadSpec.from_def(d) for d in own + demo)


def sample_labels(
    manifest: Manifest,
    samples: pd.DataFrame,
    heads: Sequence[HeadSpec],
    max_gap: timedelta = DEFAULT_MAX_GAP,
) -> np.ndarray:
    """``float64 (len(samples), len(heads))``: each sample's label per head, NaN if none."""
    out = np.full((len(samples), len(heads)), np.nan)
    for k, head in enumerate(heads):
        if head.label == "age":
            out[:, k] = manifest.age_at(
                samples["patient_id"].astype("string"), samples["acquired_at"]
            ).to_numpy(float)
        elif head.label == "sex":
            sex = manifest.patients.set_index("patient_id")["sex"]
            v = sex.reindex(samples["patient_id"].to_numpy())
            female = (v == "F").fillna(False).to_numpy(bool)
            male = (v == "M").fillna(False).to_numpy(bool)
            out[:, k] = np.where(female, 1.0, np.where(male, 0.0, np.nan))
        else:
            out[:, k] = _matched(manifest, samples, head, max_gap)
    return out


def _matched(
    manifest: Manifest, samples: pd.DataFrame, head: HeadSpec, max_gap: timedelta
) -> np.ndarray:
    """Same-study label, else the patient's closest label in time within ``max_gap``."""
    lab = manifest.labels
    lab = lab[(lab["task"] == head.label) & (lab["source_modality"] == head.label_modality)]
    rows = pd.DataFrame(
        {
            "patient_id": samples["patient_id"].to_numpy(),
            "study_id": samples["study_id"].to_numpy(),
            "time": samples["acquired_at"].to_numpy(),
        }
    )
    return study_or_nearest(rows, lab, pd.Timedelta(max_gap))


@dataclass(frozen=True)
class TargetStats:
    """Train-split statistics: regression mean/std (targets are standardised with them)
    and binary ``pos_weight`` (negatives / positives, 1 when a class is missing)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    pos_weight: tuple[float, ...]

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std), "pos_weight": list(self.pos_weight)}

    @classmethod
    def from_dict(cls, d: dict) -> TargetStats:
        return cls(
            tuple(map(float, d["mean"])),
            tuple(map(float, d["std"])),
            tuple(map(float, d["pos_weight"])),
        )


def target_stats(labels: np.ndarray, heads: Sequence[HeadSpec]) -> TargetStats:
    """Statistics of the train labels ``(N, K)`` (NaN = missing) for each head."""
    mean, std, pos_weight = [], [], []
    for k, head in enumerate(heads):
        y = labels[:, k][np.isfinite(labels[:, k])]
        if head.kind == "regression":
            mean.append(float(y.mean()) if y.size else 0.0)
            sd = float(y.std()) if y.size > 1 else 0.0
            std.append(sd if sd > 0 else 1.0)
            pos_weight.append(1.0)
        else:
            pos, neg = int((y == 1).sum()), int((y == 0).sum())
            mean.append(0.0)
            std.append(1.0)
            pos_weight.append(neg / pos if pos and neg else 1.0)
    return TargetStats(tuple(mean), tuple(std), tuple(pos_weight))
