"""Train one supervised baseline per diagnostic modality (see ``baselines.model``).

The recipe is CLERC's (``clerc.train.config.TrainConfig``): the config's optimiser (the
paper's SGD with momentum; the tiny preset's AdamW), the learning rate of
:func:`clerc.train.config.lr_at` each epoch, batch size, epochs, seed, bf16 autocast on
CUDA. One addition: gradients are clipped to norm ``MAX_GRAD_NORM`` (1.0). CLERC's loss
works on unit embeddings; a supervised head's MSE or weighted BCE is unbounded, and at
the tiny preset's former SGD learning rate (0.05) the ViT diverged without the clip (CXR
age R^2 of -3e13 after one epoch on a 60-patient cohort).

This loop is a separate copy of CLERC's (``clerc.train.trainer``), on purpose: one model
per modality with supervised heads, no modality pairs, no DDP, no resume, selection by
validation metric rather than loss. Sharing one loop would put those branches in both.
What they do share (optimiser, learning rate, autocast, progress bar) is the public
``clerc.train.common``.

Train on the train split's labelled samples (a head with no train label is dropped),
validate on the val split's after every epoch; ``OUT/<modality>/ckpt.pt`` keeps the epoch
with the best validation score, the mean over heads of AUROC (binary) and R^2
(regression) on the val samples (heads whose metric is undefined there, e.g. one class
only, are left out; when every head is undefined the lowest validation loss decides).
``log.jsonl`` has one line per epoch.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import torch

from baselines.data import EpochBatches, SampleSet, make_loader
from baselines.model import BaselineModel, masked_loss, to_scores
from baselines.tasks import (
    DEFAULT_MAX_GAP,
    HeadSpec,
    TargetStats,
    baseline_heads,
    sample_labels,
    target_stats,
)
from clerc.data.inputs import sample_spec
from clerc.data.manifest import Manifest
from clerc.evaluate.metrics import auroc, r2
from clerc.kinds import get_kind
from clerc.modalities import get_modality
from clerc.model.encoders.video import VideoEncoder
from clerc.train.common import Bar, autocast, build_optimizer, decay_groups, set_lr
from clerc.train.config import TrainConfig, lr_at

CKPT, LOG = "ckpt.pt", "log.jsonl"
#: Gradient norm clip: keeps unbounded losses (MSE, weighted BCE) from diverging.
MAX_GRAD_NORM = 1.0
#: Fewest labelled train samples for a baseline to be trained.
MIN_TRAIN = 2


@dataclass(frozen=True)
class BaselineResult:
    """What training one modality's baseline gave."""

    modality: str
    checkpoint: Path
    best_epoch: int
    best_score: float
    val_metrics: dict[str, float]
    seconds: float


def labelled(
    manifest: Manifest, modality: str, split: str, heads: tuple[HeadSpec, ...], max_gap: timedelta
) -> tuple[pd.DataFrame, np.ndarray]:
    """Samples of ``modality`` in ``split`` with at least one label, and their labels."""
    s = manifest.samples
    s = s[(s["modality"] == modality) & (s["split"] == split)]
    s = s.sort_values("sample_id").reset_index(drop=True)
    y = sample_labels(manifest, s, heads, max_gap)
    keep = np.isfinite(y).any(axis=1)
    return s[keep].reset_index(drop=True), y[keep]


def trainable_heads(
    manifest: Manifest, modality: str, max_gap: timedelta
) -> tuple[tuple[HeadSpec, ...], pd.DataFrame, np.ndarray]:
    """The heads with at least one train label (a head without any cannot learn), and
    the labelled train samples with their labels for those heads."""
    heads = baseline_heads(modality)
    samples, y = labelled(manifest, modality, "train", heads, max_gap)
    keep = np.isfinite(y).any(axis=0)
    return tuple(h for h, k in zip(heads, keep, strict=True) if k), samples, y[:, keep]


def head_metrics(
    outputs: np.ndarray, labels: np.ndarray, heads: tuple[HeadSpec, ...], stats: TargetStats
) -> dict[str, float]:
    """AUROC (binary) or R^2 (regression) per head where defined, on de-standardised scores."""

    scores = to_scores(outputs, heads, stats)
    out: dict[str, float] = {}
    for k, h in enumerate(heads):
        ok = np.isfinite(labels[:, k])
        try:
            fn = auroc if h.kind == "binary" else r2
            out[h.name] = fn(labels[ok, k], scores[ok, k])
        except ValueError:
            continue
    return out


