"""Table 3's ceiling on a synthetic cohort: retrieval by the planted latent variables.

The synthetic cohort stores the latent state behind every study (``ground_truth.parquet``).
An *oracle* sees, for each sample, the latent variables its modality actually shows
(``VISIBLE``: what the renderer or the report writer reads), z-scored over the cohort. A
report that states a grade rather than a value (heart size on the X-ray, LV size on the
echo) shows the grade (``GRADED``), so ties within a grade count as the model's would.
For a pair (query, gallery) it predicts the gallery's variables from the query's by ridge
regression fitted on the training split's pairs (so shared variables are matched exactly
and merely correlated ones, such as a paced ECG and a pacemaker on the X-ray, count for
what they are worth), and ranks the gallery by the distance between predicted and actual
variables, each scaled by its residual spread (exact ties count half: see
:func:`oracle_ranks`). The pairs are the retrieval task's
(per patient the studies closest in time; the latent state is a study's, so the oracle
reads all the study shows, as the retrieval task's study vector does), so the oracle is
scored on the same test patients as the model. It is what a model that read each
modality perfectly could reach; chance is 50. A manifest without ground truth (a real
cohort) gives no oracle records.
"""

from __future__ import annotations

from itertools import permutations

import numpy as np
import pandas as pd

from clerc.evaluate import metrics
from clerc.evaluate.matching import closest_pairs
from clerc.evaluate.registry import Context, task
from clerc.evaluate.results import Record, TaskResult, undefined
from clerc.evaluate.tasks.common import base, bootstrap_record
from clerc.evaluate.tasks.retrieval import SPLIT, study_units, unit_side
from clerc.modalities import MODALITY_NAMES
from clerc.synthetic.reports import CTR_GRADES, LVEDD_GRADES_CM

GROUND_TRUTH = "ground_truth.parquet"
_OCCLUSIONS = ("lad_occlusion", "rca_occlusion", "lcx_occlusion")
#: The latent variables each modality shows (see clerc/synthetic: echo.py, ecg.py,
#: angio.py, cxr.py draw from these; reports.py states these).
VISIBLE: dict[str, tuple[str, ...]] = {
    "echo_video": ("lvef", "hr", "lvedd_cm", "pacemaker", "age", "orientation_deg", *_OCCLUSIONS),
    "echo_text": ("lvef", "lvedd_grade", "pacemaker", *_OCCLUSIONS),
    "ecg_waveform": (
        "hr",
        "paced",
        "rbbb",
        "lbbb",
        "sex",
        "age",
        "bmi",
        "lvedd_cm",
        "axis_deg",
        "qrs_ms",
        "pr_ms",
        "qt_ms",
        *_OCCLUSIONS,
    ),
    "ecg_text": (
        "hr",
        "paced",
        "rbbb",
        "lbbb",
        "axis_deg",
        "qrs_ms",
        "pr_ms",
        "qt_ms",
        *_OCCLUSIONS,
    ),
    # age also bends the vessels (angio.vessel_tree), but too faintly to be read exactly:
    # listed, it would let the oracle match angiograms to X-rays by exact age
    "angio_video": ("hr", *_OCCLUSIONS),
    "angio_text": _OCCLUSIONS,
    "cxr_image": (
        "bmi",
        "sex",
        "age",
        "pacemaker",
        "orientation_deg",
        "ctr",
        "edema",
        "consolidation",
    ),
    "cxr_text": ("ctr_grade", "edema", "consolidation", "pacemaker"),
}
#: Variables a report states as a grade, not a value: name -> (latent variable, grade edges).
GRADED: dict[str, tuple[str, tuple[float, ...]]] = {
    "ctr_grade": ("ctr", CTR_GRADES),
    "lvedd_grade": ("lvedd_cm", LVEDD_GRADES_CM),
}
METRIC = "median_percentile"


def _features(ctx: Context) -> pd.DataFrame | None:
    """z-scored latent variables per sample (index = embedding row), or None."""
    path = ctx.manifest.root / GROUND_TRUTH
    if not path.is_file():
        return None
    truth = pd.read_parquet(path).set_index("study_id")
    cols = sorted({c for v in VISIBLE.values() for c in v} - set(GRADED))
    table = truth[cols].copy()
    table["sex"] = (truth["sex"] == "F").astype(float)
    for name, (latent, edges) in GRADED.items():
        table[name] = np.digitize(truth[latent].to_numpy(float), edges)
    table = table.astype(float)
    table = (table - table.mean()) / table.std(ddof=0).replace(0.0, 1.0)
    s = ctx.embeddings.samples
    rows = s[s["study_id"].isin(table.index)]
    out = table.loc[rows["study_id"].astype(str).to_numpy()]
    out.index = rows.index
    return out


