"""Table 4, linear probing: a linear model on frozen embeddings.

Rows are samples of the feature modality, each carrying its study's label (matched as in
``common``). The probe (ridge for regression, logistic for binary) is fitted on train,
its regularisation chosen on val; test predictions are averaged per study. The same
function serves Table 5 (cross-modal probes), whose diagonal equals Table 4's probes.
"""

from __future__ import annotations

import pandas as pd

from clerc.evaluate.probe import fit_probe
from clerc.evaluate.registry import Context, TaskDef, task
from clerc.evaluate.results import TaskResult
from clerc.evaluate.tasks.common import (
    StudyPredictions,
    base,
    gap_note,
    predictive_records,
    studies,
    study_labels,
    study_mean,
    undefined_cell,
)

#: Fewest labelled samples in train and in val for a probe to be fitted.
MIN_ROWS = 4


def _labelled(
    ctx: Context, d: TaskDef, modality: str, split: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, int]:
    """All rows of a split, the labelled ones, the study labels and how many had none."""
    rows = studies(ctx.embeddings.samples, modality, split)
    y, dropped = study_labels(ctx, rows, d)
    keep = rows["study_id"].isin(y.index).to_numpy()
    return rows, rows[keep], y, dropped


def probe_predictions(ctx: Context, d: TaskDef, modality: str) -> StudyPredictions | str:
    """Study-level test predictions of a probe on ``modality`` for ``d``, or why none.

    Memoised in ``ctx.memo`` (Table 5's diagonal and the supervised comparison reuse
    them), keyed on everything the fit reads: the definition (label, kind, label
    modality), the feature modality, ``max_gap``, and the embeddings and manifest objects.
    """
    result: StudyPredictions | str = ctx.memo.get(
        ("probe", d, modality, ctx.max_gap),
        (ctx.embeddings, ctx.manifest),
        lambda: _probe_predictions(ctx, d, modality),
    )
    return result


def _probe_predictions(ctx: Context, d: TaskDef, modality: str) -> StudyPredictions | str:
    v = ctx.embeddings.vectors
    fit = {}
    for split in ("train", "val"):
        _, lab, y, _ = _labelled(ctx, d, modality, split)
        if len(lab) < MIN_ROWS:
            return f"{len(lab)} labelled {split} samples of {modality}; need {MIN_ROWS}"
        fit[split] = (v[lab.index.to_numpy()], y.reindex(lab["study_id"]).to_numpy(float))
    test_all, test, y_test, dropped = _labelled(ctx, d, modality, "test")
    if test.empty:
        return f"no labelled test samples of {modality}"
    try:
        probe = fit_probe(d.kind, *fit["train"], *fit["val"])
    except ValueError as exc:
        return f"probe not fitted: {exc}"
    scores = probe.predict(v[test.index.to_numpy()])
    frame = study_mean(test, scores, y_test)
    note = gap_note(ctx, d, dropped, test_all["study_id"].nunique())
    note = f"{note}; alpha={probe.alpha:.3g}" if note else f"alpha={probe.alpha:.3g}"
    return StudyPredictions(frame, d.kind, note)


def probe_cell(ctx: Context, d: TaskDef, table: str, modality: str) -> TaskResult:
    """Records of one probe cell (Table 4 when ``modality`` owns the task, or Table 5)."""
    b = base(table, d.label, "linear_probe", modality=modality, label_modality=d.label_modality)
    sp = probe_predictions(ctx, d, modality)
    if isinstance(sp, str):
        return undefined_cell(b, d.kind, sp, probabilities=True)
    return predictive_records(ctx, b, sp, probabilities=True)


@task("linear_probe", "table4", "linear_probe")
def linear_probe(ctx: Context) -> TaskResult:
    """Table 4: linear probes on each task's own diagnostic modality."""
    out = TaskResult()
    for d in ctx.definitions:
        if d.table4 and d.modality is not None:
            out += probe_cell(ctx, d, "table4", d.modality)
    return out
