"""Per-record drift limits learned from reruns, stored with a gate baseline.

A seeded training run is not bit-reproducible across machines: another thread count, BLAS
or GPU changes the order of float reductions, and training amplifies that into real
movement of every metric. Fixed tolerances are then either too tight (CI fails on a new
machine) or too loose (a regression hides in them). Calibration measures the movement
instead: the same job rerun under other float orders (thread counts, tiny weight
perturbations, GPU non-determinism) gives, for each record, its spread around the
baseline, and the record's limit becomes

    limit = max(floor[kind], two steps of the metric, factor x largest |rerun - baseline|)

stored in the baseline under ``"gate"``. Records that cannot say anything are marked,
not silently gated:

- ``too_small``: fewer than ``min_n`` patients scored;
- ``too_noisy``: the calibrated limit spans ``noisy_fraction`` or more of the metric's
  range (e.g. AUROC +-0.25): a drift the gate would catch there is no regression test.

``clerc gate`` reports both kinds by name and gates every other record at its limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from clerc.evaluate.results import KEY_FIELDS, index_records
from clerc.gate import Key, metric_kind

#: Smallest limit per metric kind, whatever the reruns showed (a record can move by this
#: on a machine the calibration did not see without signalling a regression).
DEFAULT_FLOORS: dict[str, float] = {
    "auroc": 0.02,
    "r2": 0.03,
    "mae": 0.5,
    "median_percentile": 1.0,
    "mean_percentile": 1.0,
    "recall@k": 0.02,
    "p_value": 0.05,
    "auprc": 0.02,
    "brier": 0.02,
    "ece": 0.02,
    "mrr": 0.02,
    "default": 0.02,
}
#: Width of each metric kind's range (for ``too_noisy``); ``None`` = unbounded, judged
#: against the baseline value instead (a limit of a quarter of an MAE says nothing).
RANGES: dict[str, float | None] = {
    "auroc": 1.0,
    "r2": 1.0,
    "mae": None,
    "median_percentile": 100.0,
    "mean_percentile": 100.0,
    "recall@k": 1.0,
    "p_value": 1.0,
    "auprc": 1.0,
    "brier": 1.0,
    "ece": 1.0,
    "mrr": 1.0,
    "default": None,
}
FACTOR = 3.0
MIN_N = 30
NOISY_FRACTION = 0.25


@dataclass(frozen=True)
class CalibrationSettings:
    """How reruns become limits (stored with the limits, so a baseline says how it was made)."""

    factor: float = FACTOR
    min_n: int = MIN_N
    noisy_fraction: float = NOISY_FRACTION

    def __post_init__(self) -> None:
        if not (math.isfinite(self.factor) and self.factor >= 1):
            raise ValueError(f"factor: expected a number >= 1, got {self.factor!r}")
        if not isinstance(self.min_n, int) or self.min_n < 1:
            raise ValueError(f"min_n: expected an integer >= 1, got {self.min_n!r}")
        if not 0 < self.noisy_fraction <= 1:
            raise ValueError(
                f"noisy_fraction: expected a number in (0, 1], got {self.noisy_fraction!r}"
            )


def key_string(key: Key, fields: list[str] | tuple[str, ...] | None = None) -> str:
    """A record key (``KEY_FIELDS`` order) as one string (JSON object keys): fields joined
    by ``|``, None empty. ``fields``: the key fields a stored calibration was written with
    (older files lack subgroup and train_fraction), in their order."""
    if fields is not None and tuple(fields) != KEY_FIELDS:
        key = tuple(key[KEY_FIELDS.index(f)] if f in KEY_FIELDS else None for f in fields)
    return "|".join("" if v is None else str(v) for v in key)


def _deviation(base: dict, runs: list[dict | None]) -> tuple[float | None, str | None]:
    """Largest |rerun - baseline| of one record, or a reason it has none."""
    if base["value"] is None:
        return None, "null in the baseline"
    devs = []
    for i, rec in enumerate(runs):
        if rec is None:
            return None, f"missing in rerun {i + 1}"
        if rec["value"] is None:
            return None, f"null in rerun {i + 1}"
        devs.append(abs(float(rec["value"]) - float(base["value"])))
    return max(devs), None


def record_limit(
    key: Key,
    base: dict,
    runs: list[dict | None],
    settings: CalibrationSettings,
    floors: dict[str, float],
) -> dict[str, Any]:
    """The stored limit entry of one record (see the module docstring)."""
    kind = metric_kind(str(key[KEY_FIELDS.index("metric")]))
    floor = floors.get(kind, floors["default"])
    n = base.get("n") or 0
    if n < settings.min_n:
        return {"status": "too_small", "reason": f"n={n} < {settings.min_n} patients"}
    spread, why = _deviation(base, [r for r in runs])
    if spread is None:
        return {"status": "ungated", "reason": why}
    return classify(kind, float(base["value"]), spread, settings, max(floor, resolution(kind, n)))


def resolution(kind: str, n: int) -> float:
    """Two steps of a metric that moves in steps with ``n`` patients (a retrieval
    percentile by 100 / (n - 1) per rank, recall@k by 1 / n): no limit is tighter, since a
    rerun that has not moved a record yet may move it by one step elsewhere."""
    if kind in ("median_percentile", "mean_percentile"):
        return 2 * 100.0 / max(n - 1, 1)
    if kind == "recall@k":
        return 2.0 / max(n, 1)
    return 0.0


def classify(
    kind: str, value: float, spread: float, settings: CalibrationSettings, floor: float
) -> dict[str, Any]:
    """``gated`` with limit = max(floor, factor x spread), or ``too_noisy`` when that limit
    spans ``noisy_fraction`` of the kind's range (of the value itself when unbounded)."""
    limit = max(floor, settings.factor * spread)
    span = RANGES.get(kind)
    scale, what = (span, "its range") if span is not None else (abs(value), "its value")
    if limit >= settings.noisy_fraction * scale:
        return {
            "status": "too_noisy",
            "reason": f"reruns moved it by {spread:.3g}; a limit "
            f"of {limit:.3g} is over {settings.noisy_fraction:.0%} of {what}",
            "spread": spread,
            "limit": limit,
        }
    return {"status": "gated", "limit": limit, "spread": spread, "floor": floor}


