"""The drift gate: compare a run's ``results.json`` with a committed baseline.

Records are matched by their key (table, task, setting, query_modality, gallery_modality,
modality, label_modality, metric). A comparison fails when

- a record is missing on either side,
- a value became null or stopped being null,
- a value moved by more than the tolerance of its metric kind (default), or outside the
  baseline's 95% CI (``--ci-mode``; records without a baseline CI fall back to tolerance),
- the record's ``n`` (patients scored) changed: the metric then describes another
  population, and a value within tolerance would hide that (``--allow-n-change`` to accept).

Drift fails in **either** direction by default: a metric that got much better on a seeded
run means the code changed what it computes, which is as much a surprise as a regression.
``--worse-only`` fails only on movement in the worse direction (metrics with no better
direction, such as p-values, still fail on any movement beyond the limit).

Default absolute tolerances (``DEFAULT_TOLERANCES``, from each metric's spec in
``clerc.evaluate.metric_specs``, as are the better directions) are sized for a seeded tiny CPU run
repeated on another machine: float reductions in a different order move AUROC of ~100
patients by a few thousandths and a median percentile by well under a point; the limits
sit an order of magnitude above that and well below any real regression of the harness.

Exit status: 0 when nothing failed, 1 on any failure, 2 when an input cannot be read.
``--update`` prints the comparison, then rewrites the baseline with the results and exits 0.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from clerc.evaluate.metric_specs import spec_or_default, tolerance_kinds
from clerc.evaluate.results import KEY_FIELDS, RECORD_FIELDS, index_records

__all__ = ["DEFAULT_TOLERANCES", "KEY_FIELDS", "RECORD_FIELDS", "Drift", "compare",
           "direction", "index_records", "metric_kind", "parse_tolerances", "print_report"]

#: Absolute tolerance per metric kind; ``default`` covers any other metric.
DEFAULT_TOLERANCES: dict[str, float] = tolerance_kinds()

Key = tuple[str | None, ...]


def metric_kind(metric: str) -> str:
    """The tolerance kind of a metric name: ``recall@5`` -> ``recall@k``, ``auroc_p_holm``
    -> ``p_value``; names without a kind of their own map to ``default``."""
    return spec_or_default(metric).kind


def direction(metric: str) -> int:
    """+1 when higher is better, -1 when lower is better, 0 when neither is."""
    return spec_or_default(metric).better


@dataclass(frozen=True)
class Drift:
    """The comparison of one record key. ``worse`` is None when no direction applies."""

    key: Key
    baseline: float | None
    result: float | None
    delta: float | None
    limit: str
    worse: bool | None
    failed: bool
    reason: str

    @property
    def metric(self) -> str:
        return str(self.key[-1])


def _compare_one(key: Key, base: dict, new: dict, tolerances: dict[str, float],
                 ci_mode: bool, worse_only: bool, allow_n_change: bool = False) -> Drift:
    drift = _compare_values(key, base, new, tolerances, ci_mode, worse_only)
    nb, nr = base["n"], new["n"]
    if nb == nr or allow_n_change:
        return drift
    return replace(drift, failed=True, reason=f"n changed {nb} → {nr}; {drift.reason}")


def _compare_values(key: Key, base: dict, new: dict, tolerances: dict[str, float],
                    ci_mode: bool, worse_only: bool) -> Drift:
    b, r = base["value"], new["value"]
    if b is None or r is None:
        failed = (b is None) != (r is None)
        reason = "became null" if r is None and failed else "stopped being null" if failed \
            else "null on both sides"
        return Drift(key, b, r, None, "-", None, failed, reason)
    delta = r - b
    sign = direction(str(key[-1]))
    worse = None if sign == 0 or delta == 0 else (delta * sign < 0)
    lo, hi = base["ci_low"], base["ci_high"]
    if ci_mode and lo is not None and hi is not None:
        outside = not (lo <= r <= hi)
        limit = f"CI [{lo:.4g}, {hi:.4g}]"
        reason = "outside baseline CI" if outside else "within CI"
    else:
        tol = tolerances.get(metric_kind(str(key[-1])), tolerances["default"])
        outside = abs(delta) > tol + 1e-12
        limit = f"±{tol:g}" + (" (no CI)" if ci_mode else "")
        reason = "beyond tolerance" if outside else "within tolerance"
    failed = outside and (not worse_only or worse is not False)
    if outside and not failed:
        reason += " (better; --worse-only)"
    return Drift(key, b, r, delta, limit, worse, failed, reason)


def compare(baseline: dict, results: dict, *, tolerances: dict[str, float] | None = None,
            ci_mode: bool = False, worse_only: bool = False,
            allow_n_change: bool = False) -> list[Drift]:
    """One ``Drift`` per key present on either side, in the baseline's order then new keys."""
    tol = {**tolerance_kinds(), **(tolerances or {})}
    base = index_records(baseline, "baseline")
    new = index_records(results, "results")
    out = []
    for key, rec in base.items():
        if key not in new:
            out.append(Drift(key, rec["value"], None, None, "-", None, True, "missing in results"))
        else:
            out.append(_compare_one(key, rec, new[key], tol, ci_mode, worse_only,
                                    allow_n_change))
    out.extend(Drift(key, None, rec["value"], None, "-", None, True, "missing in baseline")
               for key, rec in new.items() if key not in base)
    return out


