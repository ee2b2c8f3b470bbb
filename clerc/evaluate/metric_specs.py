"""One spec per metric: the one place that says what a metric is.

A ``MetricSpec`` holds the point function (the metric on all rows), the bootstrap
scorer factory (``clerc.evaluate.scorers``), the better direction, the drift gate's
default tolerance, the report's label and decimals. Tasks, the bootstrap, the gate and
the report all read it here.

Adding a metric: write its point function (``metrics.py``) and scorer factory
(``scorers.py``), register a ``MetricSpec`` below, and list it under the task kinds that
report it (``KIND_METRICS``). ``recall@K`` is a family (any integer K >= 1),
``<metric>_p_holm`` the Holm-adjusted p-value of a paired comparison of ``<metric>``,
``<metric>_gap`` a subgroup gap and ``<metric>_sd`` a spread over label-efficiency draws.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from clerc.evaluate import metrics, scorers
from clerc.evaluate.scorers import BinaryCore, Cores, Scorer
from clerc.registry import Registry, UnknownNameError

#: ``(y_true or None, y_score) -> value``; raises ValueError when undefined.
PointFn = Callable[[np.ndarray | None, np.ndarray], float]
#: ``(codes, n_patients, y_true or None, y_score) -> Scorer`` (see ``scorers``).
ScorerFactory = Callable[[np.ndarray, int, np.ndarray | None, np.ndarray], Scorer]
Direction = Literal[1, -1, 0]


@dataclass(frozen=True)
class MetricSpec:
    """What one metric is.

    ``better``: +1 higher is better, -1 lower is better, 0 neither (p-values).
    ``kind``: the gate's tolerance key (``--tolerance KIND=VALUE``); a family shares one.
    ``point``/``scorer`` are None for metrics only derived by other code (p-values).
    """

    name: str
    label: str
    better: Direction
    tolerance: float
    decimals: int
    needs_y_true: bool = False
    point: PointFn | None = None
    scorer: ScorerFactory | None = None
    kind: str = ""
    #: AUROC/AUPRC: the scorer from a binary core (``scorers.binary_core``) that scorers of
    #: the same rows share (the bootstrap passes its ``cores``/``key`` to ``scorer_of``).
    core: Callable[[BinaryCore], Scorer] | None = None

    def __post_init__(self) -> None:
        if not self.kind:
            object.__setattr__(self, "kind", self.name)

    def format(self, value: float, signed: bool = False) -> str:
        """``value`` at the report's precision (ASCII; the report swaps in a true minus)."""
        return f"{value:+.{self.decimals}f}" if signed else f"{value:.{self.decimals}f}"


def _truth(name: str, y_true: np.ndarray | None) -> np.ndarray:
    if y_true is None:
        raise ValueError(f"metric {name!r} needs y_true")
    return y_true


def _scores(name: str, y_score: np.ndarray) -> np.ndarray:
    s = np.asarray(y_score, dtype=float)
    if s.size == 0:
        raise ValueError(f"{name} of zero rows is undefined")
    return s


def _with_truth(name: str, fn: Callable[[np.ndarray, np.ndarray], float]) -> PointFn:
    return lambda y, s: fn(_truth(name, y), s)


METRICS: Registry[MetricSpec] = Registry("metric")

for _spec in (
    MetricSpec(
        "r2",
        "R²",
        1,
        0.08,
        3,
        True,
        _with_truth("r2", metrics.r2),
        lambda c, n, y, s: scorers.r2_scorer(c, n, _truth("r2", y), s),
    ),
    MetricSpec(
        "mae",
        "MAE",
        -1,
        3.0,
        1,
        True,
        _with_truth("mae", metrics.mae),
        lambda c, n, y, s: scorers.mean_scorer(c, n, np.abs(_truth("mae", y) - s)),
    ),
    MetricSpec(
        "auroc",
        "AUROC",
        1,
        0.05,
        3,
        True,
        _with_truth("auroc", metrics.auroc),
        lambda c, n, y, s: scorers.auroc_scorer(c, n, _truth("auroc", y), s),
        core=scorers.auroc_from_core,
    ),
    MetricSpec(
        "auprc",
        "AUPRC",
        1,
        0.06,
        3,
        True,
        _with_truth("auprc", metrics.auprc),
        lambda c, n, y, s: scorers.auprc_scorer(c, n, _truth("auprc", y), s),
        core=scorers.auprc_from_core,
    ),
    MetricSpec(
        "brier",
        "Brier score",
        -1,
        0.03,
        3,
        True,
        _with_truth("brier", metrics.brier),
        lambda c, n, y, s: scorers.brier_scorer(c, n, _truth("brier", y), s),
    ),
    MetricSpec(
        "ece",
        "ECE",
        -1,
        0.05,
        3,
        True,
        _with_truth("ece", metrics.ece),
        lambda c, n, y, s: scorers.ece_scorer(c, n, _truth("ece", y), s),
    ),
    MetricSpec(
        "median_percentile",
        "Median percentile",
        -1,
        5.0,
        1,
        False,
        lambda y, s: float(np.median(_scores("median_percentile", s))),
        lambda c, n, y, s: scorers.median_scorer(c, n, s),
    ),
    MetricSpec(
        "mean_percentile",
        "Mean percentile",
        -1,
        5.0,
        1,
        False,
        lambda y, s: float(np.mean(_scores("mean_percentile", s))),
        lambda c, n, y, s: scorers.mean_scorer(c, n, s),
    ),
    # plain statistics of y_score (the bootstrap's generic "median" and "mean")
    MetricSpec(
        "median",
        "Median",
        0,
        0.05,
        3,
        False,
        lambda y, s: float(np.median(_scores("median", s))),
        lambda c, n, y, s: scorers.median_scorer(c, n, s),
        kind="default",
    ),
    MetricSpec(
        "mean",
        "Mean",
        0,
        0.05,
        3,
        False,
        lambda y, s: float(np.mean(_scores("mean", s))),
        lambda c, n, y, s: scorers.mean_scorer(c, n, s),
        kind="default",
    ),
    # y_score holds 0-based ranks
    MetricSpec(
        "mrr",
        "MRR",
        1,
        0.08,
        3,
        False,
        lambda y, s: metrics.mean_reciprocal_rank(_scores("mrr", s)),
        lambda c, n, y, s: scorers.mrr_scorer(c, n, s),
    ),
):
    METRICS.add(_spec.name, _spec)

