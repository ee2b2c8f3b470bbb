"""Table 5: cross-modal linear probes, every diagnostic modality x every label task.

Features come from one diagnostic modality; labels from the modality that owns them (or
the patients table for age and sex), matched per study by the same study id, else the
patient's label closest in time within ``Context.max_gap``. The note of each record says
the gap and how many test studies were dropped for lack of a label. Cells where the
feature modality owns the label are the Table 4 probes (same computation, same numbers).
"""

from __future__ import annotations

from clerc.evaluate.registry import Context, task
from clerc.evaluate.results import TaskResult
from clerc.evaluate.tasks.probe import probe_cell
from clerc.modalities import DIAGNOSTIC


@task("cross_modal", "table5", "linear_probe")
def cross_modal(ctx: Context) -> TaskResult:
    """Table 5: linear probes of each diagnostic modality for every label (incl. age, sex)."""
    out = TaskResult()
    for d in ctx.definitions:
        if not d.table5:
            continue
        for modality in DIAGNOSTIC:
            out += probe_cell(ctx, d, "table5", modality)
    return out
