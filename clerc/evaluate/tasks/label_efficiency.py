"""Label efficiency: Table 4 probes refitted on fractions of the training patients.

For every Table 4 task with a modality and every fraction of ``Context.label_efficiency``
(default 1%, 10%, 100%), a linear probe (as ``linear_probe``: ridge or warm-started
logistic, regularisation picked on the *whole* validation split) and, with ``knn`` on
(``--knn``), a k-NN probe (k picked on validation) are fitted on a seeded draw of that
fraction of the labelled training patients (at least one), several draws below 100%.
Each draw is scored on the same test studies; a record's value is the mean over draws,
its interval the patient bootstrap of that mean (every draw and metric scored on the same
resamples), and ``<metric>_sd`` is the spread (standard deviation) across draws.
``train_patients`` records the labelled patients a probe saw (mean over draws). Records:
``table4``, setting ``linear_probe`` or ``knn_probe``, ``train_fraction`` in their key.
The 100% linear probe is the one ``linear_probe`` fits (shared through ``ctx.memo``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from clerc.evaluate import bootstrap
from clerc.evaluate.knn import fit_knn
from clerc.evaluate.metric_specs import KIND_METRICS
from clerc.evaluate.probe import fit_probe
from clerc.evaluate.registry import Context, TaskDef, task
from clerc.evaluate.results import Record, TaskResult
from clerc.evaluate.tasks.common import base, cell_seed, study_mean
from clerc.evaluate.tasks.probe import MIN_ROWS, _labelled, probe_predictions


@dataclass(frozen=True)
class _Data:
    """Labelled train / val rows of one cell and its test rows."""

    x_train: np.ndarray
    y_train: np.ndarray
    patients: np.ndarray  # patient of each train row: index into the sorted patient ids
    x_val: np.ndarray
    y_val: np.ndarray
    test: pd.DataFrame
    y_test: pd.Series


def _data(ctx: Context, d: TaskDef, modality: str) -> _Data | str:
    v = ctx.embeddings.vectors
    split = {}
    for name in ("train", "val"):
        _, lab, y, _ = _labelled(ctx, d, modality, name)
        if len(lab) < MIN_ROWS:
            return f"{len(lab)} labelled {name} samples of {modality}; need {MIN_ROWS}"
        split[name] = (lab, y.reindex(lab["study_id"]).to_numpy(float))
    _, test, y_test, _ = _labelled(ctx, d, modality, "test")
    if test.empty:
        return f"no labelled test samples of {modality}"
    (tr, yt), (va, yv) = split["train"], split["val"]
    codes, _ = pd.factorize(tr["patient_id"].astype(str).to_numpy(), sort=True)
    return _Data(v[tr.index.to_numpy()], yt, codes, v[va.index.to_numpy()], yv, test, y_test)


def _draw(data: _Data, fraction: float, seed: int) -> tuple[np.ndarray, int]:
    """Train rows of a seeded draw of ``fraction`` of the patients, and how many patients."""
    n_patients = int(data.patients.max()) + 1
    if fraction >= 1.0:
        return np.arange(len(data.patients)), n_patients
    m = max(1, int(round(fraction * n_patients)))
    chosen = np.zeros(n_patients, dtype=bool)
    chosen[np.random.default_rng(seed).choice(n_patients, size=m, replace=False)] = True
    return np.flatnonzero(chosen[data.patients]), m


def _predictions(
    ctx: Context, d: TaskDef, modality: str, data: _Data, setting: str, fraction: float, seed: int
) -> tuple[pd.DataFrame, int] | str:
    """Study-level test predictions of one draw (or why it could not be fitted)."""
    if setting == "linear_probe" and fraction >= 1.0:
        sp = probe_predictions(ctx, d, modality)
        return sp if isinstance(sp, str) else (sp.frame, int(data.patients.max()) + 1)
    rows, m = _draw(data, fraction, seed)
    xt, yt = data.x_train[rows], data.y_train[rows]
    test_x = ctx.embeddings.vectors[data.test.index.to_numpy()]
    try:
        if setting == "knn_probe":
            probe: Any = fit_knn(d.kind, xt, yt, data.x_val, data.y_val, ctx.label_efficiency.ks)
        else:
            probe = fit_probe(d.kind, xt, yt, data.x_val, data.y_val)
    except ValueError as exc:
        return f"{m} train patients: {exc}"
    return study_mean(data.test, probe.predict(test_x), data.y_test), m


def _records(
    ctx: Context,
    b: dict[str, Any],
    kind: str,
    frames: list[pd.DataFrame],
    failed: list[str],
    n_draws: int,
    patients: list[int],
) -> list[Record]:
    metrics = KIND_METRICS[kind]
    what = (f"{len(frames)} of {n_draws} seeded draws" if n_draws > 1 else "one fit") + (
        f" of {np.mean(patients):.0f} train patients" if patients else ""
    )
    note = "; ".join(
        [f"mean of {what}; validation split used in full"]
        + ([f"not fitted: {failed[0]}"] if failed else [])
    )
    if not frames:
        return [
            Record(
                **b, metric=m, value=None, ci_low=None, ci_high=None, n=0, n_undefined=0, note=note
            )
            for m in metrics
        ]
    f0 = frames[0]
    pid = f0["patient_id"].to_numpy(dtype=object)
    y = f0["y_true"].to_numpy(float)
    n = int(pd.unique(pid).size)
    scores = [f["y_score"].to_numpy(float) for f in frames]
    parts = [bootstrap.Part(m, y, sc) for sc in scores for m in metrics]  # draw-major
    try:  # every metric and draw on one set of resamples
        points, ok, values, defined = bootstrap.joint_replicates(
            pid, parts, n_resamples=max(ctx.n_resamples, 1), seed=cell_seed(ctx, b, "draws")
        )
    except ValueError as exc:
        return [
            Record(
                **b,
                metric=m,
                value=None,
                ci_low=None,
                ci_high=None,
                n=n,
                n_undefined=0,
                note=f"{note}; {exc}",
            )
            for m in metrics
        ]
    out: list[Record] = []
    k = len(frames)
    for j, m in enumerate(metrics):
        sl = slice(j, None, len(metrics))  # metric j of every draw
        if not ok[sl].all():
            out.append(
                Record(
                    **b,
                    metric=m,
                    value=None,
                    ci_low=None,
                    ci_high=None,
                    n=n,
                    n_undefined=0,
                    note=f"{note}; {m} undefined on the test set",
                )
            )
            continue
        lo = hi = None
        both = defined[sl].all(axis=0)
        if ctx.n_resamples >= 1 and both.any():
            lo, hi = bootstrap.percentile_interval(values[sl][:, both].mean(axis=0))
        out.append(
            Record(
                **b,
                metric=m,
                value=float(points[sl].mean()),
                ci_low=lo,
                ci_high=hi,
                n=n,
                n_undefined=int((~both).sum()) if ctx.n_resamples else 0,
                note=note,
            )
        )
        if k > 1:
            out.append(
                Record(
                    **b,
                    metric=f"{m}_sd",
                    value=float(np.std(points[sl], ddof=1)),
                    ci_low=None,
                    ci_high=None,
                    n=n,
                    n_undefined=0,
                    note=f"standard deviation over {k} draws",
                )
            )
    return out


def cell_records(ctx: Context, d: TaskDef) -> list[Record]:
    """Every fraction x setting of one Table 4 task."""
    modality = d.modality or ""
    cfg = ctx.label_efficiency
    settings = ("linear_probe", "knn_probe") if cfg.knn else ("linear_probe",)
    data = _data(ctx, d, modality)
    out: list[Record] = []
    for fraction in cfg.fractions:
        n_draws = 1 if fraction >= 1.0 else cfg.draws
        for setting in settings:
            b = base("table4", d.label, setting, modality=modality, label_modality=d.label_modality)
            key: dict[str, Any] = {"train_fraction": fraction}
            if isinstance(data, str):
                out += [
                    Record(
                        **b,
                        metric=m,
                        value=None,
                        ci_low=None,
                        ci_high=None,
                        n=0,
                        n_undefined=0,
                        note=data,
                        **key,
                    )
                    for m in KIND_METRICS[d.kind]
                ]
                continue
            frames, failed, patients = [], [], []
            for i in range(n_draws):
                got = _predictions(
                    ctx,
                    d,
                    modality,
                    data,
                    setting,
                    fraction,
                    cell_seed(ctx, b, f"draw:{fraction}:{i}"),
                )
                if isinstance(got, str):
                    failed.append(got)
                else:
                    frames.append(got[0])
                    patients.append(got[1])
            recs = _records(ctx, b | key, d.kind, frames, failed, n_draws, patients)
            out += recs
            if setting == "linear_probe" and patients:
                out.append(
                    Record(
                        **b,
                        metric="train_patients",
                        value=float(np.mean(patients)),
                        ci_low=None,
                        ci_high=None,
                        n=recs[0].n,
                        n_undefined=0,
                        note="labelled training patients (mean over draws)",
                        **key,
                    )
                )
    return out


@task("label_efficiency", "table4", "linear_probe")
def label_efficiency(ctx: Context) -> TaskResult:
    """Table 4 probes (linear and k-NN) refitted on 1%, 10%, 100% of training patients."""
    out = TaskResult()
    for d in ctx.definitions:
        if d.table4 and d.modality is not None:
            out += cell_records(ctx, d)
    return out