def selection_score(metrics: dict[str, float], val_loss: float) -> float:
    """Mean of the defined head metrics; minus the loss when none is defined."""
    return float(np.mean(list(metrics.values()))) if metrics else -val_loss


class Fitter:
    """One modality's model, optimiser and loaders; ``epoch()`` trains, ``validate()`` scores."""

    def __init__(
        self,
        model: BaselineModel,
        cfg: TrainConfig,
        stats: TargetStats,
        train: SampleSet,
        val: SampleSet,
        device: torch.device,
    ) -> None:
        self.model, self.cfg, self.stats, self.device = model, cfg, stats, device
        self.optimizer = build_optimizer(decay_groups(model.parameters()), cfg)
        pin = device.type == "cuda"
        self.train_batches = EpochBatches(
            len(train),
            min(cfg.batch_size, len(train)),
            seed=cfg.seed,
            shuffle=True,
            drop_last=True,
            max_batches=cfg.max_steps_per_epoch,
        )
        self.train_loader = make_loader(
            train, self.train_batches, num_workers=cfg.num_workers, pin_memory=pin
        )
        val_batches = EpochBatches(
            len(val), cfg.batch_size, seed=cfg.seed, shuffle=False, drop_last=False
        )
        self.val_loader = make_loader(val, val_batches, num_workers=cfg.num_workers, pin_memory=pin)
        self.val_labels = val.labels

    def _autocast(self) -> Any:
        return autocast(self.device, self.cfg)

    def epoch(self, epoch: int, bar: Any) -> dict[str, Any]:
        """One pass over the training batches; returns the mean loss and timings."""
        self.model.train()
        self.train_batches.set_epoch(epoch)
        n_steps = len(self.train_batches)
        bar.epoch(epoch, n_steps)
        total, steps, samples, t0 = 0.0, 0, 0, time.perf_counter()
        for x, y in self.train_loader:
            set_lr(self.optimizer, lr_at(epoch + (steps + 1) / n_steps, self.cfg))
            with self._autocast():
                out = self.model(x.to(self.device, non_blocking=True))
            loss, _ = masked_loss(out, y.to(self.device), self.model.specs, self.stats)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), MAX_GRAD_NORM)
            self.optimizer.step()
            total, steps, samples = total + float(loss.detach()), steps + 1, samples + len(y)
            bar.step(loss, samples / max(time.perf_counter() - t0, 1e-9), refresh=True)
        seconds = time.perf_counter() - t0
        return {
            "epoch": epoch,
            "lr": lr_at(epoch + 0.5, self.cfg),
            "train_loss": total / steps if steps else math.nan,
            "steps": steps,
            "train_seconds": seconds,
        }

    @torch.no_grad()
    def validate(self) -> tuple[float, dict[str, float]]:
        """Validation loss and per-head metrics (centred views of every val sample)."""
        self.model.eval()
        outs, losses = [], []
        for x, y in self.val_loader:
            with self._autocast():
                out = self.model(x.to(self.device, non_blocking=True)).float()
            losses.append(
                float(masked_loss(out, y.to(self.device), self.model.specs, self.stats)[0]) * len(y)
            )
            outs.append(out.cpu().numpy())
        loss = sum(losses) / len(self.val_labels)
        metrics = head_metrics(np.concatenate(outs), self.val_labels, self.model.specs, self.stats)
        return loss, metrics


def build_model(
    modality: str,
    cfg: TrainConfig,
    heads: tuple[HeadSpec, ...],
    init: dict[str, str] | None,
    device: torch.device,
) -> BaselineModel:
    """CLERC's encoder for ``modality`` (optionally pretrained) with the task heads."""
    torch.manual_seed(cfg.seed)
    model = BaselineModel(modality, cfg.model, heads)
    if init and modality in init:
        from clerc.model.init import load_pretrained

        load_pretrained(model, {modality: init[modality]})
    model.to(device)
    if device.type == "cuda" and get_kind(get_modality(modality).kind).channels_last_3d:
        encoder = cast(VideoEncoder, model.encoder)
        encoder.to(memory_format=torch.channels_last_3d)
        encoder.channels_last = True
    return model


