"""Train every modality's baseline on one manifest, then write the test predictions."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from baselines.predict import predict_runs
from baselines.tasks import DEFAULT_MAX_GAP
from baselines.train import (
    CKPT,
    MIN_TRAIN,
    BaselineResult,
    labelled,
    train_baseline,
    trainable_heads,
)
from clerc.data.manifest import Manifest
from clerc.modalities import DIAGNOSTIC
from clerc.train.config import TrainConfig

MODALITIES: Sequence[str] = DIAGNOSTIC


@dataclass(frozen=True)
class Summary:
    """Trained baselines, modalities skipped (and why), and the predictions file."""

    results: tuple[BaselineResult, ...]
    skipped: dict[str, str] = field(default_factory=dict)
    predictions: Path | None = None
    n_predictions: int = 0
    predict_seconds: float = 0.0

    def lines(self) -> list[str]:
        out = [
            f"{r.modality}: best epoch {r.best_epoch}, val score {r.best_score:.3f} "
            f"({', '.join(f'{k} {v:.3f}' for k, v in r.val_metrics.items())}) in "
            f"{r.seconds:.1f} s -> {r.checkpoint}"
            for r in self.results
        ]
        out += [f"{m}: skipped ({why})" for m, why in self.skipped.items()]
        if self.predictions is not None:
            out.append(
                f"{self.n_predictions} test predictions in {self.predict_seconds:.1f} s "
                f"-> {self.predictions}"
            )
        return out


def why_untrainable(manifest: Manifest, modality: str, max_gap: timedelta) -> str | None:
    """Why ``modality`` has too few labelled samples to train on, or None when it has enough."""
    heads, train, _ = trainable_heads(manifest, modality, max_gap)
    n_train = len(train)
    n_val = len(labelled(manifest, modality, "val", heads, max_gap)[0]) if heads else 0
    if n_train < MIN_TRAIN or n_val == 0:
        return f"{n_train} labelled train and {n_val} labelled val samples"
    return None


def train_all(
    cfg: TrainConfig,
    data: str | Path,
    out: str | Path,
    *,
    modalities: list[str] | tuple[str, ...] | None = None,
    device: str = "cpu",
    init: dict[str, str] | None = None,
    max_gap: timedelta = DEFAULT_MAX_GAP,
    batch_size: int = 32,
    progress: bool = True,
) -> Summary:
    """Train the baselines of ``modalities`` (default: every diagnostic modality with
    labelled samples; a named modality without them is an error) into ``out/<modality>/``
    and write ``out/predictions.parquet``."""
    from clerc.data.packed import read_prepared

    try:
        manifest, store = read_prepared(data)
    except FileNotFoundError as exc:
        raise ValueError(f"--data {data}: not a manifest directory ({exc})") from exc
    out = Path(out)
    chosen = tuple(modalities) if modalities else MODALITIES
    results, skipped = [], {}
    for m in chosen:
        why = why_untrainable(manifest, m, max_gap)
        if why is not None:
            if modalities:
                raise ValueError(f"baseline {m}: {why} in {data}")
            skipped[m] = why
            continue
        results.append(
            train_baseline(
                m,
                cfg,
                manifest,
                out / m,
                device=device,
                init=init,
                max_gap=max_gap,
                progress=progress,
                store=store,
            )
        )
    if not results:
        return Summary((), skipped)
    t0 = time.perf_counter()
    path, table = predict_runs(
        out,
        data,
        device=device,
        modalities=same_data(out, data),
        batch_size=batch_size,
        progress=progress,
    )
    return Summary(tuple(results), skipped, path, len(table), time.perf_counter() - t0)


def same_data(out: Path, data: str | Path) -> tuple[str, ...]:
    """Modalities with a checkpoint in ``out`` trained on this manifest: a run that trains
    some modalities keeps the predictions of those an earlier run trained on the same data."""
    from clerc.data.manifest import manifest_hash
    from clerc.train.checkpoint import load_checkpoint

    h = manifest_hash(data)
    found = [m for m in MODALITIES if (out / m / CKPT).is_file()]
    return tuple(m for m in found if load_checkpoint(out / m / CKPT)[1].get("manifest_hash") == h)
