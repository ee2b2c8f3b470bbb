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

Limits, in order of precedence:

1. **Calibrated** (``clerc gate --calibrate RERUN.json ...`` wrote them into the baseline's
   ``"gate"`` block; see :mod:`clerc.calibration`): each record's own limit, measured from
   reruns of the same job under other float orders. Records calibrated as ``too_small`` or
   ``too_noisy`` are listed as such and not gated on their value (a record that vanishes,
   turns null or changes ``n`` still fails).
2. **Fixed** tolerances per metric kind (``DEFAULT_TOLERANCES``, ``--tolerance``) for
   records the calibration does not cover, or every record of an uncalibrated baseline.
   They are generic guesses, not measurements: calibrate for a gate that means something.
   Each metric's fixed tolerance and better direction are its spec's
   (``clerc.evaluate.metric_specs``).

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

from clerc.errors import UserError
from clerc.evaluate.metric_specs import direction, spec_or_default, tolerance_kinds
from clerc.evaluate.results import KEY_FIELDS, OPTIONAL_FIELDS, RECORD_FIELDS, index_records

__all__ = [
    "DEFAULT_TOLERANCES",
    "KEY_FIELDS",
    "OPTIONAL_KEY_FIELDS",
    "RECORD_FIELDS",
    "Drift",
    "compare",
    "direction",
    "index_records",
    "metric_kind",
    "parse_tolerances",
    "print_report",
]

#: Key fields a record may lack (older results files): read as null.
OPTIONAL_KEY_FIELDS = OPTIONAL_FIELDS
#: Absolute tolerance per metric kind; ``default`` covers any other metric.
DEFAULT_TOLERANCES: dict[str, float] = tolerance_kinds()

Key = tuple[str | float | None, ...]
_METRIC = KEY_FIELDS.index("metric")


def metric_kind(metric: str) -> str:
    """The tolerance kind of a metric name: ``recall@5`` -> ``recall@k``, ``auroc_p_holm``
    -> ``p_value``; names without a kind of their own map to ``default``."""
    return spec_or_default(metric).kind


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
        return str(self.key[_METRIC])


def _compare_one(
    key: Key,
    base: dict,
    new: dict,
    tolerances: dict[str, float],
    ci_mode: bool,
    worse_only: bool,
    allow_n_change: bool = False,
    calibrated: dict | None = None,
) -> Drift:
    drift = _compare_values(key, base, new, tolerances, ci_mode, worse_only, calibrated)
    nb, nr = base["n"], new["n"]
    if nb == nr or allow_n_change:
        return drift
    return replace(drift, failed=True, reason=f"n changed {nb} → {nr}; {drift.reason}")


def _calibrated_limit(entry: dict, reruns: int) -> str:
    if entry["limit"] > entry["floor"]:
        return f"±{entry['limit']:.3g} (calibrated: {reruns} reruns moved it {entry['spread']:.3g})"
    return (
        f"±{entry['limit']:.3g} (calibration floor; {reruns} reruns moved it {entry['spread']:.3g})"
    )


def _compare_values(
    key: Key,
    base: dict,
    new: dict,
    tolerances: dict[str, float],
    ci_mode: bool,
    worse_only: bool,
    calibrated: dict | None = None,
) -> Drift:
    b, r = base["value"], new["value"]
    if b is None or r is None:
        failed = (b is None) != (r is None)
        reason = (
            "became null"
            if r is None and failed
            else "stopped being null"
            if failed
            else "null on both sides"
        )
        return Drift(key, b, r, None, "-", None, failed, reason)
    delta = r - b
    sign = direction(str(key[_METRIC]))
    worse = None if sign == 0 or delta == 0 else (delta * sign < 0)
    lo, hi = base["ci_low"], base["ci_high"]
    entry = (
        None
        if calibrated is None
        else calibrated["limits"].get(_key_string(key, calibrated.get("key_fields")))
    )
    if calibrated is not None and entry is not None and not ci_mode:
        if entry["status"] != "gated":
            return Drift(
                key,
                b,
                r,
                delta,
                "-",
                worse,
                False,
                f"not gated: {entry['status'].replace('_', ' ')} ({entry['reason']})",
            )
        outside = abs(delta) > entry["limit"] + 1e-12
        limit = _calibrated_limit(entry, calibrated["reruns"])
        reason = "beyond calibrated limit" if outside else "within calibrated limit"
    elif ci_mode and lo is not None and hi is not None:
        outside = not (lo <= r <= hi)
        limit = f"CI [{lo:.4g}, {hi:.4g}]"
        reason = "outside baseline CI" if outside else "within CI"
    else:
        kind = metric_kind(str(key[_METRIC]))
        tol = tolerances.get(kind, tolerances["default"])
        outside = abs(delta) > tol + 1e-12
        limit = f"±{tol:g} (fixed: {kind})" + (" (no CI)" if ci_mode else "")
        reason = "beyond tolerance" if outside else "within tolerance"
    failed = outside and (not worse_only or worse is not False)
    if outside and not failed:
        reason += " (better; --worse-only)"
    return Drift(key, b, r, delta, limit, worse, failed, reason)


