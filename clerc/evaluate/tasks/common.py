"""Helpers every task shares: study tables, label matching, bootstrap -> records.

Aggregation follows the paper: predictions are averaged over the samples of a study, and
the study's label is the label of the same study when one exists, else the patient's
label closest in time within ``Context.max_gap``. Metrics are bootstrapped over patients.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from clerc.compare.pairing import pairing_key, pseudonyms
from clerc.evaluate import bootstrap
from clerc.evaluate.matching import study_or_nearest
from clerc.evaluate.metric_specs import KIND_METRICS, PROBABILITY_METRICS, metric_spec
from clerc.evaluate.registry import Context, TaskDef
from clerc.evaluate.results import (
    CELL_FIELDS,
    Record,
    TaskResult,
    prediction_frame,
    undefined,
)

#: Fewest test patients for which a metric is reported.
MIN_PATIENTS = 2
KEY_FIELDS: tuple[str, ...] = CELL_FIELDS


def base(
    table: str,
    task: str,
    setting: str,
    *,
    query: str | None = None,
    gallery: str | None = None,
    modality: str | None = None,
    label_modality: str | None = None,
) -> dict[str, Any]:
    """The key fields of a record (everything but the metric and its numbers)."""
    return {
        "table": table,
        "task": task,
        "setting": setting,
        "query_modality": query,
        "gallery_modality": gallery,
        "modality": modality,
        "label_modality": label_modality,
    }


def cell_key(b: dict[str, Any]) -> str:
    """``predictions.parquet`` cell: the key fields joined by ``|`` (None -> empty)."""
    return "|".join(b[f] or "" for f in KEY_FIELDS)


def cell_seed(ctx: Context, b: dict[str, Any], metric: str = "") -> int:
    """A seed per cell, so a cell's interval does not depend on which tasks ran before.

    The table is left out: Table 5's diagonal repeats Table 4's probes, interval included.
    """
    key = "|".join(b[f] or "" for f in KEY_FIELDS[1:]) + "|" + metric
    return (ctx.seed * 1_000_003 + zlib.crc32(key.encode())) % (2**32)


def bootstrap_record(
    ctx: Context,
    b: dict[str, Any],
    metric: str,
    patient_ids: np.ndarray,
    y_true: np.ndarray | None,
    y_score: np.ndarray,
    note: str | None = None,
    name: str | None = None,
) -> Record:
    """One record: ``metric`` (a name of ``metric_specs``) on all rows plus its
    patient-level interval. ``name`` is the record's metric name when it differs."""
    name = name or metric
    n = int(pd.unique(np.asarray(patient_ids, dtype=object)).size)
    if n < MIN_PATIENTS:
        return undefined(b, name, _first(f"{n} test patient(s); need {MIN_PATIENTS}", note), n)
    try:
        value = _point(metric, y_true, y_score)
    except ValueError as exc:
        return undefined(b, name, _first(str(exc), note), n)
    if ctx.n_resamples < 1:
        return _no_interval(b, name, value, n, 0, _join("no interval: bootstrap disabled", note))
    try:
        res = bootstrap.patient_bootstrap(
            metric,
            patient_ids,
            y_true,
            y_score,
            n_resamples=ctx.n_resamples,
            seed=cell_seed(ctx, b, name),
        )
    except ValueError as exc:
        return _no_interval(b, name, value, n, ctx.n_resamples, _join(f"no interval: {exc}", note))
    return Record(
        **b,
        metric=name,
        value=res.value,
        ci_low=res.ci_low,
        ci_high=res.ci_high,
        n=res.n,
        n_undefined=res.n_undefined,
        note=note,
    )


#: Metrics bootstrapped on the resamples of another metric of the same cell (its seed):
#: they were added after it, so its interval is unchanged and they cost no extra draws.
SHARES_DRAWS: dict[str, str] = {
    "auprc": "auroc",
    "brier": "auroc",
    "ece": "auroc",
    "mrr": "recall@1",
}


