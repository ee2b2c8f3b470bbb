"""``clerc compare RUN... --out DIR``: several benchmark runs' Tables 3-5 side by side.

A RUN is a ``clerc benchmark`` output directory (``results.json`` and, for paired intervals,
``predictions.parquet``) or its ``results.json``. Writes ``index.html`` (runs, pairing,
rankings) and ``table3.html``..``table5.html`` (values, paired differences against the
reference run with 95% CIs, the paper's values, a plot).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from clerc.argtypes import at_least

    parser.add_argument(
        "runs",
        nargs="+",
        type=Path,
        metavar="RUN",
        help="benchmark output directories (or their results.json)",
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory for the pages")
    parser.add_argument(
        "--names",
        nargs="+",
        default=None,
        metavar="NAME",
        help="a display name per run (default: the directory names)",
    )
    parser.add_argument(
        "--reference",
        default=None,
        metavar="NAME",
        help="the run the others are compared with (default: the first)",
    )
    parser.add_argument(
        "--bootstrap",
        type=at_least(0),
        default=1000,
        help="patient bootstrap resamples per paired difference (0 = none)",
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")


def run(args: argparse.Namespace) -> int:
    from difflib import get_close_matches

    from clerc.compare.pages import render
    from clerc.compare.runs import load_run, run_names

    if len(args.runs) < 2:
        raise ValueError(f"give at least two runs to compare, got {len(args.runs)}")
    names = run_names(args.runs, args.names)
    runs = [load_run(p, n) for p, n in zip(args.runs, names, strict=True)]
    ref_name = args.reference or names[0]
    if ref_name not in names:
        close = get_close_matches(ref_name, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(
            f"--reference {ref_name!r} is not a run name; {hint}expected one of {names}"
        )
    ref = runs[names.index(ref_name)]
    paths = render(runs, ref, args.out, n_resamples=args.bootstrap, seed=args.seed)
    print(f"wrote {len(paths)} pages to {args.out}: " + ", ".join(p.name for p in paths))
    return 0