def compare(
    baseline: dict,
    results: dict,
    *,
    tolerances: dict[str, float] | None = None,
    ci_mode: bool = False,
    worse_only: bool = False,
    allow_n_change: bool = False,
) -> list[Drift]:
    """One ``Drift`` per key present on either side, in the baseline's order then new keys."""
    tol = {**tolerance_kinds(), **(tolerances or {})}
    base = index_records(baseline, "baseline")
    new = index_records(results, "results")
    calibrated = baseline.get("gate") if isinstance(baseline, dict) else None
    out = []
    for key, rec in base.items():
        if key not in new:
            out.append(Drift(key, rec["value"], None, None, "-", None, True, "missing in results"))
        else:
            out.append(
                _compare_one(
                    key, rec, new[key], tol, ci_mode, worse_only, allow_n_change, calibrated
                )
            )
    out.extend(
        Drift(key, None, rec["value"], None, "-", None, True, "missing in baseline")
        for key, rec in new.items()
        if key not in base
    )
    return out


def parse_tolerances(items: list[str]) -> dict[str, float]:
    """``["auroc=0.02", "mae=1"]`` -> ``{"auroc": 0.02, "mae": 1.0}``; ``all=1e-6`` sets
    every kind (later items override it); names the bad item."""
    out = {}
    for item in items:
        kind, sep, value = item.partition("=")
        if not sep or (kind not in DEFAULT_TOLERANCES and kind != "all"):
            raise ValueError(
                f"--tolerance {item!r}: expected KIND=VALUE with KIND one of "
                f"all, {', '.join(DEFAULT_TOLERANCES)}"
            )
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"--tolerance {item!r}: {value!r} is not a number") from None
        if not math.isfinite(number) or number < 0:
            raise ValueError(f"--tolerance {item!r}: expected a finite value >= 0")
        out.update(dict.fromkeys(DEFAULT_TOLERANCES, number) if kind == "all" else {kind: number})
    return out


def _key_string(key: Key, fields: list[str] | None = None) -> str:
    from clerc.calibration import key_string

    return key_string(key, fields)


def _fmt(x: float | None) -> str:
    return "null" if x is None else f"{x:.4g}"


def _describe(key: Key) -> tuple[str, str]:
    table, task, setting, query, gallery, modality, label, _, subgroup, fraction = key
    where = f"{query}→{gallery}" if query or gallery else str(modality or "")
    if label and label != modality:
        where += f" (label {label})"
    if subgroup:
        where += f" [{subgroup}]"
    if fraction is not None:
        where += f" [{float(fraction):.0%} of train]"
    return f"{table} {task} {setting}", where


