"""The supervised baseline model: CLERC's encoder for one modality plus one head per task.

Why one model per modality with a shared encoder and one linear head per task (masked
multi-task loss) rather than one model per (modality, task):

- one encoder pass per sample serves every task of the modality, so four models are
  trained instead of fourteen, at a quarter of the compute;
- the encoder is exactly CLERC's (``clerc.model.clerc.build_encoder`` from the same
  ``ModelConfig``, the same optional pretrained initialisation through
  ``clerc.model.init``), so the comparison isolates the training signal (labels versus
  contrastive pairs), not the architecture;
- a sample lacking a label for a task (no echo label within the gap, unknown sex) still
  trains the other heads: the loss masks missing labels instead of dropping the sample.

Heads read the encoder's ``embed_dim`` output (its final linear projection, before any
normalisation). Binary heads output logits, trained with ``BCEWithLogits`` weighted by
the train split's negatives/positives ratio; regression heads output standardised values
(train mean/std), trained with MSE. The loss is the mean over the heads that have at
least one label in the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.tasks import HeadSpec, TargetStats
from clerc.model.clerc import build_encoder
from clerc.model.config import ModelConfig


class BaselineModel(nn.Module):
    """``encoders[modality]`` (CLERC's) and ``heads[task name]`` (``Linear(embed_dim, 1)``).

    The encoder sits in a one-entry ``encoders`` dict, as in ``CLERC``, so that
    ``clerc.model.init.load_pretrained`` initialises it unchanged.
    """

    def __init__(self, modality: str, cfg: ModelConfig, heads: Sequence[HeadSpec]) -> None:
        super().__init__()
        if not heads:
            raise ValueError(f"baseline for {modality}: needs at least one head")
        self.modality, self.cfg, self.specs = modality, cfg, tuple(heads)
        self.encoders = nn.ModuleDict({modality: build_encoder(modality, cfg)})
        self.heads = nn.ModuleDict({h.name: nn.Linear(cfg.embed_dim, 1) for h in self.specs})

    @property
    def encoder(self) -> nn.Module:
        return self.encoders[self.modality]

    def forward(self, x: Tensor) -> Tensor:
        """Inputs of the modality -> ``(B, K)`` raw outputs (logits / standardised values)."""
        z = self.encoder(x)
        return torch.cat([self.heads[h.name](z) for h in self.specs], dim=1)


def masked_loss(
    outputs: Tensor, targets: Tensor, specs: Sequence[HeadSpec], stats: TargetStats
) -> tuple[Tensor, dict[str, float]]:
    """Mean over heads with labels in the batch of BCE (binary) or MSE (regression).

    ``targets`` ``(B, K)`` hold raw labels with NaN where missing; regression targets are
    standardised here with ``stats``. Returns the loss and each head's loss (floats).
    """
    if outputs.shape != targets.shape or outputs.shape[1] != len(specs):
        raise ValueError(
            f"masked_loss: outputs {tuple(outputs.shape)} and targets "
            f"{tuple(targets.shape)} must both be (B, {len(specs)})"
        )
    losses: list[Tensor] = []
    per_head: dict[str, float] = {}
    for k, spec in enumerate(specs):
        mask = torch.isfinite(targets[:, k])
        if not bool(mask.any()):
            continue
        out, y = outputs[mask, k].float(), targets[mask, k].float()
        if spec.kind == "binary":
            pw = torch.tensor(stats.pos_weight[k], device=out.device)
            loss = F.binary_cross_entropy_with_logits(out, y, pos_weight=pw)
        else:
            loss = F.mse_loss(out, (y - stats.mean[k]) / stats.std[k])
        losses.append(loss)
        per_head[spec.name] = float(loss.detach())
    if not losses:
        return outputs.sum() * 0.0, per_head
    return torch.stack(losses).mean(), per_head


def to_scores(
    outputs: Tensor | np.ndarray, specs: Sequence[HeadSpec], stats: TargetStats
) -> np.ndarray:
    """Raw outputs ``(N, K)`` -> scores: probabilities (binary), values in label units
    (regression, de-standardised)."""
    if isinstance(outputs, Tensor):
        outputs = outputs.detach().float().cpu().numpy()
    out = np.asarray(outputs, dtype=np.float64)
    scores = np.empty_like(out)
    for k, spec in enumerate(specs):
        if spec.kind == "binary":
            scores[:, k] = 1.0 / (1.0 + np.exp(-out[:, k]))
        else:
            scores[:, k] = out[:, k] * stats.std[k] + stats.mean[k]
    return scores
