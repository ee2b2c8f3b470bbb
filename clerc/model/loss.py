"""CLERC's loss: the sum of CLIP losses over every pair of modalities present in a batch.

Pure functions of embeddings, presence masks and the logit multiplier; the distributed
gather lives in ``clerc.train.distributed``.
"""

from __future__ import annotations

from itertools import combinations

import torch
import torch.nn.functional as F
from torch import Tensor


def pair_name(a: str, b: str) -> str:
    """Key of a modality pair in the per-pair loss dict (modality names use ``_``, not ``-``)."""
    return f"{a}-{b}"


def clip_loss(a: Tensor, b: Tensor, logit_scale: Tensor | float) -> Tensor:
    """Symmetric cross-entropy of ``scale * a @ b.T`` with row ``i`` matching row ``i``.

    ``a`` and ``b`` are ``(N, D)`` (normally L2-normalised); ``logit_scale`` is the multiplier
    (``exp`` of the log parameter), as open_clip's ``ClipLoss``.
    """
    if a.dim() != 2 or a.shape != b.shape:
        raise ValueError(
            f"clip_loss expects two (N, D) tensors of equal shape, got {tuple(a.shape)} "
            f"and {tuple(b.shape)}"
        )
    logits = logit_scale * a @ b.T
    labels = torch.arange(a.shape[0], device=a.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def _check(embeddings: dict[str, Tensor], present: dict[str, Tensor]) -> int:
    """Validate shapes; return the batch size."""
    sizes = {m: e.shape[0] for m, e in embeddings.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"clerc_loss: embeddings must share the batch size, got {sizes}")
    for m, e in embeddings.items():
        if m not in present:
            raise ValueError(f"clerc_loss: no presence mask for modality {m!r}")
        mask = present[m]
        if mask.dtype != torch.bool or mask.shape != (e.shape[0],):
            raise ValueError(
                f"clerc_loss: present[{m!r}] must be a bool tensor of shape ({e.shape[0]},), "
                f"got {mask.dtype} {tuple(mask.shape)}"
            )
    return next(iter(sizes.values()), 0)


def clerc_loss(
    embeddings: dict[str, Tensor],
    present: dict[str, Tensor],
    logit_scale: Tensor | float,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Sum over unordered modality pairs of the CLIP loss on the rows that have both.

    Row ``i`` of every ``embeddings[m]`` (``(B, D)``) is patient ``i``; rows where
    ``present[m]`` is False hold padding and are excluded. A pair with fewer than two
    shared rows is skipped (absent from the per-pair dict). When no pair qualifies the
    total is a zero that still requires grad (so ``backward`` works on every rank).
    Pairs follow the insertion order of ``embeddings``. Masks on the CPU avoid device syncs.
    """
    _check(embeddings, present)
    per_pair: dict[str, Tensor] = {}
    for a, b in combinations(list(embeddings), 2):
        both = present[a] & present[b]
        n = int(both.sum())
        if n < 2:
            continue
        if n == both.numel():
            ea, eb = embeddings[a], embeddings[b]
        else:
            idx = both.nonzero().squeeze(1).to(embeddings[a].device)
            ea, eb = embeddings[a].index_select(0, idx), embeddings[b].index_select(0, idx)
        per_pair[pair_name(a, b)] = clip_loss(ea, eb, logit_scale)
    if per_pair:
        return torch.stack(list(per_pair.values())).sum(), per_pair
    return _zero(embeddings, logit_scale), per_pair


def _zero(embeddings: dict[str, Tensor], logit_scale: Tensor | float) -> Tensor:
    """A zero connected to the graph (empty sums: NaN padding rows cannot leak in)."""
    total = torch.zeros(())
    for e in embeddings.values():
        total = total.to(e.device, e.dtype) + e[:0].sum()
    if isinstance(logit_scale, Tensor):
        total = total + logit_scale.reshape(-1)[:0].sum()
    if not total.requires_grad:
        total.requires_grad_(True)
    return total
