"""Contexts of the pages beyond the paper's tables: one per subgroup family, label efficiency.

Subgroup records carry ``subgroup = "<family>=<group>"`` (a group) or ``"<family>"`` (the
largest between-group gap, metric ``<metric>_gap``); label-efficiency records carry
``train_fraction``. The paper's Tables 3-5 show only records with neither.
"""

from __future__ import annotations

import dataclasses

from clerc.evaluate.subgroups import group_order
from clerc.modalities import MODALITIES, MODALITY_NAMES
from clerc.report.tables import (
    METRIC_LABELS,
    METRIC_ORDER,
    SETTING_LABELS,
    TASK_LABELS,
    TEST_LABELS,
    Notes,
    fmt_value,
    make_cell,
    rank,
)

FAMILY_LABELS = {"sex": "Sex", "age": "Age band", "race": "Race"}
EXTRA_SETTINGS = {**SETTING_LABELS, "knn_probe": "k-NN probe"}
#: Labels of the extra pages' metrics: the specs' labels, and the labelled-patient count.
EXTRA_METRICS = {**METRIC_LABELS, "train_patients": "Labelled patients"}


def is_main(rec: dict) -> bool:
    """A record of the paper's tables (no subgroup, full training set)."""
    return rec.get("subgroup") is None and rec.get("train_fraction") is None


def families(records: list[dict]) -> list[str]:
    """Subgroup families present, in the default order."""
    found = {str(r["subgroup"]).split("=")[0] for r in records if r.get("subgroup")}
    return [f for f in ("sex", "age", "race") if f in found] + sorted(found - set(FAMILY_LABELS))


def _cell_label(r: dict) -> str:
    m = r["modality"]
    where = TEST_LABELS[MODALITIES.get(m).test] if m in MODALITIES else str(m)
    task = TASK_LABELS.get(r["task"], r["task"])
    label = r["label_modality"]
    if label and label != m and label in MODALITIES:
        task += f" ({TEST_LABELS[MODALITIES.get(label).test]} label)"
    return f"{where}: {task}"


def subgroup_page(records: list[dict], family: str) -> dict:
    """Rows per (table, setting, modality, task, metric); a column per group, then the gap."""
    recs = [r for r in records if r.get("subgroup") and str(r["subgroup"]).split("=")[0] == family]
    groups = group_order(
        family,
        sorted({str(r["subgroup"]).split("=", 1)[1] for r in recs if "=" in str(r["subgroup"])}),
    )
    index = {
        (
            r["table"],
            r["setting"],
            r["modality"],
            r["task"],
            r["label_modality"],
            r["metric"],
            r["subgroup"],
        ): r
        for r in recs
    }
    keys = sorted(
        {k[:6] for k in index if not k[5].endswith("_gap")},
        key=lambda k: (
            k[0],
            rank(list(EXTRA_SETTINGS), k[1]),
            rank(MODALITY_NAMES, k[2]),
            rank(list(TASK_LABELS), k[3]),
            str(k[4]),
            rank(METRIC_ORDER + ("auprc", "brier", "ece"), k[5]),
        ),
    )
    notes, rows = Notes(), []
    for key in keys:
        cells = [
            make_cell(index.get((*key, f"{family}={g}")), notes, missing="no such group")
            for g in groups
        ]
        cells.append(
            make_cell(index.get((*key[:5], f"{key[5]}_gap", family)), notes, missing="no gap")
        )
        rec = index.get((*key, f"{family}={groups[0]}")) if groups else None
        rows.append(
            {
                "table": key[0].replace("table", "Table "),
                "setting": EXTRA_SETTINGS.get(key[1], key[1]),
                "cell": _cell_label(
                    rec
                    or dict(
                        zip(
                            ("table", "setting", "modality", "task", "label_modality"),
                            key[:5],
                            strict=True,
                        )
                    )
                ),
                "metric": EXTRA_METRICS.get(key[5], key[5]),
                "cells": cells,
            }
        )
    return {
        "family": FAMILY_LABELS.get(family, family),
        "columns": groups,
        "rows": rows,
        "notes": notes.items,
    }


def label_efficiency_page(records: list[dict]) -> dict:
    """The label-efficiency plot and a table: rows per task and setting, a column per
    fraction of the training patients (mean over draws, sd across draws in the note)."""
    from markupsafe import Markup

    from clerc.report import plots

    recs = [r for r in records if r.get("train_fraction") is not None and r.get("subgroup") is None]
    fractions = sorted({r["train_fraction"] for r in recs})
    index = {
        (r["modality"], r["task"], r["setting"], r["metric"], r["train_fraction"]): r for r in recs
    }
    keys = sorted(
        {k[:4] for k in index if not k[3].endswith("_sd")},
        key=lambda k: (
            rank(MODALITY_NAMES, k[0]),
            rank(list(TASK_LABELS), k[1]),
            rank(list(EXTRA_SETTINGS), k[2]),
            rank(METRIC_ORDER + ("auprc", "train_patients"), k[3]),
        ),
    )
    notes, rows = Notes(), []
    for key in keys:
        cells = []
        for f in fractions:
            c = make_cell(index.get((*key, f)), notes, missing="not fitted")
            sd = index.get((*key[:3], f"{key[3]}_sd", f))
            if sd and sd["value"] is not None and c.ci is not None:
                c = dataclasses.replace(c, ci=f"{c.ci}; sd {fmt_value(key[3], sd['value'])}")
            rec = index.get((*key, f))
            if key[3] == "train_patients" and rec and rec["value"] is not None:
                v = float(rec["value"])  # a count (mean over draws), not a metric
                c = dataclasses.replace(c, text=f"{v:,.0f}" if v.is_integer() else f"{v:,.1f}")
            cells.append(c)
        rows.append(
            {
                "cell": _cell_label({"modality": key[0], "task": key[1], "label_modality": None}),
                "setting": EXTRA_SETTINGS.get(key[2], key[2]),
                "metric": EXTRA_METRICS.get(key[3], key[3]),
                "cells": cells,
            }
        )
    plot = plots.label_efficiency(records)
    return {
        "columns": [f"{f:.0%} of train patients" for f in fractions],
        "rows": rows,
        "notes": notes.items,
        "plots": [] if plot is None else [{"title": plot.title, "svg": Markup(plot.svg)}],
    }
