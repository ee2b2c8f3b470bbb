"""Template contexts and rendering of the ``clerc compare`` pages (index, Tables 3-5).

Only aggregates reach a page: record values, intervals and notes, run names and
provenance fields (model, checkpoint path, manifest hash). Pairing pseudonyms stay in
memory.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from clerc.compare.paired import Paired, pairable, paired_differences
from clerc.compare.plots import forest
from clerc.compare.ranking import HEADLINE, rank_runs
from clerc.compare.runs import Run
from clerc.evaluate.metric_specs import direction
from clerc.modalities import MODALITIES, MODALITY_NAMES
from clerc.report import tables as T
from clerc.report.paper import paper_source, paper_value

TEMPLATES = Path(__file__).with_name("templates")
PAGES = {
    "index": "Compare: runs",
    "table3": "Table 3 compared: cross-modal retrieval",
    "table4": "Table 4 compared: zero-shot and linear probing",
    "table5": "Table 5 compared: cross-modal linear probing",
}
TABLES = ("table3", "table4", "table5")
_KEY = (
    "table",
    "task",
    "setting",
    "query_modality",
    "gallery_modality",
    "modality",
    "label_modality",
    "metric",
)


def environment() -> Environment:
    from clerc.report.html import TEMPLATES as REPORT

    return Environment(
        loader=ChoiceLoader([FileSystemLoader(TEMPLATES), FileSystemLoader(REPORT)]),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _mod(name: str | None) -> str:
    return MODALITIES.get(name).label if name is not None and name in MODALITIES else "—"


def _order(key: tuple) -> tuple:
    table, task, setting, q, g, modality, label, metric = key
    if table == "table3":
        return (
            T.rank(T.METRIC_ORDER, metric),
            T.rank(MODALITY_NAMES, q),
            T.rank(MODALITY_NAMES, g),
        )
    if table == "table4":
        return (
            T.rank(MODALITY_NAMES, modality),
            T.rank(list(T.TASK_LABELS), task),
            str(label),
            T.rank(T.METRIC_ORDER, metric),
            setting,
        )
    return (
        T.rank(list(T.TASK_LABELS), task),
        str(label),
        T.rank(T.METRIC_ORDER, metric),
        T.rank(MODALITY_NAMES, modality),
    )


def row_label(key: tuple) -> list[str]:
    table, task, setting, q, g, modality, label, metric = key
    metric_label = T.metric_label(metric)
    if table == "table3":
        return [_mod(q), _mod(g), metric_label]
    task_label = T._task_label(task) + T._label_suffix(
        label, modality if table == "table4" else None
    )
    if table == "table4":
        return [_mod(modality), task_label, T.SETTING_LABELS.get(setting, setting), metric_label]
    return [task_label, _mod(modality), metric_label]


def _short(key: tuple) -> str:
    parts = row_label(key)
    return " → ".join(parts[:2]) if key[0] == "table3" else " · ".join(parts[:-1])


def diff_cell(metric: str, p: Paired, notes: T.Notes) -> T.Cell:
    if p.value is None:
        return T.Cell("—", note=notes.add(p.reason or "no difference"), title=p.reason)
    text = T.fmt_value(metric, p.value, signed=True)
    if p.ci_low is None or p.ci_high is None:
        return T.Cell(text, note=notes.add(p.reason) if p.reason else None, title=p.reason)
    ci = T.fmt_ci(metric, p.ci_low, p.ci_high)
    s = direction(metric)
    colour = ink = None
    if s and (p.ci_low > 0 or p.ci_high < 0):
        better = s * p.value > 0
        colour, ink = ("#d9f0d3", "#14532d") if better else ("#fde0dd", "#7f1d1d")
    return T.Cell(text, ci, color=colour, ink=ink)


def _best(metric: str, recs: list[dict | None]) -> int | None:
    s = direction(metric)
    vals = [(s * r["value"], i) for i, r in enumerate(recs) if r and r["value"] is not None]
    return max(vals)[1] if s and len(vals) > 1 else None


def table_page(
    table: str, runs: list[Run], ref: Run, diffs: dict[str, dict[tuple, Paired]]
) -> dict[str, Any]:
    """Rows of one table: every run's value, each run's paired difference, the paper."""
    values = [r.values() for r in runs]
    keys = sorted({k for v in values for k in v if k[0] == table}, key=_order)
    others = [r for r in runs if r is not ref]
    notes, rows = T.Notes(), []
    for key in keys:
        recs = [v.get(key) for v in values]
        cells = [dataclasses.replace(T.make_cell(r, notes), paper=None) for r in recs]
        best = _best(key[-1], recs)
        rec = dict(zip(_KEY, key, strict=True))
        paper = paper_value(rec)
        rows.append(
            {
                "label": row_label(key),
                "metric": key[-1],
                "cells": cells,
                "best": best,
                "diffs": [diff_cell(key[-1], diffs[o.name][key], notes) for o in others],
                "paper": None if paper is None else T.fmt_value(key[-1], paper),
            }
        )
    sections: list[dict[str, Any]] = []
    for row in rows:
        group = T.metric_label(row["metric"]) if table == "table3" else ""
        if not sections or sections[-1]["label"] != group:
            sections.append({"label": group, "rows": [], "open": not sections})
        sections[-1]["rows"].append(row)
    head = {
        "table3": ["Query", "Retrieved", "Metric"],
        "table4": ["Modality", "Task", "Setting", "Metric"],
        "table5": ["Task", "Modality", "Metric"],
    }[table]
    plot_keys = [
        k
        for k in keys
        if k[-1] in HEADLINE[table] and any(diffs[o.name][k].value is not None for o in others)
    ]
    plot = forest(
        table,
        PAGES[table].split(": ", 1)[1] + ": difference from " + ref.name,
        [_short(k) for k in plot_keys],
        [k[-1] for k in plot_keys],
        {o.name: [diffs[o.name].get(k) for k in plot_keys] for o in others},
    )
    return {
        "head": head,
        "runs": [r.name for r in runs],
        "reference": ref.name,
        "others": [o.name for o in others],
        "sections": sections,
        "notes": notes.items,
        "standings": rank_runs([r.name for r in runs], values, keys, table),
        "headline": [T.metric_label(m) for m in HEADLINE[table]],
        "plot": None if plot is None else {"title": plot.title, "svg": Markup(plot.svg)},
    }


def contexts(runs: list[Run], ref: Run, *, n_resamples: int, seed: int) -> dict[str, dict]:
    keys = sorted({k for r in runs for k in r.values()}, key=lambda k: (k[0], _order(k)))
    diffs = {
        r.name: paired_differences(r, ref, keys, n_resamples=n_resamples, seed=seed)
        for r in runs
        if r is not ref
    }
    pairing = [{"name": r.name, "why": pairable(r, ref)} for r in runs if r is not ref]
    pages: dict[str, dict] = {
        "index": {
            "runs": [
                {
                    "name": r.name,
                    "model": r.model,
                    "reference": r is ref,
                    "manifest": (r.manifest_hash or "—")[:12],
                    "path": str(r.path),
                    "text_side": r.provenance.get("text_side"),
                    "modalities": r.provenance.get("modalities_encoded"),
                }
                for r in runs
            ],
            "pairing": pairing,
            "n_resamples": n_resamples,
        }
    }
    for table in TABLES:
        pages[table] = table_page(table, runs, ref, diffs)
    pages["index"]["standings"] = {PAGES[t]: pages[t]["standings"] for t in TABLES}
    pages["index"]["headline"] = {PAGES[t]: pages[t]["headline"] for t in TABLES}
    citation, discrepancies = paper_source()
    for name, ctx in pages.items():
        ctx.update(
            page=name,
            title=PAGES[name],
            pages=PAGES,
            paper_source=citation,
            paper_notes=discrepancies,
            pairing=pairing,
            reference=ref.name,
            source=", ".join(r.name for r in runs),
        )
    return pages


def render(
    runs: list[Run], ref: Run, out_dir: Path, *, n_resamples: int = 1000, seed: int = 0
) -> list[Path]:
    env = environment()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, ctx in contexts(runs, ref, n_resamples=n_resamples, seed=seed).items():
        template = "compare_index.html.j2" if name == "index" else "compare_table.html.j2"
        path = out_dir / f"{name}.html"
        path.write_text(env.get_template(template).render(**ctx), encoding="utf-8")
        written.append(path)
    return written