def parse_tolerances(items: list[str]) -> dict[str, float]:
    """``["auroc=0.02", "mae=1"]`` -> ``{"auroc": 0.02, "mae": 1.0}``; names the bad item."""
    out = {}
    for item in items:
        kind, sep, value = item.partition("=")
        if not sep or kind not in DEFAULT_TOLERANCES:
            raise ValueError(f"--tolerance {item!r}: expected KIND=VALUE with KIND one of "
                             f"{', '.join(DEFAULT_TOLERANCES)}")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"--tolerance {item!r}: {value!r} is not a number") from None
        if not math.isfinite(number) or number < 0:
            raise ValueError(f"--tolerance {item!r}: expected a finite value >= 0")
        out[kind] = number
    return out


def _fmt(x: float | None) -> str:
    return "null" if x is None else f"{x:.4g}"


def _describe(key: Key) -> tuple[str, str]:
    table, task, setting, query, gallery, modality, label, _ = key
    where = f"{query}→{gallery}" if query or gallery else str(modality or "")
    if label and label != modality:
        where += f" (label {label})"
    return f"{table} {task} {setting}", where


def print_report(drifts: list[Drift], file=None) -> None:
    """A rich table of every record that moved or failed, then a one-line summary."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=file or sys.stdout, width=160)
    shown = [d for d in drifts if d.failed or (d.delta not in (None, 0.0))]
    failed = sum(d.failed for d in drifts)
    if shown:
        table = Table(title="Drift against baseline")
        for col in ("record", "modalities", "metric", "baseline", "result", "delta", "way",
                    "limit", "status"):
            table.add_column(col, justify="right" if col in ("baseline", "result", "delta")
                             else "left")
        for d in shown:
            way = "—" if d.worse is None else "worse" if d.worse else "better"
            delta = "" if d.delta is None else f"{d.delta:+.4g}"
            status = f"[red]FAIL[/red] {escape(d.reason)}" if d.failed else f"ok {d.reason}"
            base = "absent" if d.reason == "missing in baseline" else _fmt(d.baseline)
            result = "absent" if d.reason == "missing in results" else _fmt(d.result)
            cells = (*_describe(d.key), d.metric, base, result, delta, way, d.limit)
            table.add_row(*(escape(c) for c in cells), status)
        console.print(table)
    console.print(f"{len(drifts)} records compared, {len(shown)} moved or missing, "
                  f"{failed} failed", markup=False)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baseline", type=Path, required=True, help="baseline results.json")
    parser.add_argument("--results", type=Path, required=True, help="this run's results.json")
    parser.add_argument("--tolerance", action="append", default=[], metavar="KIND=VALUE",
                        help="absolute tolerance per metric kind; kinds: "
                             + ", ".join(f"{k} (default {v:g})"
                                         for k, v in DEFAULT_TOLERANCES.items()))
    parser.add_argument("--ci-mode", action="store_true",
                        help="fail when a value leaves the baseline's 95%% CI instead")
    parser.add_argument("--worse-only", action="store_true",
                        help="fail only on movement in the worse direction")
    parser.add_argument("--allow-n-change", action="store_true",
                        help="do not fail a record whose n (patients scored) changed")
    parser.add_argument("--update", action="store_true",
                        help="rewrite the baseline with these results (after printing drift)")


def _load(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{what} {path} does not exist") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} {path} is not valid JSON: {err}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{what} {path} is not a text (JSON) file") from None
    except IsADirectoryError:
        raise ValueError(f"{what} {path} is a directory, not a results.json") from None


def run(args: argparse.Namespace) -> int:
    results = _load(args.results, "results")
    baseline = {"records": []} if args.update and not args.baseline.exists() \
        else _load(args.baseline, "baseline")
    drifts = compare(baseline, results, tolerances=parse_tolerances(args.tolerance),
                     ci_mode=args.ci_mode, worse_only=args.worse_only,
                     allow_n_change=args.allow_n_change)
    print_report(drifts)
    if args.update:
        args.baseline.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.results, args.baseline)
        print(f"baseline {args.baseline} rewritten from {args.results} "
              f"({len(results['records'])} records)")
        return 0
    return 1 if any(d.failed for d in drifts) else 0
