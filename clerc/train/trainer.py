"""The CLERC training loop (paper, Methods: Model training).

The config's optimiser (the paper's SGD with momentum), the learning rate of
:func:`~clerc.train.config.lr_at` each epoch, the sum of CLIP losses over every modality
pair present in a batch, validation loss after every epoch; ``RUN_DIR/ckpt.pt`` holds the
epoch with the lowest validation loss, ``RUN_DIR/last.pt`` the latest (with optimizer and
RNG states, for ``--resume``), ``RUN_DIR/log.jsonl`` one line per epoch.

Under ``torchrun`` the model is wrapped in ``DistributedDataParallel`` with
``find_unused_parameters=True``: batches are grouped by modality set, so an encoder is
often unused on a rank for a step, and running every encoder on zero inputs would waste
the compute the grouping saves. Embeddings are gathered with gradients for the loss (every
rank's batch sees the global batch as negatives); only rank 0 writes files. Validation
batches are dealt round-robin across ranks, scored locally, and the sums all-reduced.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn

from clerc.model.clerc import CLERC
from clerc.train.common import Bar, autocast, build_optimizer, decay_groups, set_lr
from clerc.train.config import TrainConfig, lr_at
from clerc.train.data import Batch
from clerc.train.state import (
    append_log,
    read_log,
    rng_state,
    seed_everything,
    set_rng_state,
    write_log,
)

CKPT, LAST, LOG = "ckpt.pt", "last.pt", "log.jsonl"


def pair_keys(modalities: tuple[str, ...]) -> list[str]:
    """Every pair key the loss can report for ``modalities`` (in the loss's order)."""
    from clerc.model.loss import pair_name

    return [pair_name(a, b) for a, b in combinations(modalities, 2)]


@dataclass
class Meter:
    """Running sums of the loss and each pair's loss (tensors: no device sync per step).

    ``keys`` are every possible pair, so all ranks all-reduce tensors of the same size.
    """

    keys: list[str]
    total: Tensor | float = 0.0
    steps: int = 0
    pairs: dict[str, list[Any]] = field(default_factory=dict)

    def add(self, loss: Tensor, pairs: dict[str, Tensor]) -> None:
        self.total = self.total + loss.detach().float()
        self.steps += 1
        for k, v in pairs.items():
            acc = self.pairs.setdefault(k, [0.0, 0])
            acc[0] = acc[0] + v.detach().float()
            acc[1] += 1

    def means(self, dist: Any) -> tuple[float, dict[str, float]]:
        """Mean total and per-pair losses, summed over ranks when ``dist`` is initialised."""
        keys = self.keys
        vals = [float(self.total), float(self.steps)]
        for k in keys:
            acc = self.pairs.get(k, [0.0, 0])
            vals += [float(acc[0]), float(acc[1])]
        t = torch.tensor(vals, dtype=torch.float64)
        if dist is not None:
            nccl = dist.get_backend() == "nccl"
            t = t.cuda() if nccl else t
            dist.all_reduce(t)
            t = t.cpu()
        loss = float(t[0] / t[1]) if t[1] > 0 else math.nan
        pairs = {
            k: float(t[2 + 2 * i] / t[3 + 2 * i]) for i, k in enumerate(keys) if t[3 + 2 * i] > 0
        }
        return loss, pairs


class BatchEncoder(nn.Module):
    """What DDP wraps: embeds every configured modality of a batch and returns the logit
    multiplier, so that every parameter the loss uses is reached from ``forward``'s output.

    Rows without the modality are not encoded; their embedding rows are zeros, excluded
    by the ``present`` masks. A modality absent from the whole batch gets a zero block.
    """

    model: CLERC

    def __init__(self, model: CLERC, modalities: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.modalities = modalities

    def forward(
        self, inputs: dict[str, Tensor], present: dict[str, Tensor], size: int
    ) -> tuple[dict[str, Tensor], Tensor]:
        device = self.model.logit_scale.device
        dim = self.model.cfg.embed_dim
        # zero blocks stay in the graph: under DDP every rank must run the same gathers'
        # backward (all-to-all) whether or not it had the modality
        zero = torch.zeros(size, dim, device=device) + self.model.logit_scale * 0
        out: dict[str, Tensor] = {}
        for m in self.modalities:
            mask = present.get(m)
            if mask is None or not bool(mask.any()):
                out[m] = zero
                continue
            if bool(mask.all()):
                out[m] = self.model.encode(m, _to(inputs[m], device)).float()
                continue
            # a mixed batch: the subset is a new host tensor; pinned, its copy stays async
            idx = mask.nonzero().squeeze(1)
            z = self.model.encode(m, _to(inputs[m][idx], device)).float()
            out[m] = zero.index_copy(0, _to(idx, device), z)
        return out, self.model.scale()


def _to(x: Tensor, device: torch.device) -> Tensor:
    """Copy to ``device`` without blocking the host: CUDA copies go from pinned memory."""
    if device.type == "cuda" and not x.is_pinned():
        x = x.pin_memory()
    return x.to(device, non_blocking=True)


def full_present(batch: Batch, modalities: tuple[str, ...]) -> dict[str, Tensor]:
    """Presence masks for every configured modality (all False where absent from the batch)."""
    empty = torch.zeros(batch.size, dtype=torch.bool)
    return {m: batch.present.get(m, empty) for m in modalities}


def timed(loader: Any) -> Iterator[tuple[Batch, float]]:
    """Batches of ``loader`` with the seconds spent waiting for each."""
    it = iter(loader)
    while True:
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            return
        yield batch, time.perf_counter() - t0


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The config's optimiser over the encoders, and over the logit scale at
    ``logit_scale_lr_factor`` x lr; no weight decay on biases, norms and the scale."""
    rest = [p for n, p in model.named_parameters() if n != "logit_scale"]
    scale = [model.get_parameter("logit_scale")]
    return build_optimizer(decay_groups(rest) + decay_groups(scale, cfg.logit_scale_lr_factor), cfg)


def epoch_record(
    epoch: int,
    cfg: TrainConfig,
    train: tuple[float, dict[str, float]],
    val: tuple[float, dict[str, float]],
    temperature: float,
    timing: dict[str, float],
) -> dict[str, Any]:
    """One ``log.jsonl`` line."""
    return {
        "epoch": epoch,
        "lr": lr_at(epoch + 0.5, cfg),
        "train_loss": train[0],
        "val_loss": val[0],
        "train_pairs": train[1],
        "val_pairs": val[1],
        "temperature": temperature,
        **timing,
    }


@dataclass
class Run:
    """Everything one training run holds."""

    cfg: TrainConfig
    out: Path
    device: torch.device
    rank: int
    world: int
    dist: Any  # torch.distributed when world > 1, else None
    model: Any  # CLERC
    encoder: BatchEncoder
    net: nn.Module  # encoder, or DDP(encoder)
    optimizer: torch.optim.Optimizer
    train_loader: Any
    val_loader: Any
    header: dict[str, Any]
    bar: Bar

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def train_step(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    cfg: TrainConfig,
    device: torch.device,
    loss_fn: Any,
) -> tuple[Tensor, dict[str, Tensor]]:
    """One SGD step on ``batch``; ``net`` is a :class:`BatchEncoder` (or DDP of one)."""
    present = full_present(batch, cfg.modalities)
    with autocast(device, cfg):
        emb, scale = net(batch.inputs, present, batch.size)
    loss, pairs = loss_fn(emb, present, scale)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    inner = net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net
    cast(BatchEncoder, inner).model.clamp_logit_scale_()
    return loss, pairs


def train_epoch(run: Run, epoch: int) -> tuple[tuple[float, dict[str, float]], dict[str, float]]:
    """One pass over the training batches; returns (loss, per-pair losses) and timings."""
    cfg, dev = run.cfg, run.device
    loss_fn = _loss_fn(run)
    run.net.train()
    run.train_loader.batch_sampler.set_epoch(epoch)
    meter = Meter(pair_keys(cfg.modalities))
    n_steps = len(run.train_loader.batch_sampler)
    run.bar.epoch(epoch, n_steps)
    wait, samples, t0, shown = 0.0, 0, time.perf_counter(), time.perf_counter()
    for step, (batch, waited) in enumerate(timed(run.train_loader)):
        set_lr(run.optimizer, lr_at(epoch + (step + 1) / n_steps, cfg))
        wait += waited
        loss, pairs = train_step(run.net, run.optimizer, batch, cfg, dev, loss_fn)
        meter.add(loss, pairs)
        samples += batch.size * run.world
        now = time.perf_counter()
        refresh = now - shown > 0.5
        shown = now if refresh else shown
        run.bar.step(loss, samples / max(now - t0, 1e-9), refresh=refresh)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0
    timing = {
        "train_seconds": seconds,
        "steps": meter.steps,
        "samples": samples,
        "samples_per_s": samples / seconds if seconds else 0.0,
        "data_wait_share": wait / seconds if seconds else 0.0,
    }
    return meter.means(run.dist), timing


@torch.no_grad()
def validate(run: Run) -> tuple[float, dict[str, float]]:
    """Mean validation loss over batches with at least one pair (local loss per batch)."""
    from clerc.model.loss import clerc_loss

    sync_buffers(run.model, run.dist)
    run.encoder.eval()
    meter = Meter(pair_keys(run.cfg.modalities))
    for batch, _ in timed(run.val_loader):
        present = full_present(batch, run.cfg.modalities)
        with autocast(run.device, run.cfg):
            emb, scale = run.encoder(batch.inputs, present, batch.size)
        loss, pairs = clerc_loss(emb, present, scale)
        if pairs:
            meter.add(loss, pairs)
    return meter.means(run.dist)


def sync_buffers(model: nn.Module, dist: Any) -> None:
    """Give every rank rank 0's buffers (batch-norm running statistics) when ``dist`` is set.

    DDP broadcasts them only at the start of each training forward, so after an epoch every
    rank holds statistics updated by its own last batch; validation must score, on every
    rank, the model rank 0 saves.
    """
    if dist is None:
        return
    for buf in model.buffers():
        dist.broadcast(buf, src=0)


def _loss_fn(run: Run) -> Any:
    if run.world > 1:
        from clerc.train.distributed import distributed_clerc_loss

        return distributed_clerc_loss
    from clerc.model.loss import clerc_loss

    return clerc_loss


def setup(
    cfg: TrainConfig,
    data_dir: Path,
    out: Path,
    *,
    device: str,
    init: dict[str, str] | None,
    progress: bool,
) -> Run:
    """Process group (under torchrun), loaders, model, optimizer, and the header base."""
    from clerc.data.manifest import manifest_hash
    from clerc.model.clerc import CLERC, channels_last_3d
    from clerc.train import distributed
    from clerc.train.data import make_loaders

    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    kind = torch.device(device).type
    _, _, local = distributed.init_from_env("cuda" if kind == "cuda" else "cpu")
    dev = torch.device("cuda", local) if device == "cuda" else torch.device(device)
    rank, world = distributed.rank(), distributed.world_size()
    dist = torch.distributed if world > 1 else None
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    train_loader, val_loader = make_loaders(
        data_dir, cfg, rank=rank, world_size=world, pin_memory=dev.type == "cuda"
    )
    seed_everything(cfg.seed)
    model = CLERC(cfg.model)
    if init:
        from clerc.model.init import load_pretrained

        for key, rep in load_pretrained(model, init).items():
            if rank == 0:
                print(f"init {key}: {rep.loaded} tensors from {rep.path}")
    model.to(dev)
    if dev.type == "cuda":
        channels_last_3d(model)
    encoder = BatchEncoder(model, cfg.modalities)
    net: nn.Module = encoder
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            encoder,
            device_ids=[dev.index] if dev.type == "cuda" else None,
            find_unused_parameters=True,
        )
    optimizer = make_optimizer(model, cfg)
    header = {
        "config": cfg.to_dict(),
        "manifest_hash": manifest_hash(data_dir),
        "data": str(data_dir.resolve()),
        "world_size": world,
        "init": dict(init or {}),
    }
    return Run(
        cfg,
        out,
        dev,
        rank,
        world,
        dist,
        model,
        encoder,
        net,
        optimizer,
        train_loader,
        val_loader,
        header,
        Bar(progress and rank == 0),
    )


def resume_from(run: Run) -> tuple[int, float, int]:
    """Load ``last.pt`` into the run; returns (next epoch, best val loss, best epoch)."""
    from clerc.train.checkpoint import load_checkpoint

    path = run.out / LAST
    if not path.is_file():
        raise FileNotFoundError(f"{path}: --resume needs the last checkpoint of an earlier run")
    state, header = load_checkpoint(path)
    _check_same_run(header, run, path)
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    set_rng_state(state["rng"])
    epoch = int(header["epoch"])
    if run.is_main:
        write_log(run.out / LOG, read_log(run.out / LOG, through_epoch=epoch))
    return epoch + 1, float(header["best_val_loss"]), int(header["best_epoch"])


def _check_same_run(saved: dict[str, Any], run: Run, path: Path) -> None:
    """A resumed run must use the same data and config (the epoch count may change)."""
    if saved.get("manifest_hash") != run.header["manifest_hash"]:
        raise ValueError(
            f"{path}: was trained on a different manifest "
            f"({saved.get('manifest_hash')} != {run.header['manifest_hash']})"
        )
    before = TrainConfig.from_dict(saved["config"])
    diff = [
        f.name
        for f in dataclasses.fields(TrainConfig)
        if f.name != "epochs" and getattr(before, f.name) != getattr(run.cfg, f.name)
    ]
    if diff:
        raise ValueError(f"{path}: config differs from this run's in {diff}")


def save(run: Run, name: str, epoch: int, best: tuple[float, int], *, full: bool) -> None:
    """Write ``name`` in the run directory; ``full`` adds optimizer and RNG states."""
    from clerc.train.checkpoint import make_header, save_checkpoint

    state: dict[str, Any] = {"model": run.model.state_dict()}
    if full:
        state |= {"optimizer": run.optimizer.state_dict(), "rng": rng_state()}
    extra = {k: v for k, v in run.header.items() if k not in ("config", "manifest_hash")}
    header = make_header(
        run.header["config"],
        run.header["manifest_hash"],
        epoch,
        best_val_loss=best[0],
        best_epoch=best[1],
        **extra,
    )
    save_checkpoint(run.out / name, state, header)


def train(
    cfg: TrainConfig,
    data_dir: str | Path,
    out: str | Path,
    *,
    device: str = "cpu",
    resume: bool = False,
    init: dict[str, str] | None = None,
    progress: bool = True,
    stop_after_epoch: int | None = None,
) -> list[dict[str, Any]]:
    """Train CLERC on the manifest in ``data_dir``; returns the epoch records of the run.

    ``stop_after_epoch`` ends the process's work after that epoch's checkpoints are written
    (as if it had been killed there), for testing ``resume``.
    """
    out, data_dir = Path(out), Path(data_dir)
    if not resume and (out / LAST).exists():
        raise FileExistsError(
            f"{out / LAST}: the run directory holds a run; pass --resume "
            "to continue it or choose another --out"
        )
    run = setup(cfg, data_dir, out, device=device, init=init, progress=progress)
    if run.is_main:
        out.mkdir(parents=True, exist_ok=True)
    start, best, best_epoch = resume_from(run) if resume else (0, math.inf, -1)
    try:
        for epoch in range(start, cfg.epochs):
            train_stats, timing = train_epoch(run, epoch)
            t0 = time.perf_counter()
            val = validate(run)
            timing["val_seconds"] = time.perf_counter() - t0
            if val[0] < best:
                best, best_epoch = val[0], epoch
                if run.is_main:
                    save(run, CKPT, epoch, (best, best_epoch), full=False)
            if run.is_main:
                temperature = float(run.model.temperature().detach())
                append_log(
                    out / LOG, epoch_record(epoch, cfg, train_stats, val, temperature, timing)
                )
                save(run, LAST, epoch, (best, best_epoch), full=True)
            if stop_after_epoch is not None and epoch >= stop_after_epoch:
                break
        if run.dist is not None:
            run.dist.barrier()  # the other ranks return the log once rank 0 has written it
    finally:
        run.bar.close()
        if run.world > 1:
            from clerc.train.distributed import shutdown

            shutdown()
    return read_log(out / LOG)