def calibrate(
    baseline: dict,
    reruns: list[dict],
    *,
    settings: CalibrationSettings | None = None,
    floors: dict[str, float] | None = None,
    description: str = "",
) -> dict[str, Any]:
    """The ``"gate"`` block for ``baseline`` from ``reruns`` (results documents of the
    same job under other float orders). Needs at least two reruns."""
    settings = settings or CalibrationSettings()
    floors = {**DEFAULT_FLOORS, **(floors or {})}
    if len(reruns) < 2:
        raise ValueError(f"calibration needs at least 2 reruns, got {len(reruns)}")
    base = index_records(baseline, "baseline")
    runs = [index_records(doc, f"rerun {i + 1}") for i, doc in enumerate(reruns)]
    limits = {
        key_string(k): record_limit(k, rec, [r.get(k) for r in runs], settings, floors)
        for k, rec in base.items()
    }
    return {
        "reruns": len(reruns),
        "description": description,
        "factor": settings.factor,
        "min_n": settings.min_n,
        "noisy_fraction": settings.noisy_fraction,
        "floors": floors,
        "key_fields": list(KEY_FIELDS),
        "limits": limits,
    }


def detectable(gate_block: dict[str, Any]) -> dict[str, dict[str, float | int]]:
    """Per metric kind: how many records are gated and the smallest / median / largest
    limit (the smallest drift of that kind the gate is sure to catch), plus how many are
    too small or too noisy to gate."""
    by_kind: dict[str, dict[str, Any]] = {}
    for ks, entry in gate_block["limits"].items():
        fields = gate_block.get("key_fields") or KEY_FIELDS
        kind = metric_kind(ks.split("|")[list(fields).index("metric")])
        row = by_kind.setdefault(kind, {"limits": [], "too_small": 0, "too_noisy": 0, "ungated": 0})
        status = entry["status"]
        if status == "gated":
            row["limits"].append(entry["limit"])
        else:
            row[status] += 1
    out: dict[str, dict[str, float | int]] = {}
    for kind, row in sorted(by_kind.items()):
        lim = sorted(row["limits"])
        out[kind] = {
            "gated": len(lim),
            "too_small": row["too_small"],
            "too_noisy": row["too_noisy"],
            "ungated": row["ungated"],
            "smallest": lim[0] if lim else math.nan,
            "median": lim[len(lim) // 2] if lim else math.nan,
            "largest": lim[-1] if lim else math.nan,
        }
    return out
