"""``clerc demo``: the main job on the embedded default.

synthetic cohort (the ``demo`` profile) -> validate -> prepare -> train CLERC (the ``demo``
preset) -> supervised baselines (same preset) -> benchmark -> reports. Each stage is the
same ``clerc`` command a user would run, so the demo exercises exactly the documented
interface; stage wall times go to ``RUN/timings.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DEFAULT_DATA = Path("data/synthetic-default")
#: The demo cohort's size: 20% test patients put 169-270 in each Table 3 and 4 cell.
DEFAULT_PATIENTS = 1500


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help=f"cohort directory; a synthetic one is written if missing (default {DEFAULT_DATA})",
    )
    parser.add_argument(
        "--patients",
        type=int,
        default=DEFAULT_PATIENTS,
        help=f"patients in the synthetic cohort (default {DEFAULT_PATIENTS})",
    )
    parser.add_argument(
        "--profile",
        choices=("demo", "paper"),
        default="demo",
        help="synthetic cohort profile (default demo: every test common, a 20%% "
        "test split; paper: Table 1's mix)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of cohort and training")
    parser.add_argument(
        "--angio-fraction",
        type=float,
        default=None,
        help="fraction of patients with angiography (default: the profile's; "
        "0.6 in demo, 0.045 in paper)",
    )
    parser.add_argument(
        "--run",
        type=Path,
        default=Path("runs/demo"),
        help="where checkpoints, results and timings go (default runs/demo)",
    )
    parser.add_argument(
        "--reports",
        type=Path,
        default=Path("reports"),
        help="where the HTML reports go (default reports/)",
    )
    parser.add_argument("--config", default="demo", help="training config (default demo)")
    parser.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    parser.add_argument(
        "--max-steps-per-epoch",
        type=int,
        default=None,
        help="cap training steps per epoch (for quick checks)",
    )
    parser.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap resamples per metric (default 1000)"
    )
    parser.add_argument(
        "--baseline-epochs",
        type=int,
        default=6,
        help="epochs of each supervised baseline (default 6: video baselines "
        "cost ~10x CLERC's per-sample step on the CPU)",
    )
    parser.add_argument("--no-baselines", action="store_true", help="skip the supervised baselines")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if any)")


def stage_commands(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """The demo's stages as (name, clerc argv) pairs, in order."""
    data, run_dir = str(args.data), args.run
    train_extra = (
        _opt("--epochs", args.epochs)
        + _opt("--max-steps-per-epoch", args.max_steps_per_epoch)
        + _opt("--device", args.device)
    )
    stages: list[tuple[str, list[str]]] = []
    if not (args.data / "samples.parquet").is_file():
        stages.append(
            (
                "synth",
                [
                    "synth",
                    "--out",
                    data,
                    "--patients",
                    str(args.patients),
                    "--seed",
                    str(args.seed),
                    "--profile",
                    args.profile,
                    *_opt("--angio-fraction", args.angio_fraction),
                ],
            )
        )
    stages += [
        ("validate", ["validate", data]),
        ("prepare", ["prepare", data]),
        (
            "train",
            [
                "train",
                "--data",
                data,
                "--config",
                args.config,
                "--out",
                str(run_dir / "clerc"),
                *train_extra,
            ],
        ),
    ]
    bench = [
        "benchmark",
        "--checkpoint",
        str(run_dir / "clerc" / "ckpt.pt"),
        "--data",
        data,
        "--out",
        str(run_dir / "benchmark"),
        "--bootstrap",
        str(args.bootstrap),
        "--seed",
        str(args.seed),
        "--no-report",
        *_opt("--device", args.device),
    ]
    if not args.no_baselines:
        base_extra = (
            _opt("--epochs", args.epochs or args.baseline_epochs)
            + _opt("--max-steps-per-epoch", args.max_steps_per_epoch)
            + _opt("--device", args.device)
        )
        stages.append(
            (
                "baselines",
                [
                    "baselines",
                    "train",
                    "--data",
                    data,
                    "--config",
                    args.config,
                    "--out",
                    str(run_dir / "baselines"),
                    *base_extra,
                ],
            )
        )
        bench += ["--supervised", str(run_dir / "baselines" / "predictions.parquet")]
    stages.append(("benchmark", bench))
    stages.append(
        (
            "report",
            [
                "report",
                "--results",
                str(run_dir / "benchmark" / "results.json"),
                "--out",
                str(args.reports),
            ],
        )
    )
    return stages


def stale_cohort(args: argparse.Namespace) -> str | None:
    """Why the cohort already at ``--data`` is not the one this demo asks for (None when it
    is, or when there is none yet). Only synthetic cohorts the demo wrote are checked."""
    import dataclasses

    from clerc.synthetic.config import SynthConfig

    meta_path = args.data / "synth.json"
    if not (args.data / "samples.parquet").is_file() or not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    cfg = SynthConfig.preset(args.profile)
    if args.angio_fraction is not None:
        cfg = dataclasses.replace(cfg, angio_fraction=args.angio_fraction)
    want = {k: (str(v) if isinstance(v, dict) else v) for k, v in dataclasses.asdict(cfg).items()}
    want = json.loads(json.dumps(want, default=str))
    if (meta.get("patients"), meta.get("seed")) != (args.patients, args.seed):
        return (
            f"it has {meta.get('patients')} patients (seed {meta.get('seed')}); this demo "
            f"asks for {args.patients} (seed {args.seed})"
        )
    if meta.get("config") != want:
        return f"it was drawn with another cohort profile than --profile {args.profile}"
    return None


def _opt(flag: str, value: object) -> list[str]:
    return [] if value is None else [flag, str(value)]


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from clerc.cli import main

    console = Console()
    stale = stale_cohort(args)
    if stale:
        raise ValueError(
            f"--data {args.data}: {stale}; remove the directory (it is "
            "rewritten) or pass another --data"
        )
    args.run.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    for name, argv in stage_commands(args):
        console.rule(f"[bold]{name}[/bold]: clerc {' '.join(argv)}")
        t0 = time.perf_counter()
        code = main(["--debug", *argv] if getattr(args, "debug", False) else argv)
        timings[name] = round(time.perf_counter() - t0, 2)
        if code != 0:
            console.print(f"[red]stage {name} failed with exit code {code}[/red]")
            _write_timings(args.run, timings, start, failed=name)
            return code
    _write_timings(args.run, timings, start, failed=None)
    console.rule("[bold green]done")
    for name, secs in timings.items():
        console.print(f"{name:>10}: {secs:8.1f} s")
    console.print(f"reports: {args.reports.resolve() / 'index.html'}")
    return 0


def _write_timings(
    run_dir: Path, timings: dict[str, float], start: float, failed: str | None
) -> None:
    doc = {"stages": timings, "total": round(time.perf_counter() - start, 2), "failed": failed}
    (run_dir / "timings.json").write_text(json.dumps(doc, indent=2))
