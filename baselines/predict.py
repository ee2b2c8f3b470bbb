"""Load baseline checkpoints and write test-split predictions for the supervised scorer.

``predictions.parquet`` has one row per (test sample, head): ``sample_id, modality, task,
score``. ``task`` is the task definition's name (``lvef``, ``pacemaker_echo``,
``pacemaker_ecg``, ``age``, ...), ``score`` the probability for binary tasks and the
de-standardised value (label units: LVEF %, years) for regression. A sample's raw outputs
are averaged over its evaluation views (every clip covering a video, every ECG window,
the CXR centre crop) before the sigmoid / de-standardisation. Scoring is
``clerc benchmark --supervised predictions.parquet`` (``clerc.evaluate.tasks.supervised``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from baselines.data import eval_views, load_native
from baselines.model import BaselineModel, to_scores
from baselines.tasks import HeadSpec, TargetStats
from clerc.data.manifest import Manifest
from clerc.modalities import DIAGNOSTIC

PREDICTIONS = "predictions.parquet"
COLUMNS: tuple[str, ...] = ("sample_id", "modality", "task", "score")
SPLIT = "test"


def load_baseline(
    path: str | Path, device: str = "cpu"
) -> tuple[BaselineModel, TargetStats, dict[str, Any]]:
    """``(model in eval mode, target stats, header)`` of a baseline checkpoint."""
    from clerc.model.config import ModelConfig
    from clerc.train.checkpoint import CheckpointError, load_checkpoint

    state, header = load_checkpoint(path)
    if header.get("kind") != "baseline":
        raise CheckpointError(
            f"{path}: not a baseline checkpoint (header kind "
            f"{header.get('kind')!r}, expected 'baseline')"
        )
    try:
        cfg = ModelConfig.from_dict(header["config"]["model"])
        heads = tuple(HeadSpec.from_dict(h) for h in header["heads"])
        stats = TargetStats.from_dict(header["target_stats"])
        model = BaselineModel(str(header["modality"]), cfg, heads)
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: baseline header or weights do not fit: {exc}") from exc
    return model.to(device).eval(), stats, header


@torch.no_grad()
def sample_outputs(
    model: BaselineModel,
    manifest: Manifest,
    rows: list[dict[str, Any]],
    store: Any,
    device: str,
    batch_size: int = 32,
    advance: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Raw outputs ``(len(rows), K)``, each the mean over the sample's evaluation views."""
    from clerc.data.inputs import sample_spec

    spec, dev = sample_spec(model.cfg), torch.device(device)
    sums = np.zeros((len(rows), len(model.specs)))
    counts = np.zeros(len(rows))
    owners: list[int] = []
    views: list[np.ndarray] = []

    def flush() -> None:
        x = torch.from_numpy(np.stack(views)).to(dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            out = model(x).float().cpu().numpy()
        np.add.at(sums, np.asarray(owners), out)
        np.add.at(counts, np.asarray(owners), 1)
        owners.clear()
        views.clear()

    for i, row in enumerate(rows):
        for v in eval_views(model.modality, load_native(manifest, row, store), spec):
            owners.append(i)
            views.append(v)
            if len(views) == batch_size:
                flush()
        if advance is not None:
            advance(1)
    if views:
        flush()
    return sums / counts[:, None]


def predict_modality(
    model: BaselineModel,
    stats: TargetStats,
    manifest: Manifest,
    store: Any,
    device: str = "cpu",
    batch_size: int = 32,
    advance: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Predictions (``COLUMNS``) of every test-split sample of the model's modality."""
    s = manifest.samples
    s = s[(s["modality"] == model.modality) & (s["split"] == SPLIT)]
    s = s.sort_values("sample_id").reset_index(drop=True)
    if s.empty:
        return pd.DataFrame({c: pd.Series(dtype=float if c == "score" else str) for c in COLUMNS})
    outputs = sample_outputs(
        model, manifest, s.to_dict("records"), store, device, batch_size, advance
    )
    scores = to_scores(outputs, model.specs, stats)
    k = len(model.specs)
    return pd.DataFrame(
        {
            "sample_id": np.repeat(s["sample_id"].astype(str).to_numpy(), k),
            "modality": model.modality,
            "task": np.tile([h.name for h in model.specs], len(s)),
            "score": scores.reshape(-1),
        }
    )


def predict_runs(
    runs: str | Path,
    data: str | Path,
    *,
    device: str = "cpu",
    modalities: Sequence[str] = DIAGNOSTIC,
    batch_size: int = 32,
    progress: bool = True,
) -> tuple[Path, pd.DataFrame]:
    """Predictions of every ``runs/<modality>/ckpt.pt`` on ``data``'s test split, written to
    ``runs/predictions.parquet``. Raises when no checkpoint is found."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from clerc.data.packed import read_prepared

    runs = Path(runs)
    found = [m for m in modalities if (runs / m / "ckpt.pt").is_file()]
    if not found:
        raise FileNotFoundError(
            f"{runs}: no baseline checkpoints (<modality>/ckpt.pt for any of {list(modalities)})"
        )
    manifest, store = read_prepared(data)
    frames = []
    with Progress(
        "{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not progress,
    ) as bar:
        for m in found:
            model, stats, _ = load_baseline(runs / m / "ckpt.pt", device)
            n = int(
                ((manifest.samples["modality"] == m) & (manifest.samples["split"] == SPLIT)).sum()
            )
            t = bar.add_task(f"predicting {m}", total=n)
            frames.append(
                predict_modality(
                    model, stats, manifest, store, device, batch_size, partial(bar.advance, t)
                )
            )
    table = pd.concat(frames, ignore_index=True)[list(COLUMNS)]
    path = runs / PREDICTIONS
    tmp = path.with_suffix(".parquet.tmp")
    table.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path, table