def train_baseline(
    modality: str,
    cfg: TrainConfig,
    manifest: Manifest,
    out: Path,
    *,
    device: str = "cpu",
    init: dict[str, str] | None = None,
    max_gap: timedelta = DEFAULT_MAX_GAP,
    progress: bool = True,
    store: Any = None,
) -> BaselineResult:
    """Train ``modality``'s baseline into ``out/ckpt.pt`` (best epoch) and ``out/log.jsonl``."""
    t_start = time.perf_counter()
    dev = torch.device(device)
    heads, tr, y_tr = trainable_heads(manifest, modality, max_gap)
    va, y_va = labelled(manifest, modality, "val", heads, max_gap)
    if len(tr) < MIN_TRAIN or len(va) == 0:
        raise ValueError(
            f"baseline {modality}: {len(tr)} labelled train and {len(va)} "
            f"labelled val samples in {manifest.root}; need >= {MIN_TRAIN} and >= 1"
        )
    stats = target_stats(y_tr, heads)
    spec = sample_spec(cfg.model)
    sets = [
        SampleSet(manifest, s, y, spec, train=t, seed=cfg.seed, store=store)
        for s, y, t in ((tr, y_tr, True), (va, y_va, False))
    ]
    model = build_model(modality, cfg, heads, init, dev)
    fitter = Fitter(model, cfg, stats, sets[0], sets[1], dev)
    out.mkdir(parents=True, exist_ok=True)
    (out / LOG).unlink(missing_ok=True)
    (out / CKPT).unlink(missing_ok=True)  # an earlier run's model must not pass for this one's
    header = base_header(
        modality, cfg, manifest, heads, stats, init, max_gap, n_train=len(tr), n_val=len(va)
    )
    best: tuple[float, int, dict[str, float]] = (-math.inf, -1, {})
    bar = Bar(progress)
    if progress:
        print(
            f"{modality}: {len(tr)} train / {len(va)} val samples, heads "
            f"{', '.join(h.name for h in heads)}",
            file=sys.stderr,
        )
    try:
        for epoch in range(cfg.epochs):
            row = fitter.epoch(epoch, bar)
            val_loss, metrics = fitter.validate()
            score = selection_score(metrics, val_loss)
            row |= {"val_loss": val_loss, "val_metrics": metrics, "val_score": score}
            if score > best[0]:
                best = (score, epoch, metrics)
                save_baseline(out / CKPT, model, header, epoch, best)
            with (out / LOG).open("a") as f:
                f.write(json.dumps(row) + "\n")
    finally:
        bar.close()
    if best[1] < 0:
        raise ValueError(
            f"baseline {modality}: no epoch had a finite validation score "
            f"(the loss diverged?); see {out / LOG}"
        )
    return BaselineResult(
        modality, out / CKPT, best[1], best[0], best[2], time.perf_counter() - t_start
    )


def base_header(
    modality: str,
    cfg: TrainConfig,
    manifest: Manifest,
    heads: tuple[HeadSpec, ...],
    stats: TargetStats,
    init: dict[str, str] | None,
    max_gap: timedelta,
    **extra: Any,
) -> dict[str, Any]:
    """The header fields every checkpoint of this run shares."""
    from clerc.data.manifest import manifest_hash

    return {
        "config": cfg.to_dict(),
        "manifest_hash": manifest_hash(manifest.root),
        "kind": "baseline",
        "modality": modality,
        "tasks": [h.name for h in heads],
        "heads": [h.to_dict() for h in heads],
        "target_stats": stats.to_dict(),
        "init": dict(init or {}),
        "data": str(Path(manifest.root).resolve()),
        "max_gap_days": max_gap.total_seconds() / 86400,
        **extra,
    }


def save_baseline(
    path: Path,
    model: BaselineModel,
    header: dict[str, Any],
    epoch: int,
    best: tuple[float, int, dict[str, float]],
) -> None:
    """Write the model with the header (``clerc.train.checkpoint``: safe to load)."""
    from clerc.train.checkpoint import make_header, save_checkpoint

    rest = {k: v for k, v in header.items() if k not in ("config", "manifest_hash")}
    full = make_header(
        header["config"],
        header["manifest_hash"],
        epoch,
        best_val_score=best[0],
        best_epoch=best[1],
        val_metrics=best[2],
        **rest,
    )
    save_checkpoint(path, {"model": model.state_dict()}, full)