def bootstrap_records(
    ctx: Context,
    b: dict[str, Any],
    specs: list[tuple[str, str, Any]],
    patient_ids: np.ndarray,
    y_true: np.ndarray | None,
    note: str | None = None,
) -> list[Record]:
    """``bootstrap_record`` of each (record name, bootstrap metric, y_score) of one cell,
    identical records, but metrics that share a seed (``SHARES_DRAWS``) share one set of
    resample counts instead of drawing it once each."""
    n = int(pd.unique(np.asarray(patient_ids, dtype=object)).size)
    names = [name for name, _, _ in specs]
    seed_of = {name: SHARES_DRAWS.get(name, name) for name in names}
    seed_of = {k: v if v in names else k for k, v in seed_of.items()}
    if n < MIN_PATIENTS or ctx.n_resamples < 1:
        return [
            bootstrap_record(ctx, b, metric, patient_ids, y_true, score, note, name)
            for name, metric, score in specs
        ]
    out: dict[str, Record] = {}
    groups: dict[str, list[tuple[str, str, Any, float]]] = {}
    for name, metric, score in specs:
        try:
            value = _point(metric, y_true, score)
        except ValueError as exc:
            out[name] = undefined(b, name, _first(str(exc), note), n)
            continue
        groups.setdefault(seed_of[name], []).append((name, metric, score, value))
    for seed_name, group in groups.items():
        results = bootstrap.patient_bootstrap_many(
            [(metric, score) for _, metric, score, _ in group],
            patient_ids,
            y_true,
            n_resamples=ctx.n_resamples,
            seed=cell_seed(ctx, b, seed_name),
        )
        for (name, _, _, value), res in zip(group, results, strict=True):
            if isinstance(res, str):
                out[name] = Record(
                    **b,
                    metric=name,
                    value=value,
                    ci_low=None,
                    ci_high=None,
                    n=n,
                    n_undefined=ctx.n_resamples,
                    note=_join(f"no interval: {res}", note),
                )
            else:
                out[name] = Record(
                    **b,
                    metric=name,
                    value=res.value,
                    ci_low=res.ci_low,
                    ci_high=res.ci_high,
                    n=res.n,
                    n_undefined=res.n_undefined,
                    note=note,
                )
    return [out[name] for name in names]


def _no_interval(
    b: dict[str, Any], name: str, value: float, n: int, n_undefined: int, note: str | None
) -> Record:
    """A record with its point value and no interval (the note says why)."""
    return Record(
        **b,
        metric=name,
        value=value,
        ci_low=None,
        ci_high=None,
        n=n,
        n_undefined=n_undefined,
        note=note,
    )


def _point(metric: str, y_true: np.ndarray | None, y_score: np.ndarray) -> float:
    """The metric on all rows (raises ValueError when undefined)."""
    point = metric_spec(metric).point
    if point is None:
        raise ValueError(f"metric {metric!r} has no point function")
    return point(y_true, y_score)


def _first(reason: str, note: str | None) -> str:
    """``reason``, then ``note`` when there is one."""
    return f"{reason}; {note}" if note else reason


def _join(*parts: str | None) -> str | None:
    text = "; ".join(p for p in parts if p)
    return text or None


@dataclass(frozen=True)
class StudyPredictions:
    """Study-level predictions of one cell: patient_id, study_id, y_true, y_score."""

    frame: pd.DataFrame
    kind: str
    note: str | None = None


def cell_metrics(kind: str, probabilities: bool = False) -> tuple[str, ...]:
    """Metrics of a cell: those of its kind, plus calibration for binary probabilities."""
    extra = PROBABILITY_METRICS if probabilities and kind == "binary" else ()
    return KIND_METRICS[kind] + extra


def predictive_records(
    ctx: Context, b: dict[str, Any], sp: StudyPredictions, probabilities: bool = False
) -> TaskResult:
    """Records (one per metric of the cell) for study-level predictions, and the
    predictions themselves (for the plots). ``probabilities``: the scores are
    probabilities (adds Brier score and ECE)."""
    f = sp.frame
    y_true, y_score = f["y_true"].to_numpy(float), f["y_score"].to_numpy(float)
    pid = f["patient_id"].to_numpy(dtype=object)
    specs = [(m, m, y_score) for m in cell_metrics(sp.kind, probabilities)]
    records = tuple(bootstrap_records(ctx, b, specs, pid, y_true, sp.note))
    frame = cell_predictions(
        ctx, b, sp.kind, y_true, y_score, f["patient_id"].to_numpy(), f["study_id"].to_numpy()
    )
    return TaskResult(records, (frame,))


