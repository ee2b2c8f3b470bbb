"""torch.distributed helpers: process-group setup for torchrun and a gather with gradients.

The contrastive loss is computed on embeddings gathered from every rank, so each rank's
batch of B sees B x world negatives. Gradient scaling, exactly: every rank computes the
same loss ``L`` on the full gathered batch; ``all_gather``'s backward sums the incoming
gradients over ranks (reduce-scatter), so a rank's local embeddings receive
``world * dL/dx_local``; DistributedDataParallel then averages parameter gradients over
ranks, which divides that factor out. The result is exactly ``dL/dtheta`` of one process
on the concatenated batch (rank 0's rows first), with the same loss value.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import Tensor

from clerc.model.loss import clerc_loss


def is_distributed() -> bool:
    """True when a default process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def init_from_env(device: str | None = None) -> tuple[int, int, int]:
    """Initialise from torchrun's environment; returns ``(rank, world_size, local_rank)``.

    ``device`` is ``"cuda"`` (backend NCCL, one GPU per local rank), ``"cpu"`` (gloo) or
    ``None`` (CUDA when available). Without torchrun's ``WORLD_SIZE`` (or with 1) nothing is
    initialised and ``(0, 1, 0)`` comes back. The caller picks ``cuda:local_rank``.
    """
    if device not in (None, "cpu", "cuda"):
        raise ValueError(f"init_from_env: device must be 'cpu', 'cuda' or None, got {device!r}")
    cuda = torch.cuda.is_available() if device is None else device == "cuda"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if world < 1:
        raise ValueError(f"WORLD_SIZE must be >= 1, got {world}")
    if world == 1 or is_distributed():
        return rank(), world_size(), local if is_distributed() else 0
    if cuda:
        torch.cuda.set_device(local)
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return rank(), world_size(), local


def shutdown() -> None:
    """Destroy the process group if one is initialised."""
    if is_distributed():
        dist.destroy_process_group()


def gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` from every rank along dim 0 (rank order); gradients reach each shard.

    Identity when not distributed. Every rank must pass the same shape.
    """
    if not is_distributed() or world_size() == 1:
        return x
    return torch.cat(dist_fn.all_gather(x), dim=0)


def gather_no_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` (any dtype, bool included) from every rank, without gradients."""
    if not is_distributed() or world_size() == 1:
        return x
    send = x.to(torch.uint8) if x.dtype == torch.bool else x.contiguous()
    parts = [torch.empty_like(send) for _ in range(world_size())]
    dist.all_gather(parts, send)
    out = torch.cat(parts, dim=0)
    return out.bool() if x.dtype == torch.bool else out


def distributed_clerc_loss(
    embeddings: dict[str, Tensor],
    present: dict[str, Tensor],
    logit_scale: Tensor | float,
) -> tuple[Tensor, dict[str, Tensor]]:
    """``clerc_loss`` over the batch gathered from every rank (see the module doc for scaling).

    Every rank must pass the same modalities in the same order. The masks are moved to the
    embeddings' device for the gather (NCCL needs device tensors); counting them then
    synchronises, once per pair.
    """
    missing = [m for m in embeddings if m not in present]
    if missing:
        raise ValueError(f"distributed_clerc_loss: no presence mask for modalities {missing}")
    if not is_distributed():
        return clerc_loss(embeddings, present, logit_scale)
    gathered = {m: gather_with_grad(e) for m, e in embeddings.items()}
    masks = {m: gather_no_grad(present[m].to(embeddings[m].device)) for m in embeddings}
    return clerc_loss(gathered, masks, logit_scale)
