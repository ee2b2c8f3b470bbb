"""The evaluation task registry, the scoring context, and the predictive task definitions.

A ``Task`` is one setting of one table (retrieval, zero-shot, linear probe, cross-modal
probe, supervised); its ``run(context)`` returns ``Record``s. Task *definitions* (which
label, which modality, which prompt) live in ``tasks.toml``; users extend them with
their own TOML file.
"""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from clerc.data.manifest import Manifest
from clerc.evaluate.embeddings import Embeddings
from clerc.evaluate.knn import LabelEfficiencyConfig
from clerc.evaluate.results import Record
from clerc.evaluate.subgroups import SubgroupConfig
from clerc.modalities import DIAGNOSTIC
from clerc.registry import Registry

DEFAULT_TASKS_FILE = Path(__file__).with_name("tasks.toml")
KINDS: tuple[str, ...] = ("binary", "regression")
#: Labels taken from the patients table rather than labels.parquet.
DEMOGRAPHIC: tuple[str, ...] = ("age", "sex")


@dataclass(frozen=True)
class TaskDef:
    """One predictive task: label, kind, owning modality and its zero-shot prompt(s)."""

    name: str
    label: str
    kind: str
    modality: str | None = None
    label_modality: str | None = None
    prompt: str | None = None
    template: str | None = None
    placeholder: str | None = None
    values: tuple[float, ...] = ()
    table4: bool = True
    table5: bool = True

    def __post_init__(self) -> None:
        where = f"task definition {self.name!r}"
        if self.kind not in KINDS:
            raise ValueError(f"{where}: kind must be one of {KINDS}, got {self.kind!r}")
        for attr in ("modality", "label_modality"):
            v = getattr(self, attr)
            if v is not None and v not in DIAGNOSTIC:
                raise ValueError(f"{where}: {attr} must be one of {DIAGNOSTIC}, got {v!r}")
        if self.label in DEMOGRAPHIC:
            if self.label_modality is not None:
                raise ValueError(f"{where}: {self.label} comes from patients; no label_modality")
        elif self.label_modality is None:
            raise ValueError(f"{where}: label_modality is required for label {self.label!r}")
        if self.table4 and self.modality is None:
            raise ValueError(f"{where}: a Table 4 task needs a modality")
        if self.template is not None:
            if not self.placeholder or self.placeholder not in self.template:
                raise ValueError(f"{where}: sweep placeholder {self.placeholder!r} "
                                 "is not in the template")
            if len(self.values) < 2:
                raise ValueError(f"{where}: a sweep needs at least two values")

    @property
    def prompts(self) -> list[str]:
        """Zero-shot prompt texts: one for binary tasks, the sweep for regression."""
        if self.template is not None:
            return [self.template.replace(self.placeholder or "", _fmt(v)) for v in self.values]
        return [self.prompt] if self.prompt else []

    @property
    def has_zero_shot(self) -> bool:
        if self.kind == "regression":
            return self.template is not None
        return self.prompt is not None


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def _taskdef(d: dict[str, Any], where: str) -> TaskDef:
    d = dict(d)
    sweep = d.pop("sweep", None)
    if sweep is not None:
        d["placeholder"] = sweep.get("placeholder")
        d["values"] = tuple(float(v) for v in sweep.get("values", ()))
    known = set(TaskDef.__dataclass_fields__)
    unknown = sorted(set(d) - known)
    if unknown or "name" not in d:
        raise ValueError(f"{where}: task {d.get('name')!r} has unknown keys {unknown} "
                         f"or no name; expected keys from {sorted(known | {'sweep'})}")
    return TaskDef(**d)


def load_definitions(extra: str | Path | None = None) -> tuple[TaskDef, ...]:
    """The packaged definitions, then ``extra``'s (a same-name definition replaces)."""
    defs: dict[str, TaskDef] = {}
    for path in [DEFAULT_TASKS_FILE] + ([Path(extra)] if extra else []):
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"{path}: cannot read task definitions: {exc}") from exc
        for d in data.get("task", []):
            t = _taskdef(d, str(path))
            defs[t.name] = t
    return tuple(defs.values())


