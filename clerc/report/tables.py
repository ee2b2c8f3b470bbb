"""Template contexts for the five tables: plain strings and ``Cell``s, no HTML.

Every value shown comes from an aggregate record or the cohort counts; escaping is left to
the templates (autoescape), so nothing here builds markup.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from clerc.evaluate.metric_specs import metric_order, spec_or_default
from clerc.modalities import MODALITIES, MODALITY_NAMES

TEST_LABELS = {"echo": "Echo", "ecg": "EKG", "angio": "Angiogram", "cxr": "CXR"}
SHORT_TEST_LABELS = {"echo": "Echo", "ecg": "EKG", "angio": "Angio", "cxr": "CXR"}


def label_of_test(test: str, short: bool = False) -> str:
    """A test's column label (a test registered elsewhere shows its name in capitals)."""
    return (SHORT_TEST_LABELS if short else TEST_LABELS).get(test, test.upper())


TASK_LABELS = {
    "age": "Age",
    "sex": "Sex",
    "lvef": "LVEF",
    "pacemaker": "Pacemaker",
    "rbbb": "RBBB",
    "lbbb": "LBBB",
    "lad_occlusion": "LAD Occlusion",
    "rca_occlusion": "RCA Occlusion",
    "lcx_occlusion": "LCX Occlusion",
    "consolidation": "Consolidation",
    "edema": "Edema",
}
SETTING_LABELS = {
    "zero_shot": "Zero-shot",
    "linear_probe": "Linear probing",
    "supervised": "Supervised",
}
#: Metric order of the tables (the order of ``metric_specs``).
METRIC_ORDER = tuple(metric_order())
MISSING = "not in results"
NOT_PROBABILITIES = "not computed: zero-shot scores are not probabilities (no calibration)"
#: Colour scale of matrix cells from best (t = 0) through neutral to worst (t = 1).
PALETTE = ((0.10, 0.59, 0.25), (1.0, 1.0, 0.75), (0.84, 0.10, 0.11))


@dataclass(frozen=True)
class Cell:
    """One shown value: text, optional CI, footnote number and its text, optional colours."""

    text: str
    ci: str | None = None
    note: int | None = None
    title: str | None = None
    color: str | None = None
    ink: str | None = None
    paper: str | None = None
    oracle: str | None = None


@dataclass
class Notes:
    """Footnotes of one page, numbered in order of first use; equal texts share a number."""

    items: list[str] = field(default_factory=list)

    def add(self, text: str) -> int:
        if text not in self.items:
            self.items.append(text)
        return self.items.index(text) + 1


def fmt_value(metric: str, value: float, signed: bool = False) -> str:
    """A metric value with the paper's precision (true minus sign; ``+`` when ``signed``);
    p-values below 0.001 as ``<0.001``."""
    spec = spec_or_default(metric)  # a gap/spread (``_gap``, ``_sd``) in the metric's units
    if spec.kind == "p_value":
        return "<0.001" if value < 0.001 else spec.format(value)
    value = round(value, spec.decimals) + 0.0  # no "−0.000" for a value that rounds to zero
    return spec.format(value, signed).replace("-", "−")


def metric_label(metric: str) -> str:
    """The metric's name as the tables show it."""
    return spec_or_default(metric).label


#: The tables' label of each metric (from ``metric_specs``).
METRIC_LABELS = {m: metric_label(m) for m in METRIC_ORDER}


def fmt_ci(metric: str, low: float, high: float) -> str:
    """``0.861–0.907``, or ``−0.083 to 0.012`` when a bound is negative."""
    lo = fmt_value(metric, low)
    sep = " to " if lo.startswith("−") else "–"
    return f"{lo}{sep}{fmt_value(metric, high)}"


def fmt_count(value: object) -> str:
    """A cohort count or summary: ``1,234``, ``1,234 (50.3%)``, ``64.6 ± 17.9`` or ``—``."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float | dict):
        raise ValueError(f"cohort cell {value!r}: expected a count, {{n, pct}} or {{mean, std}}")
    if isinstance(value, int | float):
        return f"{value:,.0f}"
    if {"mean", "std"} <= value.keys():
        mean, std = value["mean"], value["std"]
        if mean is None:
            return "—"
        return f"{mean:.1f}" + ("" if std is None else f" ± {std:.1f}")
    if "n" in value:
        pct = value.get("pct")
        return f"{value['n']:,}" + ("" if pct is None else f" ({pct:.1f}%)")
    raise ValueError(f"cohort cell {value!r}: expected keys n[, pct] or mean, std")


def scale_colour(metric: str, value: float) -> tuple[str, str]:
    """Background and text colour: green = good, red = bad, for the metric's direction."""
    if metric.endswith("percentile"):
        t = math.sqrt(min(max(value, 0.0), 50.0) / 50.0)  # 50 = chance
    else:
        t = min(max(value, 0.0), 1.0)
        t = 1.0 - t if spec_or_default(metric).better > 0 else t
    lo, hi, u = (PALETTE[0], PALETTE[1], t * 2) if t < 0.5 else (PALETTE[1], PALETTE[2], t * 2 - 1)
    rgb = [round(255 * (a + (b - a) * u)) for a, b in zip(lo, hi, strict=True)]
    ink = "#ffffff" if t < 0.12 or t > 0.88 else "#111111"
    return "#{:02x}{:02x}{:02x}".format(*rgb), ink


