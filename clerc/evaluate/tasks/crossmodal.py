"""Table 5: cross-modal linear probes, every diagnostic modality x every label task.

Features come from one diagnostic modality; labels from the modality that owns them (or
the patients table for age and sex), matched per study by the same study id, else the
patient's label closest in time within ``Context.max_gap``. The note of each record says
the gap and how many test studies were dropped for lack of a label. Cells where the
feature modality owns the label are the Table 4 probes (same computation, same numbers).
"""

from __future__ import annotations

from clerc.evaluate.registry import Context, TaskDef, task
from clerc.evaluate.results import TaskResult
from clerc.evaluate.tasks.probe import probe_cell
from clerc.modalities import DIAGNOSTIC


def table5_cells(definitions: list[TaskDef]) -> list[tuple[TaskDef, str]]:
    """(task, feature modality) of every Table 5 cell.

    A label measured by several modalities (pacemaker: from the echo report and from the
    ECG) is one row: the column of a modality that measures the label itself takes that
    modality's label (the paper's Echo cell, 0.951, is Table 4's echo-labelled probe, as
    every diagonal cell is); the other columns take the label of the task marked
    ``table5``.
    """
    cells = []
    for d in definitions:
        siblings = [o for o in definitions if o is not d and o.label == d.label]
        for modality in DIAGNOSTIC:
            if d.label_modality == modality:
                take = d.table5 or any(o.table5 for o in siblings)
            else:
                take = d.table5 and not any(o.label_modality == modality for o in siblings)
            if take:
                cells.append((d, modality))
    return cells


@task("cross_modal", "table5", "linear_probe")
def cross_modal(ctx: Context) -> TaskResult:
    """Table 5: linear probes of each diagnostic modality for every label (incl. age, sex)."""
    out = TaskResult()
    for d, modality in table5_cells(list(ctx.definitions)):
        out += probe_cell(ctx, d, "table5", modality)
    return out
