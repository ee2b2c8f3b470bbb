"""Table 4, zero-shot: prompt similarity as the prediction, no training.

Binary: the score of a sample is its cosine with the prompt's embedding (a prompt of
several sentences is embedded as one text). Regression (LVEF): cosines with each prompt of
the sweep, times the learned logit scale, softmax -> expected value. Predictions are
averaged over the samples of a study; the study's label is matched as in ``common``.
"""

from __future__ import annotations

import numpy as np

from clerc.evaluate import metrics
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

SPLIT = "test"


def sample_scores(ctx: Context, d: TaskDef, rows: np.ndarray) -> np.ndarray:
    """Zero-shot score of each sample position in ``rows`` for definition ``d``."""
    emb = ctx.embeddings
    prompts = np.stack([emb.prompt_vector(p) for p in d.prompts])
    cos = emb.vectors[rows] @ prompts.T
    if d.kind == "binary":
        return cos[:, 0].astype(np.float64)
    return metrics.softmax_expectation(cos, np.asarray(d.values, float), emb.logit_scale)


def zero_shot_key(d: TaskDef) -> dict:
    """The key fields of the zero-shot cell of ``d``."""
    return base(
        "table4", d.label, "zero_shot", modality=d.modality or "", label_modality=d.label_modality
    )


def zero_shot_predictions(ctx: Context, d: TaskDef) -> StudyPredictions | str:
    """Study-level zero-shot test predictions for ``d``, or why there are none."""
    modality = d.modality or ""
    rows = studies(ctx.embeddings.samples, modality, SPLIT)
    if rows.empty:
        return f"no {SPLIT} samples of {modality}"
    if not set(d.prompts) <= set(ctx.embeddings.prompt_texts):  # a model without a text side
        return "not applicable: the prompts were not embedded (the model has no text side)"
    y, dropped = study_labels(ctx, rows, d)
    scores = sample_scores(ctx, d, rows.index.to_numpy())
    frame = study_mean(rows, scores, y)
    note = gap_note(ctx, d, dropped, rows["study_id"].nunique())
    return StudyPredictions(frame, d.kind, note)


def zero_shot_cell(ctx: Context, d: TaskDef) -> TaskResult:
    """The records of one Table 4 zero-shot cell."""
    b = zero_shot_key(d)
    sp = zero_shot_predictions(ctx, d)
    if isinstance(sp, str):
        return undefined_cell(b, d.kind, sp)
    return predictive_records(ctx, b, sp)


@task("zero_shot", "table4", "zero_shot")
def zero_shot(ctx: Context) -> TaskResult:
    """Table 4: zero-shot prediction from prompt embeddings (Supplementary Table 1 prompts)."""
    out = TaskResult()
    for d in ctx.definitions:
        if d.table4 and d.has_zero_shot:
            out += zero_shot_cell(ctx, d)
    return out