def make_cell(
    rec: dict | None, notes: Notes, *, colour: bool = False, missing: str = MISSING
) -> Cell:
    """The cell of a record (``None`` = no record): value, CI and any note as a footnote."""
    if rec is None:
        return Cell("—", note=notes.add(missing), title=missing)
    texts = [rec["note"]] if rec["note"] else []
    if rec["n_undefined"]:
        texts.append(f"{rec['n_undefined']} bootstrap resamples undefined")
    text = "; ".join(texts) or None
    note = notes.add(text) if text else None
    if rec["value"] is None:
        text = text or "no value"
        shown = "n/a" if text.startswith("not applicable") else "—"
        return Cell(shown, note=note or notes.add(text), title=text)
    metric = rec["metric"]
    ci = None
    if rec["ci_low"] is not None and rec["ci_high"] is not None:
        ci = fmt_ci(metric, rec["ci_low"], rec["ci_high"])
    bg, ink = scale_colour(metric, rec["value"]) if colour else (None, None)
    signed = rec["setting"] == "difference"
    return Cell(fmt_value(metric, rec["value"], signed), ci, note, text, bg, ink, paper_text(rec))


def paper_text(rec: dict) -> str | None:
    """``paper 2.8 · Δ +1.2`` (measured minus published) for a cell the paper reports."""
    from clerc.report.paper import paper_value

    published = paper_value(rec)
    if published is None or rec["value"] is None:
        return None
    metric = rec["metric"]
    diff = fmt_value(metric, rec["value"] - published, signed=True)
    return f"paper {fmt_value(metric, published)} · Δ {diff}"


def rank(order: Sequence[str], name: str | None) -> tuple[int, str]:
    return (
        (order.index(name), "") if name is not None and name in order else (len(order), str(name))
    )


def test_groups(names: Sequence[str], short: bool = True) -> list[dict]:
    """Consecutive modalities grouped by test: ``[{label, span, subs: [Video, Text]}]``."""
    groups: list[dict] = []
    for name in names:
        m = MODALITIES.get(name)
        if not groups or groups[-1]["test"] != m.test:
            groups.append(
                {"test": m.test, "label": label_of_test(m.test, short), "span": 0, "subs": []}
            )
        groups[-1]["span"] += 1
        groups[-1]["subs"].append(m.label.split(" ", 1)[1].capitalize())
    return groups


def _matrix_rows(names: Sequence[str], value_of: Callable[[str, str], Any]) -> list[dict]:
    rows, groups = [], test_groups(names)
    i = 0
    for g in groups:
        for j, sub in enumerate(g["subs"]):
            q = names[i + j]
            rows.append(
                {
                    "group": g["label"] if j == 0 else None,
                    "span": g["span"],
                    "sub": sub,
                    "index": i + j,
                    "cells": [value_of(q, c) for c in names],
                }
            )
        i += g["span"]
    return rows


def table1(cohort: dict) -> dict:
    """Patients per modality (diagonal) and per pair (lower triangle), paper order."""
    t1 = cohort["table1"]
    patients, pairs = t1["patients"], t1["pairs"]
    for key in pairs:
        a, sep, b = key.partition("|")
        if not sep or a not in MODALITIES or b not in MODALITIES:
            raise ValueError(f"cohort.table1.pairs key {key!r}: expected 'modality|modality'")

    def value_of(q: str, c: str) -> str | None:
        i, j = MODALITY_NAMES.index(q), MODALITY_NAMES.index(c)
        if j > i:
            return None
        n = patients.get(q) if i == j else pairs.get(f"{c}|{q}", pairs.get(f"{q}|{c}"))
        return fmt_count(n)

    return {"groups": test_groups(MODALITY_NAMES), "rows": _matrix_rows(MODALITY_NAMES, value_of)}


SPLIT_LABELS = {"total": "Total", "train": "Train", "val": "Validation", "test": "Test"}
SECTION_LABELS = {
    "patients": "Patients",
    "age": "Age (mean ± std)",
    "female": "Female (%)",
    "race": "Race (%)",
    "patients_with_modality": "Patients with modality",
    "studies": "Number of studies",
    "samples": "Total samples",
}


