"""``clerc baselines``: train the supervised single-modality baselines, or predict with them.

``clerc baselines train --data DIR --config tiny --out RUNS`` trains one model per
diagnostic modality that has labelled samples into ``RUNS/<modality>/ckpt.pt``, then
writes ``RUNS/predictions.parquet`` (test split). ``clerc baselines predict --runs RUNS
--data DIR`` re-creates the predictions from saved checkpoints. Score them with
``clerc benchmark ... --supervised RUNS/predictions.parquet``.
"""

from __future__ import annotations

import argparse

MODALITY_CHOICES = ("echo_video", "ecg_waveform", "angio_video", "cxr_image")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from clerc.argtypes import at_least

    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    t = sub.add_parser(
        "train",
        help="train the baselines, then predict the test split",
        description="train the baselines, then predict the test split",
    )
    t.add_argument(
        "--data",
        required=True,
        metavar="DIR",
        help="manifest directory (uses DIR/packed when `clerc prepare` wrote it)",
    )
    t.add_argument(
        "--config",
        default="tiny",
        metavar="demo|tiny|paper|FILE.toml",
        help="the CLERC train config whose model sizes and optimiser to use",
    )
    t.add_argument(
        "--out",
        required=True,
        metavar="RUNS",
        help="writes RUNS/<modality>/ckpt.pt, log.jsonl and RUNS/predictions.parquet",
    )
    t.add_argument(
        "--modalities",
        nargs="+",
        choices=MODALITY_CHOICES,
        default=None,
        help="default: every diagnostic modality with labelled samples",
    )
    t.add_argument(
        "--init",
        action="append",
        default=[],
        metavar="ENCODER=PATH",
        help="start an encoder from pretrained weights (repeatable)",
    )
    t.add_argument("--epochs", type=at_least(1), default=None, help="override the config's epochs")
    t.add_argument(
        "--max-steps-per-epoch",
        type=at_least(1),
        default=None,
        metavar="N",
        help="cap the training steps of an epoch",
    )
    t.add_argument(
        "--max-gap-days",
        type=float,
        default=365.0,
        help="largest time between a sample and a label of another study",
    )
    _common(t)
    p = sub.add_parser(
        "predict",
        help="predictions.parquet from saved checkpoints",
        description="predictions.parquet from saved checkpoints",
    )
    p.add_argument("--runs", required=True, metavar="RUNS", help="the train command's --out")
    p.add_argument("--data", required=True, metavar="DIR", help="manifest directory")
    p.add_argument(
        "--modalities",
        nargs="+",
        choices=MODALITY_CHOICES,
        default=None,
        help="default: every modality with a checkpoint",
    )
    _common(p)


def _common(parser: argparse.ArgumentParser) -> None:
    from clerc.argtypes import at_least

    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available"
    )
    parser.add_argument(
        "--batch-size", type=at_least(1), default=32, help="views per prediction pass"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import torch

    from clerc.errors import UserError

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available")
    return _train(args, device) if args.action == "train" else _predict(args, device)


def _train(args: argparse.Namespace, device: str) -> int:
    import dataclasses
    from datetime import timedelta

    from baselines.runner import train_all
    from clerc.train.command import parse_init
    from clerc.train.config import load_config

    cfg = load_config(args.config)
    overrides = {"epochs": args.epochs, "max_steps_per_epoch": args.max_steps_per_epoch}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    summary = train_all(
        cfg,
        args.data,
        args.out,
        modalities=args.modalities,
        device=device,
        init=parse_init(args.init),
        max_gap=timedelta(days=args.max_gap_days),
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    for line in summary.lines():
        print(line)
    return 0 if summary.results else 1


def _predict(args: argparse.Namespace, device: str) -> int:
    from baselines.predict import predict_runs
    from baselines.runner import MODALITIES

    path, table = predict_runs(
        args.runs,
        args.data,
        device=device,
        modalities=tuple(args.modalities or MODALITIES),
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    print(f"{len(table)} predictions of {table['sample_id'].nunique()} test samples -> {path}")
    return 0
