"""Training throughput: samples/s, MFU, peak memory and data-wait share of CLERC steps.

FLOPs of one training step (forward + backward, every configured modality present in every
row) are counted with ``torch.utils.flop_counter.FlopCounterMode``; batches from ``--data``
lack some modalities, so their FLOPs are that count scaled by the forward FLOPs of the rows
they hold (``flops_per_step`` is the mean over the timed steps); MFU = FLOPs per step /
step time / ``--peak-flops`` (default 790e12, an H200's dense bf16). Steps are the
trainer's own :func:`~clerc.train.trainer.train_step`.

    python benchmarks/throughput.py --config paper --device cuda            # synthetic batches
    python benchmarks/throughput.py --config paper --device cuda --data DIR  # real loader
    python benchmarks/throughput.py --config tiny --device cpu --steps 5

Synthetic batches live in (pinned) host memory and are copied to the device each step, as
the loader's are; with ``--data`` the batches come from the training loader, and the data
wait is the time spent blocked on it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import time
from typing import Any

import torch

from clerc.model.clerc import CLERC, channels_last_3d, encoder_key, example_input
from clerc.model.loss import clerc_loss
from clerc.train.config import TrainConfig, load_config
from clerc.train.data import Batch
from clerc.train.trainer import BatchEncoder, make_optimizer, train_step

H200_BF16_PEAK = 790e12


def synthetic_batch(cfg: TrainConfig, batch_size: int, *, pin: bool) -> Batch:
    """Random inputs of the config's shapes; every modality present in every row."""
    g = torch.Generator().manual_seed(0)
    inputs: dict[str, torch.Tensor] = {}
    for m in cfg.modalities:
        x = example_input(encoder_key(m), cfg.model, batch=batch_size)
        if x.dtype == torch.uint8:
            x = torch.randint(0, 256, x.shape, generator=g, dtype=torch.uint8)
        elif x.dtype == torch.long:
            x = torch.randint(1, 49405, x.shape, generator=g)
            x[:, -1] = 49407  # end-of-text token, where the text encoder pools
        else:
            x = torch.randn(x.shape, generator=g)
        inputs[m] = x.pin_memory() if pin else x
    present = {m: torch.ones(batch_size, dtype=torch.bool) for m in cfg.modalities}
    return Batch(inputs, present, batch_size)


