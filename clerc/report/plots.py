"""Figures for the report as inline SVG strings (matplotlib, Agg, no pyplot state).

Text is drawn as paths (``svg.fonttype = "path"``) and mathtext is off, so no label string
reaches the SVG as markup; matplotlib writes each text only into an escaped XML comment.

Predictions come from ``predictions.parquet`` (``cell``, ``kind``, ``y_true``, ``y_score``);
``cell`` is the record key without the metric, joined by ``|`` with empty strings for nulls:
``table|task|setting|query_modality|gallery_modality|modality|label_modality``. Retrieval
rows hold in ``y_score`` the percentile rank of one query's true match (``y_true`` unused).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

import matplotlib
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from clerc.evaluate.results import CELL_FIELDS
from clerc.modalities import MODALITIES, MODALITY_NAMES
from clerc.report.tables import TASK_LABELS, rank

matplotlib.use("Agg")

RC: Any = {
    "svg.fonttype": "path",
    "text.parse_math": False,
    "font.size": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
SETTING_COLOURS = {"zero_shot": "#1f77b4", "linear_probe": "#d62728", "supervised": "#2ca02c"}


@dataclass(frozen=True)
class Plot:
    """A titled figure: ``svg`` is a complete ``<svg>`` element."""

    title: str
    svg: str


def parse_cell(cell: str) -> dict[str, str | None]:
    """Split a predictions cell key into its fields (empty -> None); names a malformed key."""
    parts = str(cell).split("|")
    if len(parts) != len(CELL_FIELDS):
        raise ValueError(
            f"predictions cell {cell!r}: expected {len(CELL_FIELDS)} fields "
            f"{'|'.join(CELL_FIELDS)}, got {len(parts)}"
        )
    return {f: (p or None) for f, p in zip(CELL_FIELDS, parts, strict=True)}


def to_svg(fig: Figure, salt: str) -> str:
    """The figure as an ``<svg>`` element with ids unique to ``salt`` and no date stamp."""
    buf = io.StringIO()
    with matplotlib.rc_context({**RC, "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    start = text.find("<svg")
    if start < 0:
        raise RuntimeError("matplotlib produced no <svg> element")
    # glyph ids are shared between figures; prefix every id so inline SVGs cannot collide
    svg = text[start:]
    svg = re.sub(r'id="([^"]+)"', rf'id="{salt}-\1"', svg)
    return re.sub(r'(xlink:href|href)="#([^"]+)"', rf'\1="#{salt}-\2"', svg).replace(
        "url(#", f"url(#{salt}-"
    )


def _figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(RC):
        return Figure(figsize=(width, height), layout="constrained")


def _modality_label(name: str | None) -> str:
    return MODALITIES.get(name).label if name is not None and name in MODALITIES else str(name)


def _task_label(task: str | None) -> str:
    return TASK_LABELS.get(str(task), str(task))


def _setting_label(setting: str) -> str:
    return setting.replace("_", "-" if setting == "zero_shot" else " ")


def heatmap(values: dict[tuple[str, str], float | None], title: str) -> Plot:
    """Query x retrieved matrix of a lower-is-better percentile metric; diagonal blank."""
    n = len(MODALITY_NAMES)
    grid = np.full((n, n), np.nan)
    for (q, g), v in values.items():
        if v is not None and q in MODALITY_NAMES and g in MODALITY_NAMES:
            grid[MODALITY_NAMES.index(q), MODALITY_NAMES.index(g)] = v
    fig = _figure(6.2, 5.0)
    with matplotlib.rc_context(RC):
        ax = fig.add_subplot()
        im = ax.imshow(grid, cmap="RdYlGn_r", vmin=0, vmax=50)
        labels = [_modality_label(m) for m in MODALITY_NAMES]
        ax.set_xticks(range(n), labels, rotation=45, ha="right")
        ax.set_yticks(range(n), labels)
        ax.set_xlabel("Retrieved modality")
        ax.set_ylabel("Query modality")
        for (i, j), v in np.ndenumerate(grid):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7)
        fig.colorbar(im, ax=ax, label=f"{title} (lower is better, 50 = chance)")
        ax.set_title(title)
    return Plot(f"Table 3 heatmap: {title}", to_svg(fig, "heatmap"))


def _roc(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    order = np.argsort(-score, kind="mergesort")
    s, t = score[order], y[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(t)[last]
    fps = last + 1 - tps
    tpr = np.r_[0.0, tps / t.sum()]
    fpr = np.r_[0.0, fps / (len(t) - t.sum())]
    return fpr, tpr, float(np.trapezoid(tpr, fpr))


def _panels(count: int, cols: int, size: float) -> tuple[Figure, list]:
    rows = max(1, -(-count // cols))
    fig = _figure(size * min(count, cols), size * rows)
    with matplotlib.rc_context(RC):
        axes = fig.subplots(rows, min(count, cols), squeeze=False).ravel().tolist()
    for ax in axes[count:]:
        ax.set_visible(False)
    return fig, axes[:count]


def _groups(pred: pd.DataFrame, kind: str) -> dict[tuple, dict[str, pd.DataFrame]]:
    """Table 4 cells of one kind grouped by (task, modality, label) -> setting -> rows."""
    out: dict[tuple, dict[str, pd.DataFrame]] = {}
    for cell, rows in pred[pred["kind"] == kind].groupby("cell", sort=False):
        f = parse_cell(cell)
        if f["table"] == "table4":
            key = (f["task"], f["modality"], f["label_modality"])
            out.setdefault(key, {})[str(f["setting"])] = rows
    return out


def roc_curves(pred: pd.DataFrame) -> Plot | None:
    """One ROC panel per binary Table 4 task, a curve per setting with its AUROC."""
    groups = _groups(pred, "binary")
    if not groups:
        return None
    fig, axes = _panels(len(groups), 4, 2.3)
    with matplotlib.rc_context(RC):
        for ax, ((task, modality, _), by_setting) in zip(axes, groups.items(), strict=True):
            for setting, rows in by_setting.items():
                y = rows["y_true"].to_numpy(float)
                if y.min() == y.max():
                    continue
                fpr, tpr, auc = _roc(y, rows["y_score"].to_numpy(float))
                ax.plot(
                    fpr,
                    tpr,
                    color=SETTING_COLOURS.get(setting, "#7f7f7f"),
                    lw=1.2,
                    label=f"{_setting_label(setting)} {auc:.2f}",
                )
            ax.plot([0, 1], [0, 1], color="#bbbbbb", lw=0.8, ls="--")
            ax.set_title(f"{_modality_label(modality)}: {_task_label(task)}", fontsize=8)
            ax.set_xlabel("1 − specificity")
            ax.set_ylabel("sensitivity")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=6, loc="lower right", frameon=False)
            else:  # every setting saw one class only: say so instead of an empty legend
                ax.text(0.5, 0.15, "one class only: no curve", fontsize=6, ha="center")
    return Plot("ROC curves (test set)", to_svg(fig, "roc"))


def regression_scatter(pred: pd.DataFrame) -> Plot | None:
    """Predicted vs true for each regression task of Table 4 (LVEF), a panel per setting."""
    groups = _groups(pred, "regression")
    panels = [(key, s, rows) for key, by in groups.items() for s, rows in by.items()]
    if not panels:
        return None
    fig, axes = _panels(len(panels), 3, 2.8)
    with matplotlib.rc_context(RC):
        for ax, ((task, modality, _), setting, rows) in zip(axes, panels, strict=True):
            y, p = rows["y_true"].to_numpy(float), rows["y_score"].to_numpy(float)
            ax.scatter(y, p, s=6, alpha=0.6, color=SETTING_COLOURS.get(setting, "#7f7f7f"))
            lo, hi = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
            ax.plot([lo, hi], [lo, hi], color="#888888", lw=0.8, ls="--")
            ax.set_title(
                f"{_modality_label(modality)} {_task_label(task)}: {_setting_label(setting)}",
                fontsize=8,
            )
            ax.set_xlabel("true")
            ax.set_ylabel("predicted")
    return Plot("Predicted vs true (regression tasks)", to_svg(fig, "scatter"))


def retrieval_distribution(pred: pd.DataFrame) -> Plot | None:
    """Box plot of the per-query percentile of the true match, one box per retrieval cell."""
    rows = pred[pred["kind"] == "retrieval"]
    if rows.empty:
        return None
    cells = []
    for cell, part in rows.groupby("cell", sort=False):
        f = parse_cell(cell)
        order = (
            rank(MODALITY_NAMES, f["query_modality"]),
            rank(MODALITY_NAMES, f["gallery_modality"]),
        )
        label = f"{_modality_label(f['query_modality'])} → {_modality_label(f['gallery_modality'])}"
        cells.append((order, label, part["y_score"].to_numpy(float)))
    cells.sort(key=lambda c: c[0])
    fig = _figure(6.5, 0.16 * len(cells) + 1.0)
    with matplotlib.rc_context(RC):
        ax = fig.add_subplot()
        ax.boxplot(
            [c[2] for c in cells],
            orientation="horizontal",
            widths=0.6,
            showfliers=False,
            tick_labels=[c[1] for c in cells],
        )
        ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=6)
        ax.set_xlabel("percentile of the true match (lower is better)")
        ax.set_xlim(0, 100)
    return Plot("Distribution of retrieval percentiles per cell", to_svg(fig, "retrieval"))


def reliability_diagram(pred: pd.DataFrame, n_bins: int = 10) -> Plot | None:
    """Observed rate against mean predicted probability per bin, a line per binary Table 4
    probe cell (CLERC linear probe; supervised too when its scores are probabilities)."""
    from clerc.evaluate.metrics import ece_bins

    lines = []
    for (task, modality, _), by_setting in _groups(pred, "binary").items():
        for setting in ("linear_probe", "supervised"):
            rows = by_setting.get(setting)
            if rows is None:
                continue
            y, p = rows["y_true"].to_numpy(float), rows["y_score"].to_numpy(float)
            if p.min() < 0 or p.max() > 1:
                continue
            b = ece_bins(p, n_bins)
            n = np.bincount(b, minlength=n_bins)
            ok = n > 0
            conf = np.bincount(b, weights=p, minlength=n_bins)[ok] / n[ok]
            rate = np.bincount(b, weights=y, minlength=n_bins)[ok] / n[ok]
            lines.append((setting, f"{_modality_label(modality)}: {_task_label(task)}", conf, rate))
    if not lines:
        return None
    settings = list(dict.fromkeys(s for s, _, _, _ in lines))
    fig, axes = _panels(len(settings), 2, 3.6)
    with matplotlib.rc_context(RC):
        for ax, setting in zip(axes, settings, strict=True):
            for s, label, conf, rate in lines:
                if s == setting:
                    ax.plot(conf, rate, marker="o", ms=2.5, lw=1, label=label)
            ax.plot([0, 1], [0, 1], color="#888888", lw=0.8, ls="--")
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_xlabel("mean predicted probability (bin)")
            ax.set_ylabel("observed positive rate")
            ax.set_title(f"{_setting_label(setting)} ({n_bins} equal-width bins)", fontsize=8)
            ax.legend(fontsize=5, loc="upper left", frameon=False)
    return Plot("Reliability diagram of probe probabilities (test set)", to_svg(fig, "reliability"))


LE_METRIC = {"binary": "auroc", "regression": "r2"}


def label_efficiency(records: list[dict]) -> Plot | None:
    """Metric against labelled training patients per Table 4 task: CLERC linear and k-NN
    probes (mean over draws, bars = ±1 sd across draws), the supervised baseline (trained
    on every training patient) and zero-shot (no labels) on the same axes."""
    le = [
        r
        for r in records
        if r.get("train_fraction") is not None
        and r["table"] == "table4"
        and r.get("subgroup") is None
    ]
    if not le:
        return None
    index = {
        (r["task"], r["modality"], r["setting"], r["train_fraction"], r["metric"]): r for r in le
    }
    main = {
        (r["task"], r["modality"], r["setting"], r["metric"]): r
        for r in records
        if r["table"] == "table4" and r.get("subgroup") is None and r.get("train_fraction") is None
    }
    cells = sorted(
        {(r["task"], r["modality"]) for r in le},
        key=lambda c: (rank(MODALITY_NAMES, c[1]), rank(list(TASK_LABELS), c[0])),
    )
    fig, axes = _panels(len(cells), 4, 2.5)
    colours = {"linear_probe": SETTING_COLOURS["linear_probe"], "knn_probe": "#9467bd"}
    with matplotlib.rc_context(RC):
        for ax, (task, modality) in zip(axes, cells, strict=True):
            metric = (
                "r2"
                if any(k[0] == task and k[1] == modality and k[4] == "r2" for k in index)
                else "auroc"
            )
            fractions = sorted({k[3] for k in index if k[:2] == (task, modality)})
            n_of = {
                f: index.get((task, modality, "linear_probe", f, "train_patients"))
                for f in fractions
            }
            xs = {f: (r["value"] if r and r["value"] else None) for f, r in n_of.items()}
            drawn = False
            for setting, colour in colours.items():
                found = [
                    (
                        xs[f],
                        index.get((task, modality, setting, f, metric)),
                        index.get((task, modality, setting, f, f"{metric}_sd")),
                    )
                    for f in fractions
                    if xs[f]
                ]
                pts = [
                    (x, r["value"], sd["value"] if sd and sd["value"] else 0.0)
                    for x, r, sd in found
                    if r and r["value"] is not None
                ]
                if pts:
                    x, v, e = map(np.asarray, zip(*pts, strict=True))
                    ax.errorbar(
                        x,
                        v,
                        yerr=e,
                        color=colour,
                        marker="o",
                        ms=3,
                        lw=1.2,
                        capsize=2,
                        label=f"CLERC {_setting_label(setting)}",
                    )
                    drawn = True
            sup = main.get((task, modality, "supervised", metric))
            full = max((x for x in xs.values() if x), default=None)
            if sup and sup["value"] is not None and full:
                ax.plot(
                    [full],
                    [sup["value"]],
                    marker="*",
                    ms=8,
                    ls="none",
                    color=SETTING_COLOURS["supervised"],
                    label="supervised (all train)",
                )
            zs = main.get((task, modality, "zero_shot", metric))
            if zs and zs["value"] is not None:
                ax.axhline(
                    zs["value"],
                    color=SETTING_COLOURS["zero_shot"],
                    lw=0.9,
                    ls="--",
                    label="zero-shot (no labels)",
                )
            ax.set_xscale("log")
            ticks = sorted({float(x) for x in xs.values() if x})
            ax.set_xticks(ticks, [f"{t:,.0f}" for t in ticks])
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            ax.set_title(f"{_modality_label(modality)}: {_task_label(task)}", fontsize=8)
            ax.set_xlabel("labelled training patients")
            ax.set_ylabel("R²" if metric == "r2" else "AUROC")
            if not drawn:
                ax.text(
                    0.5,
                    0.5,
                    "no fraction could be scored",
                    ha="center",
                    va="center",
                    transform=ax.transAxes,
                    fontsize=7,
                    color="#666666",
                )
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=5, loc="best", frameon=False)
    return Plot(
        "Label efficiency: metric against labelled training patients",
        to_svg(fig, "label-efficiency"),
    )