def _section_label(name: str) -> str:
    return SECTION_LABELS.get(name, name.replace("_", " ").capitalize())


def _row_label(name: str) -> str:
    return label_of_test(MODALITIES.get(name).test) if name in MODALITIES else name


def table2(cohort: dict) -> dict:
    """Demographics per split: single rows (keyed by split) and grouped sections."""
    t2 = cohort["table2"]
    splits = list(t2["splits"])
    sections: list[dict[str, Any]] = []
    for name, value in t2["rows"].items():
        if not isinstance(value, dict):
            raise ValueError(f"cohort.table2.rows.{name}: expected an object, got {value!r}")
        if set(value) <= set(splits):
            sections.append(
                {
                    "label": _section_label(name),
                    "values": [fmt_count(value.get(s)) for s in splits],
                    "rows": [],
                }
            )
            continue
        rows = [
            {"label": _row_label(k), "values": [fmt_count((v or {}).get(s)) for s in splits]}
            for k, v in value.items()
        ]
        sections.append({"label": _section_label(name), "values": None, "rows": rows})
    return {"splits": [SPLIT_LABELS.get(s, s) for s in splits], "sections": sections}


def table3(records: list[dict]) -> dict:
    """One query x retrieved matrix per retrieval metric, median percentile first; with a
    synthetic cohort's oracle records, each median cell also shows the oracle's value and
    chance, and the oracle gets a matrix of its own."""
    recs = [r for r in records if r["table"] == "table3" and r["setting"] == "retrieval"]
    oracle = {
        (r["query_modality"], r["gallery_modality"]): r
        for r in records
        if r["table"] == "table3" and r["setting"] == "oracle"
    }
    metrics = sorted({r["metric"] for r in recs}, key=lambda m: rank(METRIC_ORDER, m))
    matrices = [
        _table3_matrix(recs, metric, oracle if metric == ORACLE_METRIC else {})
        for metric in metrics
    ]
    if oracle:
        matrices.append(
            {
                **_table3_matrix(list(oracle.values()), ORACLE_METRIC, {}),
                "label": "Oracle ceiling (median percentile)",
                "oracle": True,
                "metric": "oracle",
            }
        )
    return {"groups": test_groups(MODALITY_NAMES), "matrices": matrices}


#: The metric the oracle scores (Table 3's headline); chance is 50 for a random embedding.
ORACLE_METRIC, CHANCE_PERCENTILE = "median_percentile", 50.0


def _table3_matrix(recs: list[dict], metric: str, oracle: dict) -> dict:
    notes = Notes()
    by_pair = {
        (r["query_modality"], r["gallery_modality"]): r for r in recs if r["metric"] == metric
    }

    def value_of(q: str, c: str) -> Cell | None:
        if q == c:
            return None
        cell = make_cell(by_pair.get((q, c)), notes, colour=True)
        o = oracle.get((q, c))
        if o is not None and o["value"] is not None:
            cell = replace(
                cell,
                oracle=f"oracle {fmt_value(metric, o['value'])} · chance {CHANCE_PERCENTILE:.0f}",
            )
        return cell

    ns = [r["n"] for r in by_pair.values() if r["n"] is not None]
    return {
        "metric": metric,
        "label": metric_label(metric),
        "lower_is_better": spec_or_default(metric).better < 0,
        "rows": _matrix_rows(MODALITY_NAMES, value_of),
        "notes": notes.items,
        "n_range": f"{min(ns):,}–{max(ns):,}" if ns else "—",
        "oracle": False,
    }


def _task_label(task: str) -> str:
    return TASK_LABELS.get(task, task.replace("_", " ").capitalize())


def _label_suffix(label: str | None, own: str | None) -> str:
    if label is None or label == own:
        return ""
    return f" ({label_of_test(MODALITIES.get(label).test)} label)"


