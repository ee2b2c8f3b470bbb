"""What the two training loops share: optimiser, learning rate, autocast, progress bar.

CLERC's loop (``clerc.train.trainer``) and the supervised baselines' loop
(``baselines.train``) are two separate loops on purpose (see ``baselines.train``); these
are the parts they share, public and imported at the top of each.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from clerc.train.config import TrainConfig


def autocast(device: torch.device, cfg: TrainConfig) -> Any:
    """bf16 autocast on CUDA when ``cfg.amp == "bf16"``; a no-op context otherwise."""
    enabled = device.type == "cuda" and cfg.amp == "bf16"
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's lr to ``lr`` times the group's ``lr_factor``."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_factor", 1.0)


def decay_groups(
    params: Iterable[torch.nn.Parameter], lr_factor: float = 1.0
) -> list[dict[str, Any]]:
    """Param groups with weight decay only on matrices and kernels.

    Parameters with fewer than 2 dimensions (biases, norm gains, the logit scale) get no
    decay, as in CLIP training: decay on the log logit scale pulls the temperature up
    step by step, whatever the loss says. Empty groups are left out."""
    params = list(params)
    flat = [p for p in params if p.ndim < 2]
    rest = [p for p in params if p.ndim >= 2]
    groups = [
        {"params": rest, "lr_factor": lr_factor},
        {"params": flat, "lr_factor": lr_factor, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(groups: list[dict[str, Any]], cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum (the paper's) or AdamW (``momentum`` as beta1) over param groups
    that carry an ``lr_factor`` (and may set their own ``weight_decay``; the others get
    ``cfg.weight_decay``); the lr is set from ``cfg.lr``."""
    if cfg.optimizer == "adamw":
        optimizer: torch.optim.Optimizer = torch.optim.AdamW(
            groups, lr=cfg.lr, betas=(cfg.momentum, 0.999), weight_decay=cfg.weight_decay
        )
    else:
        optimizer = torch.optim.SGD(
            groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    set_lr(optimizer, cfg.lr)
    return optimizer


class Bar:
    """A rich progress bar with the running loss and samples/s (silent when disabled)."""

    def __init__(self, enabled: bool) -> None:
        self.progress = None
        if enabled:
            import rich.progress as rp

            self.progress = rp.Progress(
                rp.TextColumn("{task.description}"),
                rp.BarColumn(),
                rp.MofNCompleteColumn(),
                rp.TextColumn("loss {task.fields[loss]:.4f}  {task.fields[sps]:.1f} samples/s"),
                rp.TimeElapsedColumn(),
            )
            self.progress.start()
        self.task: Any = None

    def epoch(self, epoch: int, total: int) -> None:
        if self.progress is not None:
            self.task = self.progress.add_task(
                f"epoch {epoch}", total=total, loss=math.nan, sps=0.0
            )

    def step(self, loss: Tensor, samples_per_s: float, *, refresh: bool) -> None:
        if self.progress is None:
            return
        if refresh:
            self.progress.update(self.task, advance=1, loss=float(loss.detach()), sps=samples_per_s)
        else:
            self.progress.update(self.task, advance=1)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
