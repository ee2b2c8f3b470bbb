"""Table 3: cross-modal retrieval for every ordered pair of distinct modalities.

For a pair (query, gallery): test patients with both modalities; per patient the pair of
samples closest in time (no gap limit, as in the paper); every query sample ranks all
matched gallery samples by cosine similarity. Metrics: median and mean percentile of the
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
from clerc.evaluate.tasks.common import base, bootstrap_records, cell_predictions
from clerc.modalities import MODALITY_NAMES

#: The scores each retrieval metric reads: percentiles of the match, or its 0-based rank.
SCORES: dict[str, str] = {"median_percentile": "percentile", "mean_percentile": "percentile"}
SPLIT = "test"


def _side(samples: pd.DataFrame, modality: str) -> pd.DataFrame:
    s = samples[(samples["modality"] == modality) & (samples["split"] == SPLIT)]
    s = s[s["patient_id"].notna() & s["acquired_at"].notna()]
    return pd.DataFrame(
        {
            "patient_id": s["patient_id"].astype(str).to_numpy(),
            "time": s["acquired_at"].to_numpy(),
            "idx": s.index.to_numpy(dtype=np.int64),
        }
    )


def pair_records(ctx: Context, query: str, gallery: str) -> TaskResult:
    """The retrieval records of one ordered modality pair."""
    b = base("table3", "retrieval", "retrieval", query=query, gallery=gallery)
    samples = ctx.embeddings.samples
    pairs = closest_pairs(_side(samples, query), _side(samples, gallery), None)
    n = len(pairs)
    if n < 2:
        note = f"{n} test patient(s) have both {query} and {gallery}; need 2"
        return TaskResult(tuple(undefined(b, name, note, n) for name in RETRIEVAL_METRICS))
    v = ctx.embeddings.vectors
    q = v[pairs["left_idx"].to_numpy(dtype=np.int64)]
    g = v[pairs["right_idx"].to_numpy(dtype=np.int64)]
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