def all_prompts(defs: tuple[TaskDef, ...]) -> list[str]:
    """Every zero-shot prompt text, de-duplicated, in definition order."""
    return list(dict.fromkeys(p for d in defs for p in d.prompts))


@dataclass(frozen=True)
class Context:
    """What every task reads: embeddings, manifest, definitions and scoring settings.

    ``predictions`` collects per-cell prediction frames (cell, kind, y_true, y_score);
    ``cache`` shares per-cell study-level predictions between tasks (probe -> supervised).
    """

    embeddings: Embeddings
    manifest: Manifest
    definitions: tuple[TaskDef, ...] = field(default_factory=load_definitions)
    n_resamples: int = 1000
    max_gap: timedelta = timedelta(days=365)
    seed: int = 0
    supervised: pd.DataFrame | None = None
    subgroups: SubgroupConfig = field(default_factory=SubgroupConfig)
    label_efficiency: LabelEfficiencyConfig = field(default_factory=LabelEfficiencyConfig)
    predictions: list[pd.DataFrame] = field(default_factory=list)
    cache: dict[Any, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.n_resamples < 0:
            raise ValueError(f"n_resamples must be >= 0, got {self.n_resamples}")
        if self.max_gap < timedelta(0):
            raise ValueError(f"max_gap must be >= 0, got {self.max_gap}")

    def add_predictions(self, cell: str, kind: str, y_true: Any, y_score: Any,
                        patients: Any = None, units: Any = None) -> None:
        """Save one cell's rows; ``patients`` and ``units`` (study or query ids) are stored
        only as pseudonyms (``clerc.compare.pairing``), for pairing runs by patient."""
        frame = pd.DataFrame({"cell": cell, "kind": kind, "y_true": y_true, "y_score": y_score})
        if patients is not None and units is not None:
            from clerc.compare.pairing import pairing_key, pseudonyms

            if "pairing_key" not in self.cache:
                self.cache["pairing_key"] = pairing_key(self.manifest.patients["patient_id"])
            key = self.cache["pairing_key"]
            frame["pair_patient"] = pseudonyms(key, patients)
            frame["pair_unit"] = pseudonyms(key, units)
        self.predictions.append(frame)


@dataclass(frozen=True)
class Task:
    """One evaluation task: a setting of one table, run on a ``Context``."""

    name: str
    table: str
    setting: str
    run: Callable[[Context], list[Record]]
    description: str = ""


TASKS: Registry[Task] = Registry("task")


def task(name: str, table: str, setting: str) -> Callable[[Callable[[Context], list[Record]]],
                                                           Callable[[Context], list[Record]]]:
    """Decorator: register ``fn`` as the task ``name`` (its docstring is the description)."""

    def wrap(fn: Callable[[Context], list[Record]]) -> Callable[[Context], list[Record]]:
        TASKS.add(name, Task(name, table, setting, fn, (fn.__doc__ or "").strip().split("\n")[0]))
        return fn

    return wrap


#: Task modules, imported in the order their tasks should run (the tables' order).
TASK_MODULES: tuple[str, ...] = tuple(
    f"clerc.evaluate.tasks.{m}" for m in ("retrieval", "oracle", "zeroshot", "probe",
                                          "crossmodal", "supervised", "subgroups",
                                          "label_efficiency"))


def load_tasks() -> Registry[Task]:
    """Import the task modules (which register themselves) and return the registry."""
    for module in TASK_MODULES:
        importlib.import_module(module)
    return TASKS


def task_names() -> list[str]:
    """Registered task names in the tables' order (user tasks last, as registered)."""
    load_tasks()
    rank = {m: i for i, m in enumerate(TASK_MODULES)}
    names = TASKS.names()
    return sorted(names, key=lambda n: (rank.get(TASKS.get(n).run.__module__, len(rank)),
                                        names.index(n)))
