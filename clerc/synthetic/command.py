"""``clerc synth``: write the synthetic cohort, or render contact sheets of one."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from clerc.argtypes import at_least

    parser.add_argument("--out", help="directory to write the cohort (manifest + media) into")
    parser.add_argument(
        "--patients", type=at_least(1), default=300, help="number of patients (default 300)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--profile",
        choices=("paper", "demo"),
        default="paper",
        help="availability, studies and splits: paper = Table 1's mix of tests (default); "
        "demo = every test common, one file per study (two per angiography study), "
        "a 20%% test split",
    )
    parser.add_argument(
        "--angio-fraction",
        type=float,
        default=None,
        help="fraction of patients with angiography (default: the profile's; "
        "4.5%% in paper, as Table 1; 60%% in demo)",
    )
    parser.add_argument(
        "--workers", type=at_least(1), default=None, help="processes (default: CPU count)"
    )
    parser.add_argument(
        "--preview",
        metavar="DIR",
        default=None,
        help="render contact sheets of the cohort in DIR into DIR/preview/",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import time

    from clerc.errors import UserError

    if args.preview:
        from clerc.synthetic.preview import render_preview

        written = render_preview(args.preview)
        for path in written:
            print(path)
        return 0
    if not args.out:
        raise UserError("give --out DIR (to write a cohort) or --preview DIR")
    from clerc.synthetic.config import SynthConfig
    from clerc.synthetic.writer import synthesize

    cfg = SynthConfig.preset(args.profile)
    if args.angio_fraction is not None:
        cfg = dataclasses.replace(cfg, angio_fraction=args.angio_fraction)
    start = time.perf_counter()
    out = synthesize(
        args.out, args.patients, args.seed, cfg, workers=args.workers, progress=not args.quiet
    )
    print(f"wrote {args.patients} patients to {out} in {time.perf_counter() - start:.1f} s")
    return 0
