"""``clerc train``: train CLERC on a manifest.

    clerc train --data DIR --config tiny --out runs/tiny
    clerc train --data DIR --config paper --out runs/paper --resume
    torchrun --nproc-per-node 8 -m clerc.cli train --data DIR --config paper --out runs/p8

Under ``torchrun`` each rank takes its own batches of ``batch_size`` (the global batch is
``batch_size x world``; the loss sees all of it) and only rank 0 writes ``RUN_DIR``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from clerc.argtypes import at_least

    parser.add_argument(
        "--data",
        required=True,
        metavar="DIR",
        help="manifest directory (uses DIR/packed when `clerc prepare` wrote it)",
    )
    parser.add_argument(
        "--config",
        default="tiny",
        metavar="demo|tiny|paper|FILE.toml",
        help="a preset or a TOML file (see configs/); default: tiny",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="RUN_DIR",
        help="writes ckpt.pt (best epoch), last.pt and log.jsonl here",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in RUN_DIR from last.pt"
    )
    parser.add_argument(
        "--init",
        action="append",
        default=[],
        metavar="ENCODER=PATH",
        help="start an encoder from pretrained weights (repeatable), "
        "e.g. echo_video=r2plus1d_18.pth",
    )
    parser.add_argument(
        "--allow-random-init",
        action="store_true",
        help="with the paper's encoders, train those without --init from "
        "random weights (refused otherwise; the paper starts from "
        "Kinetics-400 and CLIP weights)",
    )
    parser.add_argument(
        "--epochs", type=at_least(1), default=None, help="override the config's epochs"
    )
    parser.add_argument(
        "--max-steps-per-epoch",
        type=at_least(1),
        default=None,
        metavar="N",
        help="cap the training steps of an epoch (for CI)",
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--stop-after-epoch", type=int, default=None, help=argparse.SUPPRESS)


def parse_init(items: list[str]) -> dict[str, str]:
    """``["echo_video=PATH", ...]`` -> ``{"echo_video": "PATH"}``; malformed items are named."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, path = item.partition("=")
        if not sep or not key or not path:
            raise ValueError(f"--init {item!r}: expected ENCODER=PATH, e.g. echo_video=weights.pth")
        if key in out:
            raise ValueError(f"--init {key}: given twice")
        out[key] = path
    return out


def run(args: argparse.Namespace) -> int:
    import torch

    from clerc.model.init import random_init_warning
    from clerc.train.config import load_config
    from clerc.train.trainer import train

    cfg = load_config(args.config)
    overrides = {"epochs": args.epochs, "max_steps_per_epoch": args.max_steps_per_epoch}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    init = parse_init(args.init)
    warning = (
        None
        if args.resume
        else random_init_warning(
            cfg.model, cfg.modalities, init, allow_random=args.allow_random_init
        )
    )
    if warning and int(os.environ.get("RANK", "0")) == 0:
        print(warning, file=sys.stderr)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    records = train(
        cfg,
        args.data,
        args.out,
        device=device,
        resume=args.resume,
        init=init,
        progress=not args.no_progress,
        stop_after_epoch=args.stop_after_epoch,
    )
    if records and int(os.environ.get("RANK", "0")) == 0:  # under torchrun rank 0 reports
        best = min(records, key=lambda r: r["val_loss"])
        print(f"best epoch {best['epoch']}: val loss {best['val_loss']:.4f} -> {args.out}/ckpt.pt")
    return 0
