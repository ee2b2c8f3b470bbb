"""``clerc adapt mimic|echonet|ptbxl``: turn a local copy of a public dataset into a manifest.

Each adapter prints what it read and dropped (and why) and writes ``account.json``
beside the manifest. See ``docs/datasets.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of days, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of days >= 0, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    m = sub.add_parser(
        "mimic",
        help="MIMIC-IV-ECG, MIMIC-CXR-JPG, MIMIC-IV-ECHO (+ hosp)",
        description="Join the given MIMIC modules on subject_id.",
    )
    m.add_argument("--ecg", type=Path, help="MIMIC-IV-ECG root (record_list.csv, files/)")
    m.add_argument("--cxr", type=Path, help="MIMIC-CXR-JPG root (mimic-cxr-2.0.0-*.csv, files/)")
    m.add_argument(
        "--cxr-reports",
        type=Path,
        help="MIMIC-CXR reports root (files/pXX/pN/sN.txt); default: --cxr",
    )
    m.add_argument("--echo", type=Path, help="MIMIC-IV-ECHO root (echo-record-list.csv, files/)")
    m.add_argument("--hosp", type=Path, help="MIMIC-IV hosp dir with patients.csv.gz")
    m.add_argument(
        "--max-gap-days",
        type=_non_negative,
        default=None,
        help="drop labels further than N days from every sample of their modality",
    )
    m.add_argument("--seed", type=int, default=0, help="seed of the patient split (default 0)")
    m.add_argument(
        "--uncertain",
        choices=("positive", "negative", "drop"),
        default="drop",
        help="CheXpert -1 (uncertain) labels: count as 1, as 0, or drop (default)",
    )
    m.add_argument(
        "--all-views", action="store_true", help="keep every CXR view, not only frontal (PA/AP)"
    )
    m.add_argument("--out", type=Path, required=True, help="manifest directory to write")
    for name, help_ in (
        ("echonet", "EchoNet-Dynamic (FileList.csv, Videos/)"),
        ("ptbxl", "PTB-XL 1.0.3 (ptbxl_database.csv, records500/ or records100/)"),
    ):
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("root", type=Path, help="dataset root")
        p.add_argument("--out", type=Path, required=True, help="manifest directory to write")
        if name == "ptbxl":
            p.add_argument(
                "--rate",
                type=int,
                choices=(500, 100),
                default=500,
                help="records500/ (default) or records100/; a record missing at "
                "this rate is taken at the other when present",
            )


def run(args: argparse.Namespace) -> int:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,.0f} rows"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=True) as progress:  # rows read so far, per source
        out = _adapt(args, progress)
    print(f"manifest written to {out} (account: {out / 'account.json'})")
    return 0


def _adapt(args: argparse.Namespace, progress: Any = None) -> Path:
    if args.dataset == "mimic":
        from clerc.adapters.mimic import MimicOptions, adapt_mimic

        opts = MimicOptions(
            out=args.out,
            ecg=args.ecg,
            cxr=args.cxr,
            cxr_reports=args.cxr_reports,
            echo=args.echo,
            hosp=args.hosp,
            max_gap_days=args.max_gap_days,
            seed=args.seed,
            uncertain=args.uncertain,
            all_views=args.all_views,
        )
        return adapt_mimic(opts, progress=progress)
    if args.dataset == "echonet":
        from clerc.adapters.echonet import adapt_echonet

        return adapt_echonet(args.root, args.out, progress=progress)
    from clerc.adapters.ptbxl import adapt_ptbxl

    return adapt_ptbxl(args.root, args.out, rate=args.rate, progress=progress)
