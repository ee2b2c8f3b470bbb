"""Supervised baselines: score their predictions like the probes, and compare with CLERC.

A predictions table has columns ``sample_id, task, score``; ``task`` is a definition name
(``pacemaker_ecg``) or a label name (``pacemaker``) resolved with the sample's modality.
Scores are averaged per study and matched to labels exactly as the probes are
(``setting = "supervised"``). For every Table 4 cell, the difference CLERC linear probe
minus supervised is bootstrapped on the same test patients (``paired_bootstrap``) and
the p-values are Holm-corrected across all cells: ``setting = "difference"`` records with
the metric (the difference and its interval) and ``<metric>_p_holm`` (adjusted p-value).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from clerc.data.manifest import Manifest
from clerc.evaluate import bootstrap
from clerc.evaluate.metric_specs import KIND_METRICS
from clerc.evaluate.registry import Context, TaskDef, task
from clerc.evaluate.results import Record, TaskResult, undefined
from clerc.evaluate.tasks.common import (
    StudyPredictions,
    base,
    cell_seed,
    gap_note,
    predictive_records,
    studies,
    study_labels,
    study_mean,
    undefined_cell,
)
from clerc.evaluate.tasks.probe import probe_predictions

PREDICTION_COLUMNS: tuple[str, ...] = ("sample_id", "task", "score")
SPLIT = "test"


def _resolve(defs: tuple[TaskDef, ...], name: str, modality: str) -> TaskDef:
    by_name = {d.name: d for d in defs}
    if name in by_name:
        return by_name[name]
    same = [d for d in defs if d.label == name and d.modality in (modality, None)]
    own = [d for d in same if d.modality == modality] or same
    if len(own) != 1:
        raise ValueError(
            f"supervised predictions: task {name!r} on {modality} matches "
            f"{len(own)} definitions; use one of {sorted(by_name)}"
        )
    return own[0]


def _joined(predictions: pd.DataFrame, manifest: Manifest) -> pd.DataFrame:
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise ValueError(f"supervised predictions lack columns {missing}")
    p = predictions[list(PREDICTION_COLUMNS)].astype({"sample_id": str, "task": str})
    if not np.isfinite(p["score"].to_numpy(float)).all():
        raise ValueError("supervised predictions: score has NaN or infinite values")
    s = manifest.samples.astype({"sample_id": str}).set_index("sample_id")
    unknown = sorted(set(p["sample_id"]) - set(s.index))
    if unknown:
        raise ValueError(
            f"supervised predictions: {len(unknown)} sample ids not in the "
            f"manifest (first {unknown[0]!r})"
        )
    cols = ["patient_id", "study_id", "modality", "acquired_at", "split"]
    return p.join(s[cols], on="sample_id").reset_index(drop=True)


def score_predictions(
    predictions: pd.DataFrame, manifest: Manifest, context: Context
) -> TaskResult:
    """Supervised records per (task, modality) and CLERC-minus-supervised differences."""
    ctx = (
        dataclasses.replace(context, manifest=manifest)
        if manifest is not context.manifest
        else context
    )
    out = TaskResult()
    pending: list[tuple[dict, str, bootstrap.BootstrapResult | str]] = []
    for b, d, sp in supervised_cells(predictions, ctx):
        if isinstance(sp, str):
            out += undefined_cell(b, d.kind, sp, probabilities=True)
            continue
        out += predictive_records(ctx, b, sp, probabilities=True)
        if b["table"] == "table4":
            pending += _differences(ctx, d, str(b["modality"]), sp)
    return out + _holm(pending)


def supervised_cells(
    predictions: pd.DataFrame, ctx: Context
) -> list[tuple[dict, TaskDef, StudyPredictions | str]]:
    """(key fields, definition, study-level predictions or why none) per (task, modality)."""
    joined = _joined(predictions, ctx.manifest)
    out: list[tuple[dict, TaskDef, StudyPredictions | str]] = []
    for (name, modality), group in joined.groupby(["task", "modality"], sort=True):
        d = _resolve(ctx.definitions, str(name), str(modality))
        table = "table4" if d.table4 and d.modality == modality else "table5"
        b = base(
            table, d.label, "supervised", modality=str(modality), label_modality=d.label_modality
        )
        rows = studies(group, str(modality), SPLIT)
        if rows.empty:
            out.append((b, d, f"no {SPLIT} predictions for {name} on {modality}"))
            continue
        y, dropped = study_labels(ctx, rows, d)
        out.append(
            (
                b,
                d,
                StudyPredictions(
                    study_mean(rows, rows["score"].to_numpy(float), y),
                    d.kind,
                    gap_note(ctx, d, dropped, rows["study_id"].nunique()),
                ),
            )
        )
    return out


def _differences(
    ctx: Context, d: TaskDef, modality: str, sup: StudyPredictions
) -> list[tuple[dict, str, bootstrap.BootstrapResult | str]]:
    b = base("table4", d.label, "difference", modality=modality, label_modality=d.label_modality)
    clerc = probe_predictions(ctx, d, modality)
    if isinstance(clerc, str):
        return [(b, m, f"no CLERC linear probe to compare: {clerc}") for m in KIND_METRICS[d.kind]]
    both = clerc.frame.merge(
        sup.frame[["study_id", "y_score"]], on="study_id", suffixes=("_clerc", "_sup")
    )
    out: list[tuple[dict, str, bootstrap.BootstrapResult | str]] = []
    for m in KIND_METRICS[d.kind]:
        if ctx.n_resamples < 1:
            out.append((b, m, "bootstrap disabled: no paired comparison"))
            continue
        try:
            res = bootstrap.paired_bootstrap(
                m,
                both["patient_id"].to_numpy(object),
                both["y_true"].to_numpy(float),
                both["y_score_clerc"].to_numpy(float),
                both["y_score_sup"].to_numpy(float),
                n_resamples=ctx.n_resamples,
                seed=cell_seed(ctx, b, m),
            )
        except ValueError as exc:
            out.append((b, m, f"paired comparison undefined on {len(both)} shared studies: {exc}"))
            continue
        out.append((b, m, res))
    return out


#: Metrics whose differences are Holm-adjusted in a family of their own.
_HOLM_FAMILY: dict[str, str] = {"auprc": "auprc"}


def _holm(pending: list[tuple[dict, str, bootstrap.BootstrapResult | str]]) -> list[Record]:
    """Difference records plus Holm-adjusted p-values across every compared cell: one
    family for the paper's metrics (AUROC, R², MAE), one per added metric (AUPRC), so the
    paper's adjusted p-values do not depend on the added comparisons."""
    adjusted: dict[int, float] = {}
    family: dict[str, int] = {}
    for fam in dict.fromkeys(_HOLM_FAMILY.get(m, "paper") for _, m, _ in pending):
        done = [
            (i, r)
            for i, (_, m, r) in enumerate(pending)
            if _HOLM_FAMILY.get(m, "paper") == fam and not isinstance(r, str)
        ]
        idx = [i for i, _ in done]
        family[fam] = len(idx)
        if idx:
            p = bootstrap.adjust([r.p_value for _, r in done], method="holm")
            adjusted.update(zip(idx, (float(v) for v in p), strict=True))
    out: list[Record] = []
    for i, (b, m, r) in enumerate(pending):
        if isinstance(r, str):
            out += [undefined(b, m, r), undefined(b, f"{m}_p_holm", r)]
            continue
        n_fam = family[_HOLM_FAMILY.get(m, "paper")]
        note = f"paired bootstrap p={r.p_value:.4g}; Holm over {n_fam} comparisons"
        out.append(
            Record(
                **b,
                metric=m,
                value=r.value,
                ci_low=r.ci_low,
                ci_high=r.ci_high,
                n=r.n,
                n_undefined=r.n_undefined,
                note=note,
            )
        )
        out.append(
            Record(
                **b,
                metric=f"{m}_p_holm",
                value=adjusted[i],
                ci_low=None,
                ci_high=None,
                n=r.n,
                n_undefined=r.n_undefined,
                note=note,
            )
        )
    return out


@task("supervised", "table4", "supervised")
def supervised(ctx: Context) -> TaskResult:
    """Table 4: supervised baselines' predictions (--supervised) and CLERC minus supervised."""
    if ctx.supervised is None:
        raise ValueError("task 'supervised' needs a predictions table (--supervised PRED.parquet)")
    return score_predictions(ctx.supervised, ctx.manifest, ctx)
