"""The evaluation task registry, the scoring context, and the predictive task definitions.

A ``Task`` is one setting of one table (retrieval, zero-shot, linear probe, cross-modal
probe, supervised); its ``run(context)`` returns a ``TaskResult`` (records and prediction
frames) and writes nothing into the context. Task *definitions* (which
label, which modality, which prompt) live in ``tasks.toml``; users extend them with
their own TOML file.
"""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from clerc.data.manifest import Manifest
from clerc.evaluate.embeddings import Embeddings
from clerc.evaluate.knn import LabelEfficiencyConfig
from clerc.evaluate.results import TaskResult
from clerc.evaluate.subgroups import SubgroupConfig
from clerc.modalities import DIAGNOSTIC
from clerc.registry import Registry

DEFAULT_TASKS_FILE = Path(__file__).with_name("tasks.toml")
TaskKind = Literal["binary", "regression"]
KINDS: tuple[TaskKind, ...] = ("binary", "regression")
#: Labels taken from the patients table rather than labels.parquet.
DEMOGRAPHIC: tuple[str, ...] = ("age", "sex")


@dataclass(frozen=True)
class TaskDef:
    """One predictive task: label, kind, owning modality and its zero-shot prompt(s)."""

    name: str
    label: str
    kind: TaskKind
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
                raise ValueError(
                    f"{where}: sweep placeholder {self.placeholder!r} is not in the template"
                )
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
        raise ValueError(
            f"{where}: task {d.get('name')!r} has unknown keys {unknown} "
            f"or no name; expected keys from {sorted(known | {'sweep'})}"
        )
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


class Memo:
    """An explicit memo of values computed from a context's inputs.

    A value is stored under ``key`` (compared by equality: names, definitions, settings)
    plus the identity of every object in ``inputs`` (embeddings, manifest: compared with
    ``is``, and held so that their ids are not reused). A context made with
    ``dataclasses.replace`` shares the memo; any changed input misses it.
    """

    def __init__(self) -> None:
        self._items: dict[tuple[Hashable, ...], tuple[tuple[object, ...], Any]] = {}

    def get(
        self, key: tuple[Hashable, ...], inputs: tuple[object, ...], compute: Callable[[], Any]
    ) -> Any:
        """The value for ``key`` and ``inputs``, computed once by ``compute()``."""
        full = (*key, *(id(o) for o in inputs))
        hit = self._items.get(full)
        if hit is not None and all(a is b for a, b in zip(hit[0], inputs, strict=True)):
            return hit[1]
        value = compute()
        self._items[full] = (inputs, value)
        return value

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True)
class Context:
    """What every task reads: embeddings, manifest, definitions and scoring settings.

    Tasks return what they produce (``TaskResult``) and never write into the context.
    ``memo`` is the one shared store: probe fits, which Table 4, Table 5 and the
    supervised comparison reuse, keyed on everything they depend on (``tasks/probe.py``).
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
    memo: Memo = field(default_factory=Memo, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.n_resamples < 0:
            raise ValueError(f"n_resamples must be >= 0, got {self.n_resamples}")
        if self.max_gap < timedelta(0):
            raise ValueError(f"max_gap must be >= 0, got {self.max_gap}")


@dataclass(frozen=True)
class Task:
    """One evaluation task: a setting of one table, run on a ``Context``."""

    name: str
    table: str
    setting: str
    run: Callable[[Context], TaskResult]
    description: str = ""


TASKS: Registry[Task] = Registry("task")


TaskFn = Callable[[Context], TaskResult]


def task(name: str, table: str, setting: str) -> Callable[[TaskFn], TaskFn]:
    """Decorator: register ``fn`` as the task ``name`` (its docstring is the description)."""

    def wrap(fn: TaskFn) -> TaskFn:
        TASKS.add(name, Task(name, table, setting, fn, (fn.__doc__ or "").strip().split("\n")[0]))
        return fn

    return wrap


#: Task modules, imported in the order their tasks should run (the tables' order).
TASK_MODULES: tuple[str, ...] = tuple(
    f"clerc.evaluate.tasks.{m}"
    for m in (
        "retrieval",
        "oracle",
        "zeroshot",
        "probe",
        "crossmodal",
        "supervised",
        "subgroups",
        "label_efficiency",
    )
)


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
    return sorted(
        names, key=lambda n: (rank.get(TASKS.get(n).run.__module__, len(rank)), names.index(n))
    )