def _side(samples: pd.DataFrame, modality: str, have: pd.Index, split: str) -> pd.DataFrame:
    """The retrieval task's units (studies), each named by its first sample's row."""
    units = study_units(samples, modality, split)
    return unit_side(units[units["row"].isin(have)], idx="row")


RIDGE = 1e-2
MIN_SPREAD = 0.05


def fit_predictor(xq: np.ndarray, yg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ridge weights (with intercept) predicting ``yg`` from ``xq`` and each predicted
    column's residual spread (at least ``MIN_SPREAD``)."""
    x = np.hstack([xq, np.ones((len(xq), 1))])
    w = np.linalg.solve(x.T @ x + RIDGE * len(x) * np.eye(x.shape[1]), x.T @ yg)
    spread = np.maximum((yg - x @ w).std(axis=0), MIN_SPREAD)
    return w, spread


def oracle_ranks(pred: np.ndarray, g: np.ndarray, chunk: int | None = None) -> np.ndarray:
    """Expected rank of gallery row i for query row i by the distance between the query's
    predicted gallery variables ``pred`` and each gallery row, ties counted half
    (`metrics.mid_ranks`). Reports that state the same grades are exact ties, and a
    perfect reader with nothing to tell them apart ranks the true one, on average, in the
    middle of them. ``-|p - g|^2`` ranks as ``2 p.g - |g|^2``, a dot product of augmented
    float32 vectors, so equal gallery rows score exactly equal."""
    qa = np.hstack([2.0 * pred, -np.ones((len(pred), 1))]).astype(np.float32)
    ga = np.hstack([g, (g * g).sum(axis=1, keepdims=True)]).astype(np.float32)
    return metrics.mid_ranks(qa, ga, np.arange(len(qa)), chunk)


def _pairs(ctx: Context, feats: pd.DataFrame, query: str, gallery: str, split: str) -> pd.DataFrame:
    samples = ctx.embeddings.samples
    return closest_pairs(
        _side(samples, query, feats.index, split), _side(samples, gallery, feats.index, split), None
    )


def pair_record(ctx: Context, feats: pd.DataFrame, query: str, gallery: str) -> Record:
    """The oracle's median percentile for one ordered pair."""
    b = base("table3", "retrieval", "oracle", query=query, gallery=gallery)
    test = _pairs(ctx, feats, query, gallery, SPLIT)
    train = _pairs(ctx, feats, query, gallery, "train")
    n = len(test)
    if n < 2:
        return undefined(b, METRIC, f"{n} test patient(s) have both; need 2", n)
    if len(train) < 10:
        return undefined(b, METRIC, f"{len(train)} training pairs; the oracle needs 10", n)
    qcols, gcols = list(VISIBLE[query]), list(VISIBLE[gallery])

    def block(pairs: pd.DataFrame, side: str, cols: list[str]) -> np.ndarray:
        return feats.loc[pairs[f"{side}_idx"].to_numpy(), cols].to_numpy(float)

    w, spread = fit_predictor(block(train, "left", qcols), block(train, "right", gcols))
    xq = block(test, "left", qcols)
    pred = np.hstack([xq, np.ones((n, 1))]) @ w / spread
    pct = metrics.percentile_from_ranks(oracle_ranks(pred, block(test, "right", gcols) / spread), n)
    return bootstrap_record(
        ctx,
        b,
        "median",
        test["patient_id"].to_numpy(dtype=object),
        None,
        pct,
        name=METRIC,
        note=f"oracle: {len(gcols)} {gallery} variables "
        f"predicted from {len(qcols)} {query} variables",
    )


@task("oracle", "table3", "oracle")
def oracle(ctx: Context) -> TaskResult:
    """Table 3 ceiling: retrieval by the planted latent variables (synthetic cohorts only)."""
    feats = _features(ctx)
    if feats is None:
        return TaskResult()
    return TaskResult(
        tuple(pair_record(ctx, feats, q, g) for q, g in permutations(MODALITY_NAMES, 2))
    )