def table4(records: list[dict]) -> dict:
    """Rows per (modality, task, label, metric); columns per setting, then the difference."""
    recs = [r for r in records if r["table"] == "table4"]
    index = {
        (r["modality"], r["task"], r["label_modality"], r["setting"], r["metric"]): r for r in recs
    }
    settings = [s for s in SETTING_LABELS if any(r["setting"] == s for r in recs)]
    has_diff = any(r["setting"] == "difference" for r in recs)
    keys = sorted(
        {
            (r["modality"], r["task"], r["label_modality"], r["metric"])
            for r in recs
            if r["setting"] != "difference" and not r["metric"].endswith("_p_holm")
        },
        key=lambda k: (
            rank(MODALITY_NAMES, k[0]),
            rank(list(TASK_LABELS), k[1]),
            str(k[2]),
            rank(METRIC_ORDER, k[3]),
        ),
    )
    notes, rows = Notes(), list[dict[str, Any]]()
    for modality, task, label, metric in keys:

        def get(setting: str, m: str = metric, k=(modality, task, label)) -> dict | None:
            return index.get((*k, setting, m))

        why = "no supervised baseline for this task"
        cells = [
            make_cell(
                get(s),
                notes,
                missing=why
                if s == "supervised"
                else NOT_PROBABILITIES
                if s == "zero_shot" and metric in ("brier", "ece")
                else MISSING,
            )
            for s in settings
        ]
        if has_diff:
            diff_why = why if get("supervised") is None else MISSING
            cells.append(make_cell(get("difference"), notes, missing=diff_why))
            cells.append(make_cell(get("difference", f"{metric}_p_holm"), notes, missing=diff_why))
        first = not rows or rows[-1]["modality_name"] != modality
        rows.append(
            {
                "modality_name": modality,
                "first": first,
                "modality": label_of_test(MODALITIES.get(modality).test),
                "task": _task_label(task) + _label_suffix(label, modality),
                "metric": metric_label(metric),
                "cells": cells,
            }
        )
    for row in rows:
        row["span"] = sum(r["modality_name"] == row["modality_name"] for r in rows)
    columns = [SETTING_LABELS[s] for s in settings]
    if has_diff:
        columns += ["Linear probing − supervised (95% CI)", "p (Holm)"]
    return {"columns": columns, "rows": rows, "notes": notes.items}


def _one_label_per_column(
    index: dict, task: str, labels: list, setting: str, metric: str, modalities: list[str]
) -> bool:
    """True when each column has a record from at most one of the task's label sources."""
    return all(
        sum((task, lab, setting, metric, m) in index for lab in labels) <= 1 for m in modalities
    )


def _merged_name(
    index: dict, task: str, labels: list, setting: str, metric: str, modalities: list[str]
) -> str:
    """`` (Echo label in the Echo column, else ECG label)`` for a row of several labels."""
    per_column = {
        m: lab for m in modalities for lab in labels if (task, lab, setting, metric, m) in index
    }
    counts = Counter(per_column.values())
    main = max(sorted(counts, key=str), key=lambda lab: counts[lab])
    others = [m for m, lab in per_column.items() if lab != main]
    name = {m: label_of_test(MODALITIES.get(m).test) for m in (*per_column.values(), *others)}
    where = "; ".join(f"{name[per_column[m]]} label in the {name[m]} column" for m in others)
    return f" ({where}; else {name[main]} label)"


def table5(records: list[dict]) -> dict:
    """Task rows x modality columns of cross-modal probes; duplicate tasks name their label."""
    recs = [r for r in records if r["table"] == "table5"]
    modalities = sorted({r["modality"] for r in recs}, key=lambda m: rank(MODALITY_NAMES, m))
    settings = {r["setting"] for r in recs}
    index = {
        (r["task"], r["label_modality"], r["setting"], r["metric"], r["modality"]): r for r in recs
    }
    keys = sorted(
        {k[:4] for k in index},
        key=lambda k: (
            rank(list(TASK_LABELS), k[0]),
            str(k[1]),
            str(k[2]),
            rank(METRIC_ORDER, k[3]),
        ),
    )
    labels_per_task: dict[str, set] = {}
    for task, label, _, _ in keys:
        labels_per_task.setdefault(task, set()).add(label)
    notes, rows, done = Notes(), [], set()
    for task, label, setting, metric in keys:
        sources = sorted(labels_per_task[task], key=str)
        merged = len(sources) > 1 and _one_label_per_column(
            index, task, sources, setting, metric, modalities
        )
        if merged and (task, setting, metric) in done:
            continue
        name = _task_label(task)
        if len(sources) > 1 and not merged:
            name += _label_suffix(label, None)
        elif merged:
            name += _merged_name(index, task, sources, setting, metric, modalities)
        if len(settings) > 1:
            name += f" — {SETTING_LABELS.get(setting, setting)}"
        row_labels = sources if merged else [label]
        cells = [
            make_cell(
                next(
                    (
                        index[k]
                        for lab in row_labels
                        if (k := (task, lab, setting, metric, m)) in index
                    ),
                    None,
                ),
                notes,
            )
            for m in modalities
        ]
        if merged:
            done.add((task, setting, metric))
        rows.append({"task": name, "metric": metric_label(metric), "cells": cells})
    columns = [label_of_test(MODALITIES.get(m).test) for m in modalities]
    return {"columns": columns, "rows": rows, "notes": notes.items}