#: Metrics reported per kind of predictive task (``TaskDef.kind``), in report order.
KIND_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("auroc", "auprc"),
    "regression": ("r2", "mae"),
}
#: Calibration metrics added for predictions that are probabilities (binary probes).
PROBABILITY_METRICS: tuple[str, ...] = ("brier", "ece")
#: Table 3's retrieval metrics, in report order.
RETRIEVAL_METRICS: tuple[str, ...] = (
    "median_percentile",
    "mean_percentile",
    "recall@1",
    "recall@5",
    "recall@10",
    "mrr",
)
#: Suffixes of derived metrics in their base metric's units and precision: a subgroup gap
#: (lower is better) and the spread over label-efficiency draws (no direction).
DERIVED_SUFFIXES: dict[str, tuple[str, Direction]] = {"_gap": (" gap", -1), "_sd": (" SD", 0)}

#: ``recall@K``: share of queries whose match ranks in the top K (scores are 0-based ranks).
RECALL = MetricSpec("recall@k", "Recall@K", 1, 0.08, 3, kind="recall@k")
#: ``<metric>_p_holm``: Holm-adjusted p-value of CLERC minus supervised.
P_VALUE = MetricSpec("p_value", "p (Holm)", 0, 0.2, 3, kind="p_value")
#: Any other metric name: no direction, the gate's default tolerance.
DEFAULT = MetricSpec("default", "", 0, 0.05, 3, kind="default")


def _recall(k: int) -> MetricSpec:
    return replace(
        RECALL,
        name=f"recall@{k}",
        label=f"Recall@{k}",
        point=lambda y, s: metrics.recall_at_k(_scores(f"recall@{k}", s), k),
        scorer=lambda c, n, y, s: scorers.mean_scorer(c, n, (s < k).astype(float)),
    )


def metric_spec(name: str) -> MetricSpec:
    """The spec of a metric name (``recall@5`` and ``auroc_p_holm`` included).

    Unknown names raise ``UnknownNameError`` with close matches.
    """
    if name in METRICS:
        return METRICS.get(name)
    for suffix, (label, better) in DERIVED_SUFFIXES.items():
        if name.endswith(suffix) and len(name) > len(suffix):
            base = metric_spec(name.removesuffix(suffix))
            return replace(
                base,
                name=name,
                label=base.label + label,
                better=better,
                point=None,
                scorer=None,
                core=None,
            )
    match = re.fullmatch(r"recall@(\d+)", name)
    if match and int(match.group(1)) >= 1:
        return _recall(int(match.group(1)))
    if name.endswith("_p_holm") or name in ("p", "p_value"):
        return replace(P_VALUE, name=name)
    return METRICS.get(name)


def spec_or_default(name: str) -> MetricSpec:
    """``metric_spec(name)``, or ``DEFAULT`` (named ``name``) for a metric not known here:
    the gate and the report still compare and show records of metrics added elsewhere."""
    try:
        return metric_spec(name)
    except UnknownNameError:
        return replace(DEFAULT, name=name, label=name)


def direction(name: str) -> int:
    """+1 when higher is better, -1 when lower is better, 0 when neither is (or unknown)."""
    return spec_or_default(name).better


def tolerance_kinds() -> dict[str, float]:
    """The gate's default tolerance per kind (``--tolerance KIND=VALUE``), ``default`` last."""
    out = {s.kind: s.tolerance for _, s in METRICS.items() if s.kind != "default"}
    out.update(
        {
            RECALL.kind: RECALL.tolerance,
            P_VALUE.kind: P_VALUE.tolerance,
            DEFAULT.kind: DEFAULT.tolerance,
        }
    )
    return out


def metric_order() -> list[str]:
    """Metric names in the report's order (registration order, then the retrieval ones)."""
    return list(
        dict.fromkeys(
            [*(n for n in METRICS.names() if n not in RETRIEVAL_METRICS), *RETRIEVAL_METRICS]
        )
    )


def scorer_of(
    spec: MetricSpec,
    codes: np.ndarray,
    n_patients: int,
    y_true: np.ndarray | None,
    y_score: np.ndarray,
    cores: Cores | None = None,
    key: object = None,
) -> Scorer:
    """The bootstrap scorer of ``spec`` on these rows. AUROC and AUPRC scorers made with the
    same ``cores`` dict and ``key`` (same rows, y_true and scores) share their block
    products (``scorers.shared_core``)."""
    if spec.core is not None and cores is not None and key is not None:
        core = scorers.shared_core(
            codes, n_patients, _truth(spec.name, y_true), y_score, cores, key, spec.name
        )
        return spec.core(core)
    if spec.scorer is None:
        raise ValueError(f"metric {spec.name!r} has no bootstrap scorer")
    return spec.scorer(codes, n_patients, y_true, y_score)