def cell_predictions(
    ctx: Context,
    b: dict[str, Any],
    kind: str,
    y_true: np.ndarray,
    y_score: np.ndarray,
    patients: np.ndarray,
    units: np.ndarray,
) -> pd.DataFrame:
    """One cell's rows of ``predictions.parquet``; ``patients`` and ``units`` (study or
    query ids) are stored only as pseudonyms (``clerc.compare.pairing``), for pairing runs
    by patient. The pairing key depends on the manifest's patients only: memoised."""
    frame = prediction_frame(cell_key(b), kind, y_true, y_score)
    key = ctx.memo.get(
        ("pairing_key",), (ctx.manifest,), lambda: pairing_key(ctx.manifest.patients["patient_id"])
    )
    frame["pair_patient"] = pseudonyms(key, patients)
    frame["pair_unit"] = pseudonyms(key, units)
    return frame


def undefined_cell(
    b: dict[str, Any], kind: str, note: str, n: int = 0, probabilities: bool = False
) -> TaskResult:
    """One undefined record per metric of the cell."""
    return TaskResult(tuple(undefined(b, m, note, n) for m in cell_metrics(kind, probabilities)))


def studies(samples: pd.DataFrame, modality: str, split: str) -> pd.DataFrame:
    """Sample rows of one modality and split with their study's time (first sample).

    Returns the rows (index = position in ``samples``) with columns patient_id, study_id
    (a sample without a study is its own study) and ``study_time``.
    """
    s = samples[(samples["modality"] == modality) & (samples["split"] == split)].copy()
    s = s[s["patient_id"].notna()]
    s["study_id"] = s["study_id"].fillna("sample:" + s["sample_id"].astype(str))
    s["study_time"] = s.groupby("study_id")["acquired_at"].transform("min")
    return s


def study_labels(ctx: Context, rows: pd.DataFrame, d: TaskDef) -> tuple[pd.Series, int]:
    """Label per study of ``rows`` (index study_id) and how many studies got none."""
    st = rows.drop_duplicates("study_id")[["patient_id", "study_id", "study_time"]]
    if d.label == "age":
        y = ctx.manifest.age_at(st["patient_id"].astype("string"), st["study_time"])
        y = pd.Series(y.to_numpy(float), index=st["study_id"].to_numpy())
    elif d.label == "sex":
        sex = ctx.manifest.patients.set_index("patient_id")["sex"]
        v = sex.reindex(st["patient_id"].to_numpy())
        y = pd.Series(
            v.map({"F": 1.0, "M": 0.0}).astype("float64").to_numpy(),
            index=st["study_id"].to_numpy(),
        )
    else:
        y = _match_labels(ctx, st, d)
    y = y[np.isfinite(y.to_numpy(float))]
    return y, len(st) - len(y)


def _match_labels(ctx: Context, st: pd.DataFrame, d: TaskDef) -> pd.Series:
    lab = ctx.manifest.labels
    lab = lab[(lab["task"] == d.label) & (lab["source_modality"] == d.label_modality)]
    rows = pd.DataFrame(
        {
            "patient_id": st["patient_id"].to_numpy(),
            "study_id": st["study_id"].to_numpy(),
            "time": st["study_time"].to_numpy(),
        }
    )
    return pd.Series(
        study_or_nearest(rows, lab, pd.Timedelta(ctx.max_gap)), index=st["study_id"].to_numpy()
    )


def study_mean(rows: pd.DataFrame, scores: np.ndarray, y: pd.Series) -> pd.DataFrame:
    """Average sample scores per study and attach the study label (unlabelled dropped)."""
    f = pd.DataFrame(
        {
            "patient_id": rows["patient_id"].astype(str).to_numpy(),
            "study_id": rows["study_id"].astype(str).to_numpy(),
            "y_score": np.asarray(scores, dtype=float),
        }
    )
    g = (
        f.groupby("study_id", sort=True)
        .agg(patient_id=("patient_id", "first"), y_score=("y_score", "mean"))
        .reset_index()
    )
    g["y_true"] = y.reindex(g["study_id"].to_numpy()).to_numpy(float)
    return g[np.isfinite(g["y_true"].to_numpy())].reset_index(drop=True)


def gap_note(ctx: Context, d: TaskDef, n_dropped: int, n_total: int) -> str | None:
    """Say how labels were matched and how many test studies had none."""
    if d.label in ("age", "sex"):
        return None if not n_dropped else f"{n_dropped} of {n_total} test studies lack {d.label}"
    return (
        f"labels ({d.label_modality}) matched by study, else closest in time within "
        f"{ctx.max_gap.days} days; {n_dropped} of {n_total} test studies had none"
    )