def print_report(drifts: list[Drift], file=None) -> None:
    """A rich table of every record that moved or failed, then a one-line summary."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=file or sys.stdout, width=160)
    shown = [d for d in drifts if d.failed or (d.delta not in (None, 0.0))]
    failed = sum(d.failed for d in drifts)
    ungated = [d for d in drifts if d.reason.startswith("not gated")]
    if shown:
        table = Table(title="Drift against baseline")
        for col in (
            "record",
            "modalities",
            "metric",
            "baseline",
            "result",
            "delta",
            "way",
            "limit",
            "status",
        ):
            table.add_column(
                col, justify="right" if col in ("baseline", "result", "delta") else "left"
            )
        for d in shown:
            way = "—" if d.worse is None else "worse" if d.worse else "better"
            delta = "" if d.delta is None else f"{d.delta:+.4g}"
            status = f"[red]FAIL[/red] {escape(d.reason)}" if d.failed else f"ok {d.reason}"
            base = "absent" if d.reason == "missing in baseline" else _fmt(d.baseline)
            result = "absent" if d.reason == "missing in results" else _fmt(d.result)
            cells = (*_describe(d.key), d.metric, base, result, delta, way, d.limit)
            table.add_row(*(escape(c) for c in cells), status)
        console.print(table)
    console.print(
        f"{len(drifts)} records compared, {len(shown)} moved or missing, {failed} failed",
        markup=False,
    )
    if ungated:
        kinds: dict[str, int] = {}
        for d in ungated:
            what = d.reason.split(" (")[0].removeprefix("not gated: ")
            kinds[what] = kinds.get(what, 0) + 1
        console.print(
            f"{len(ungated)} records not gated on their value (calibration: "
            + ", ".join(f"{v} {k}" for k, v in sorted(kinds.items()))
            + ")",
            markup=False,
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baseline", type=Path, required=True, help="baseline results.json")
    parser.add_argument(
        "--results", type=Path, default=None, help="this run's results.json (not with --calibrate)"
    )
    parser.add_argument(
        "--calibrate",
        type=Path,
        nargs="+",
        default=None,
        metavar="RERUN",
        help="learn per-record limits from reruns of the baseline's job under "
        "other float orders and write them into the baseline",
    )
    parser.add_argument(
        "--factor",
        type=float,
        default=None,
        help="with --calibrate: limit = factor x largest rerun deviation (default 3)",
    )
    parser.add_argument(
        "--min-n",
        type=int,
        default=None,
        help="with --calibrate: records on fewer patients are too small to gate (default 30)",
    )
    parser.add_argument(
        "--tolerance",
        action="append",
        default=[],
        metavar="KIND=VALUE",
        help="absolute tolerance per metric kind (all=X sets every kind); "
        "kinds: " + ", ".join(f"{k} (default {v:g})" for k, v in DEFAULT_TOLERANCES.items()),
    )
    parser.add_argument(
        "--ci-mode",
        action="store_true",
        help="fail when a value leaves the baseline's 95%% CI instead",
    )
    parser.add_argument(
        "--worse-only", action="store_true", help="fail only on movement in the worse direction"
    )
    parser.add_argument(
        "--allow-n-change",
        action="store_true",
        help="do not fail a record whose n (patients scored) changed",
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="rewrite the baseline with these results (after printing drift)",
    )


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


def run_calibrate(args: argparse.Namespace) -> int:
    """``--calibrate``: write the ``"gate"`` block into the baseline; print what it can catch."""
    from clerc.calibration import CalibrationSettings, calibrate, detectable

    baseline = _load(args.baseline, "baseline")
    reruns = [_load(p, "rerun") for p in args.calibrate]
    kw = {k: v for k, v in (("factor", args.factor), ("min_n", args.min_n)) if v is not None}
    block = calibrate(
        baseline,
        reruns,
        settings=CalibrationSettings(**kw),
        description=", ".join(str(p) for p in args.calibrate),
    )
    baseline["gate"] = block
    args.baseline.write_text(json.dumps(baseline, indent=1) + "\n")
    print(
        f"baseline {args.baseline}: limits for {len(block['limits'])} records from "
        f"{len(reruns)} reruns (factor {block['factor']:g}, min n {block['min_n']})"
    )
    print(
        f"{'metric kind':<18} {'gated':>5} {'too small':>9} {'too noisy':>9} "
        f"{'smallest':>9} {'median':>9} {'largest':>9}  (limits: drifts the gate catches)"
    )
    for kind, row in detectable(block).items():
        print(
            f"{kind:<18} {row['gated']:>5} {row['too_small']:>9} {row['too_noisy']:>9} "
            f"{row['smallest']:>9.3g} {row['median']:>9.3g} {row['largest']:>9.3g}"
        )
    return 0


def run(args: argparse.Namespace) -> int:
    if args.calibrate:
        return run_calibrate(args)
    if args.results is None:
        raise UserError("give --results RESULTS.json (or --calibrate RERUN.json ...)")
    results = _load(args.results, "results")
    baseline = (
        {"records": []}
        if args.update and not args.baseline.exists()
        else _load(args.baseline, "baseline")
    )
    drifts = compare(
        baseline,
        results,
        tolerances=parse_tolerances(args.tolerance),
        ci_mode=args.ci_mode,
        worse_only=args.worse_only,
        allow_n_change=args.allow_n_change,
    )
    print_report(drifts)
    if args.update:
        args.baseline.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.results, args.baseline)
        print(
            f"baseline {args.baseline} rewritten from {args.results} "
            f"({len(results['records'])} records)"
        )
        if "gate" in baseline:
            print("its calibrated limits were dropped: recalibrate with --calibrate")
        return 0
    return 1 if any(d.failed for d in drifts) else 0
