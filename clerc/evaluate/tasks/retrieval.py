"""Table 3: cross-modal retrieval for every ordered pair of distinct modalities.

The scored unit is the study, as in Table 4: a report describes a study, and an
angiography study's films each show part of it (the left and the right coronary system).
A study's vector is the mean of its samples' unit-length embeddings, so its score against
another study is the mean cosine over their samples' pairs, as Table 4 averages a study's
predictions; a one-sample study keeps its embedding bit for bit. For a pair (query,
gallery): test patients with both modalities; per patient the pair of studies closest in
time (a study's time is its first sample's; no gap limit, as in the paper); every query
ranks all matched gallery studies by that score. Metrics: median and mean percentile of the
true match (0 = retrieved first), recall@1/5/10, mean reciprocal rank (mean of
1 / (rank + 1)); each with a patient-level bootstrap
interval; ``n`` = patients. Ties count against the model (see ``metrics.retrieval_ranks``).
"""

from __future__ import annotations

from itertools import permutations

import numpy as np
import pandas as pd

from clerc.evaluate import metrics
from clerc.evaluate.matching import closest_pairs
from clerc.evaluate.metric_specs import RETRIEVAL_METRICS
from clerc.evaluate.registry import Context, task
from clerc.evaluate.results import TaskResult, undefined
from clerc.evaluate.tasks.common import base, bootstrap_records, cell_predictions, studies
from clerc.modalities import MODALITY_NAMES

#: The scores each retrieval metric reads: percentiles of the match, or its 0-based rank.
SCORES: dict[str, str] = {"median_percentile": "percentile", "mean_percentile": "percentile"}
SPLIT = "test"


def study_units(samples: pd.DataFrame, modality: str, split: str) -> pd.DataFrame:
    """Table 3's scored units of one modality and split: its studies (see the module doc).

    One row per sample of a study with a known time: patient_id, time (the study's first
    acquisition), row (the sample's position in ``samples``) and unit (the study's number,
    0..U-1 in order of first appearance). A sample without a study is its own study.
    """
    s = studies(samples, modality, split)
    s = s[s["study_time"].notna()]
    return pd.DataFrame(
        {
            "patient_id": s["patient_id"].astype(str).to_numpy(),
            "time": s["study_time"].to_numpy(),
            "row": s.index.to_numpy(dtype=np.int64),
            "unit": pd.factorize(s["study_id"])[0].astype(np.int64),
        }
    )


def unit_side(units: pd.DataFrame, idx: str = "unit") -> pd.DataFrame:
    """One row per unit for `closest_pairs`: patient_id, time, and ``idx`` = the unit's
    number, or with ``idx="row"`` its first sample's row."""
    first = units.drop_duplicates("unit")
    return pd.DataFrame(
        {
            "patient_id": first["patient_id"].to_numpy(),
            "time": first["time"].to_numpy(),
            "idx": first[idx].to_numpy(dtype=np.int64),
        }
    )


def unit_vectors(vectors: np.ndarray, units: pd.DataFrame) -> np.ndarray:
    """(U, D) float32: each unit's mean of its samples' rows of ``vectors``."""
    if units.empty:
        return np.empty((0, vectors.shape[1]), dtype=np.float32)
    order = np.argsort(units["unit"].to_numpy(), kind="stable")
    codes = units["unit"].to_numpy()[order]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    sums = np.add.reduceat(vectors[units["row"].to_numpy()[order]], starts, axis=0)
    counts = np.diff(np.r_[starts, len(codes)])
    return (sums / counts[:, None]).astype(np.float32)


def _test_studies(ctx: Context, modality: str) -> tuple[pd.DataFrame, np.ndarray]:
    """A modality's test studies for `closest_pairs` and their vectors, once per context
    (each modality takes part in 14 of the 56 pairs)."""

    def compute() -> tuple[pd.DataFrame, np.ndarray]:
        units = study_units(ctx.embeddings.samples, modality, SPLIT)
        return unit_side(units), unit_vectors(ctx.embeddings.vectors, units)

    return ctx.memo.get(("table3 studies", modality), (ctx.embeddings,), compute)


def pair_records(ctx: Context, query: str, gallery: str) -> TaskResult:
    """The retrieval records of one ordered modality pair."""
    b = base("table3", "retrieval", "retrieval", query=query, gallery=gallery)
    (q_side, q_vectors), (g_side, g_vectors) = (_test_studies(ctx, m) for m in (query, gallery))
    pairs = closest_pairs(q_side, g_side, None)
    n = len(pairs)
    if n < 2:
        note = f"{n} test patient(s) have both {query} and {gallery}; need 2"
        return TaskResult(tuple(undefined(b, name, note, n) for name in RETRIEVAL_METRICS))
    q = q_vectors[pairs["left_idx"].to_numpy(dtype=np.int64)]
    g = g_vectors[pairs["right_idx"].to_numpy(dtype=np.int64)]
    ranks = metrics.retrieval_ranks(q, g, np.arange(n))
    pct = metrics.percentile_from_ranks(ranks, n)
    pid = pairs["patient_id"].to_numpy(dtype=object)
    scores = {"percentile": pct, "rank": ranks.astype(float)}
    records = tuple(
        bootstrap_records(
            ctx,
            b,
            [(name, name, scores[SCORES.get(name, "rank")]) for name in RETRIEVAL_METRICS],
            pid,
            None,
        )
    )
    frame = cell_predictions(ctx, b, "retrieval", np.ones(n), pct, pid, pid)
    return TaskResult(records, (frame,))


@task("retrieval", "table3", "retrieval")
def retrieval(ctx: Context) -> TaskResult:
    """Table 3: retrieval between every ordered pair of distinct modalities (56 pairs)."""
    out = TaskResult()
    for query, gallery in permutations(MODALITY_NAMES, 2):
        out += pair_records(ctx, query, gallery)
    return out