def count_step_flops(net: BatchEncoder, optimizer: Any, batch: Batch, cfg: TrainConfig,
                     device: torch.device) -> int:
    """FLOPs of one training step (forward, loss, backward; the optimizer is negligible)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        train_step(net, optimizer, batch, cfg, device, clerc_loss)
    return int(counter.get_total_flops())


def forward_flops(cfg: TrainConfig) -> dict[str, int]:
    """Forward FLOPs of one sample of each modality (counted on the meta device)."""
    from clerc.model.clerc import encoder_flops

    per_encoder = encoder_flops(cfg.model)
    return {m: per_encoder[encoder_key(m)] for m in cfg.modalities}


def batches(cfg: TrainConfig, args: argparse.Namespace, device: torch.device) -> Any:
    """An endless iterator of ``(batch, epoch_start)``: synthetic batches, or the training
    loader's (``epoch_start`` is True for the first batch of each pass over the loader,
    whose wait includes starting the worker processes)."""
    if args.data is None:
        batch = synthetic_batch(cfg, cfg.batch_size, pin=device.type == "cuda")
        while True:
            yield batch, False
    from clerc.train.data import make_loaders

    loader, _ = make_loaders(args.data, cfg, pin_memory=device.type == "cuda")
    epoch = 0
    while True:
        loader.batch_sampler.set_epoch(epoch)
        for i, batch in enumerate(loader):
            yield batch, i == 0
        epoch += 1


def measure(cfg: TrainConfig, args: argparse.Namespace) -> dict[str, Any]:
    """Warm up, count FLOPs, then time ``args.steps`` steps.

    ``data_wait_share`` is the time blocked on the next batch over the timed wall time;
    ``data_wait_share_steady`` leaves out the first batch of each pass over the loader
    (worker start-up, paid once per epoch: negligible at the paper's ~10k steps per epoch,
    not in a short run over a small cohort); ``present_fraction`` is the mean share of rows
    holding each modality (real batches lack some). On CUDA the steps run asynchronously,
    so a wait while the device still works through queued kernels counts too: the share
    is an upper bound on the device's idle time.
    """
    device = torch.device(args.device)
    torch.manual_seed(cfg.seed)
    model = CLERC(cfg.model).to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        channels_last_3d(model)
    net = BatchEncoder(model, cfg.modalities)
    optimizer = make_optimizer(model, cfg)
    fwd = forward_flops(cfg)
    full_fwd = sum(cfg.batch_size * fwd[m] for m in cfg.modalities)
    counted = count_step_flops(net, optimizer, synthetic_batch(cfg, cfg.batch_size, pin=False),
                               cfg, device)
    it = batches(cfg, args, device)
    try:
        for _ in range(args.warmup):
            train_step(net, optimizer, next(it)[0], cfg, device, clerc_loss)
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        sync()
        waits: list[tuple[float, bool]] = []
        rows = {m: 0 for m in cfg.modalities}
        t0 = time.perf_counter()
        for _ in range(args.steps):
            w0 = time.perf_counter()
            batch, start = next(it)
            waits.append((time.perf_counter() - w0, start))
            for m in batch.present:
                rows[m] = rows.get(m, 0) + int(batch.present[m].sum())
            train_step(net, optimizer, batch, cfg, device, clerc_loss)
        sync()
        seconds = time.perf_counter() - t0
    finally:
        it.close()  # shuts the loader's worker processes down
    step = seconds / args.steps
    # a real batch lacks some modalities: scale the full batch's counted FLOPs by the
    # forward FLOPs of the rows it actually holds
    rows_fwd = sum(n * fwd[m] for m, n in rows.items() if m in fwd)
    flops = counted * rows_fwd / (full_fwd * args.steps)
    peak_mem = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    wait = sum(w for w, _ in waits)
    start_wait = sum(w for w, s in waits if s)
    return {
        "config": args.config, "device": str(device), "batch_size": cfg.batch_size,
        "modalities": len(cfg.modalities), "steps": args.steps, "warmup": args.warmup,
        "data": args.data,
        "num_workers": cfg.num_workers if args.data else None,
        "step_seconds": step, "samples_per_s": cfg.batch_size / step,
        "flops_per_step": flops, "flops_per_sample": flops / cfg.batch_size,
        "step_flops_per_forward_flop": counted / full_fwd,
        "achieved_flops_per_s": flops / step, "peak_flops": args.peak_flops,
        "mfu": flops / step / args.peak_flops, "peak_memory_bytes": int(peak_mem),
        "peak_memory_kind": "cuda max allocated" if device.type == "cuda" else "process max RSS",
        "data_wait_share": wait / seconds,
        "data_wait_share_steady": (wait - start_wait) / max(seconds - start_wait, 1e-12),
        "epoch_starts_timed": sum(s for _, s in waits),
        "max_wait_seconds": max(w for w, _ in waits),
        "present_fraction": {m: n / (cfg.batch_size * args.steps) for m, n in rows.items()},
        "amp": cfg.amp if device.type == "cuda" else "none",
        "threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="tiny", help="tiny | paper | FILE.toml")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--data", default=None, help="a manifest directory (default: synthetic)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--peak-flops", type=float, default=H200_BF16_PEAK)
    p.add_argument("--json", default=None, help="also write the numbers to this file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    if args.batch_size:
        cfg = dataclasses.replace(cfg, batch_size=args.batch_size)
    cfg = dataclasses.replace(cfg, num_workers=cfg.num_workers if args.data else 0)
    out = measure(cfg, args)
    for k, v in out.items():
        print(f"{k:>22}: {v:.4g}" if isinstance(v, float) else f"{k:>22}: {v}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
