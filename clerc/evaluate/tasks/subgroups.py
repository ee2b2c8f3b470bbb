"""Subgroups: every Table 4 and Table 5 cell scored within sex, age bands and race.

For each cell (zero-shot, linear probe, cross-modal probe, supervised when given) the
study-level test predictions of the cell are split by each family of
``Context.subgroups`` (see ``clerc.evaluate.subgroups``). Every group of every family and
every metric of the cell is bootstrapped on the *same* patient resamples
(``bootstrap.joint_replicates``: each group sees only its own patients' counts), so

- each group gets a patient-bootstrap interval (records keyed ``subgroup = "sex=F"``),
- the largest between-group gap per family (highest minus lowest group value on the full
  test set) gets a paired interval from the same resamples (``subgroup = "sex"``, metric
  ``<metric>_gap``; the note names the two groups; ``n`` counts the patients of every
  scored group of the family).

Groups with fewer than ``min_patients`` patients are recorded as too small (value null).
Probe predictions are shared with ``linear_probe`` / ``cross_modal`` (``ctx.memo``), so
the task refits nothing those tasks already fitted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from clerc.evaluate import bootstrap
from clerc.evaluate.registry import Context, task
from clerc.evaluate.results import Record, TaskResult
from clerc.evaluate.subgroups import assign, group_order, group_tables
from clerc.evaluate.tasks.common import StudyPredictions, base, cell_metrics, cell_seed
from clerc.evaluate.tasks.probe import probe_predictions
from clerc.evaluate.tasks.supervised import supervised_cells
from clerc.evaluate.tasks.zeroshot import zero_shot_key, zero_shot_predictions
from clerc.modalities import DIAGNOSTIC


def cells(ctx: Context) -> Iterator[tuple[dict[str, Any], StudyPredictions, bool]]:
    """(key fields, study predictions, scores are probabilities) of every scored Table 4
    and Table 5 cell; cells without predictions are skipped (their main record says why)."""
    for d in ctx.definitions:
        if d.table4 and d.has_zero_shot:
            sp = zero_shot_predictions(ctx, d)
            if not isinstance(sp, str):
                yield zero_shot_key(d), sp, False
    for table, pick in (
        ("table4", lambda d: [d.modality] if d.table4 and d.modality else []),
        ("table5", lambda d: list(DIAGNOSTIC) if d.table5 else []),
    ):
        for d in ctx.definitions:
            for modality in pick(d):
                sp = probe_predictions(ctx, d, modality)
                if not isinstance(sp, str):
                    yield (
                        base(
                            table,
                            d.label,
                            "linear_probe",
                            modality=modality,
                            label_modality=d.label_modality,
                        ),
                        sp,
                        True,
                    )
    if ctx.supervised is not None:
        for b, _, sp in supervised_cells(ctx.supervised, ctx):
            if not isinstance(sp, str):
                yield b, sp, True


def subgroup_records(
    ctx: Context,
    b: dict[str, Any],
    sp: StudyPredictions,
    probabilities: bool,
    tables: dict[str, pd.Series] | None = None,
) -> list[Record]:
    """Per-group records and per-family gap records of one cell."""
    cfg = ctx.subgroups
    f = sp.frame
    pid = f["patient_id"].astype(str).to_numpy(dtype=object)
    y, s = f["y_true"].to_numpy(float), f["y_score"].to_numpy(float)
    metrics = cell_metrics(sp.kind, probabilities)
    out: list[dict[str, Any]] = []
    parts: list[bootstrap.Part] = []
    slots: list[tuple[str, str, str, int]] = []  # family, group, metric, n patients
    for family in cfg.families:
        groups = assign(ctx.manifest, f, family, cfg, tables=tables)
        for g in group_order(family, sorted(set(groups))):
            rows = np.flatnonzero(groups == g)
            n = int(pd.unique(pid[rows]).size)
            if n < cfg.min_patients:
                out += [
                    _undefined(
                        b,
                        m,
                        f"too small: {n} patients in {family}={g}, fewer "
                        f"than {cfg.min_patients}; not scored",
                        n,
                    )
                    | _key(family, g)
                    for m in metrics
                ]
                continue
            yg, sg = y[rows], s[rows]  # one array per group: AUROC/AUPRC share products
            for m in metrics:
                parts.append(bootstrap.Part(m, yg, sg, rows))
                slots.append((family, g, m, n))
    if not parts:
        return [Record(**r) for r in out]
    try:
        points, ok, values, defined = bootstrap.joint_replicates(
            pid, parts, n_resamples=max(ctx.n_resamples, 1), seed=cell_seed(ctx, b, "subgroups")
        )
    except ValueError as exc:  # e.g. Brier of scores that are not probabilities
        return [Record(**r) for r in out] + [
            Record(**(_undefined(b, m, f"not scored: {exc}", n) | _key(fam, g)))
            for fam, g, m, n in slots
        ]
    for i, (family, g, m, n) in enumerate(slots):
        out.append(_record(ctx, b, m, n, points[i], ok[i], values[i], defined[i]) | _key(family, g))
    out += _gaps(ctx, b, slots, points, ok, values, defined)
    return [Record(**r) for r in out]


def _key(family: str, group: str | None = None) -> dict[str, str]:
    return {"subgroup": family if group is None else f"{family}={group}"}


def _record(
    ctx: Context,
    b: dict[str, Any],
    metric: str,
    n: int,
    point: float,
    ok: bool,
    values: np.ndarray,
    defined: np.ndarray,
) -> dict[str, Any]:
    """A record (as a dict, the subgroup key still to add) from joint replicates; the
    cell's note (label matching) stays on the cell's main record."""
    if not ok:
        return _undefined(
            b, metric, f"{metric} undefined in this group (one class only or no variance)", n
        )
    rec = {
        **b,
        "metric": metric,
        "value": float(point),
        "ci_low": None,
        "ci_high": None,
        "n": n,
        "n_undefined": 0,
        "note": None,
    }
    if ctx.n_resamples < 1:
        return {**rec, "note": "no interval: bootstrap disabled"}
    rec["n_undefined"] = int((~defined).sum())
    if defined.any():
        rec["ci_low"], rec["ci_high"] = bootstrap.percentile_interval(values[defined])
    else:
        rec["note"] = "no interval: undefined in every resample"
    return rec


def _undefined(b: dict[str, Any], metric: str, note: str, n: int) -> dict[str, Any]:
    return {
        **b,
        "metric": metric,
        "value": None,
        "ci_low": None,
        "ci_high": None,
        "n": n,
        "n_undefined": 0,
        "note": note,
    }


def _gaps(
    ctx: Context,
    b: dict[str, Any],
    slots: list[tuple[str, str, str, int]],
    points: np.ndarray,
    ok: np.ndarray,
    values: np.ndarray,
    defined: np.ndarray,
) -> list[dict[str, Any]]:
    """Per family and metric: highest minus lowest group value, with the paired interval."""
    out = []
    families = list(dict.fromkeys(fam for fam, _, _, _ in slots))
    metrics = list(dict.fromkeys(m for _, _, m, _ in slots))
    for family in families:
        for m in metrics:
            idx = [
                i for i, (fam, _, mm, _) in enumerate(slots) if fam == family and mm == m and ok[i]
            ]
            name = f"{m}_gap"
            if len(idx) < 2:
                out.append(
                    _undefined(b, name, f"fewer than two {family} groups scored", 0) | _key(family)
                )
                continue
            hi = max(idx, key=lambda i: points[i])
            lo = min(idx, key=lambda i: points[i])
            # every scored group of the family: which two groups are the extremes can
            # change with float noise, the population compared cannot
            n = sum(slots[i][3] for i in idx)
            note = (
                f"largest {family} gap: {slots[hi][1]} ({points[hi]:.3g}) minus "
                f"{slots[lo][1]} ({points[lo]:.3g}); paired patient bootstrap"
            )
            both = defined[hi] & defined[lo]
            diff = values[hi][both] - values[lo][both]
            rec = {
                **b,
                "metric": name,
                "value": float(points[hi] - points[lo]),
                "ci_low": None,
                "ci_high": None,
                "n": n,
                "n_undefined": int((~both).sum()) if ctx.n_resamples else 0,
                "note": note,
            }
            if ctx.n_resamples >= 1 and diff.size:
                rec["ci_low"], rec["ci_high"] = bootstrap.percentile_interval(diff)
            out.append(rec | _key(family))
    return out


@task("subgroups", "table4", "linear_probe")
def subgroups(ctx: Context) -> TaskResult:
    """Tables 4-5 within sex, age bands and race, with the largest gap per family."""
    tables = group_tables(ctx.manifest, ctx.subgroups)
    out = TaskResult()
    for b, sp, probabilities in cells(ctx):
        out += subgroup_records(ctx, b, sp, probabilities, tables)
    return out
