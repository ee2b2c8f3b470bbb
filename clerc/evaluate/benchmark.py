"""``clerc benchmark``: score a checkpoint (or saved embeddings) on every task.

Stages: cohort (the synthetic default is written when ``--data`` is not given), embed
(cached, see ``clerc.evaluate.embed``), each task of the registry, write ``results.json``
and ``predictions.parquet``, render the HTML report. Wall time is printed per stage.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from clerc.argtypes import at_least

DEFAULT_DATA = Path("data/synthetic-default")
DEFAULT_OUT = Path("runs/benchmark")
#: The default synthetic cohort: 300 patients, seed 0, angiography oversampled (the
#: paper's 4.5% would leave one or two angio patients in the test split).
DEFAULT_COHORT: dict[str, Any] = {"patients": 300, "seed": 0, "angio_fraction": 0.4}


def _task_name(name: str) -> str:
    """argparse type: a registered task name (unknown names list close matches)."""
    from clerc.evaluate.registry import load_tasks
    from clerc.registry import UnknownNameError

    try:
        load_tasks().get(name)
    except UnknownNameError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from clerc.evaluate.registry import task_names

    names = task_names()
    from clerc.models.cli import add_model_arguments

    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="checkpoint (.pt); not needed with --embeddings or --model",
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"manifest directory (default: the synthetic cohort at {DEFAULT_DATA},"
        " written if missing)",
    )
    parser.add_argument(
        "--tasks",
        nargs="+",
        type=_task_name,
        default=None,
        metavar="TASK",
        help=f"tasks to run, from: {', '.join(names)} (default: all; "
        "supervised only with --supervised)",
    )
    parser.add_argument(
        "--tasks-file", type=Path, default=None, help="TOML with extra task definitions and prompts"
    )
    parser.add_argument(
        "--bootstrap",
        type=at_least(0),
        default=1000,
        help="patient bootstrap resamples per metric (0 = no intervals)",
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument(
        "--max-gap-days",
        type=at_least(0, float),
        default=365.0,
        help="largest time between a sample and a label matched to it",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument(
        "--embeddings",
        type=Path,
        default=None,
        help="score this saved embeddings file (.npz) instead of embedding",
    )
    parser.add_argument(
        "--supervised",
        type=Path,
        default=None,
        help="supervised baselines' predictions (parquet: sample_id, task, score)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda (default: cuda if any)")
    parser.add_argument("--batch-size", type=at_least(1), default=32, help="views per forward pass")
    parser.add_argument(
        "--workers",
        type=at_least(0),
        default=0,
        help="processes decoding samples while embedding (0 = main process)",
    )
    parser.add_argument("--no-report", action="store_true", help="do not render the HTML report")
    parser.add_argument(
        "--age-edges",
        type=float,
        nargs="+",
        default=None,
        metavar="AGE",
        help="subgroups task: age band edges, e.g. 40 65 (default: decades)",
    )
    parser.add_argument(
        "--subgroup-min",
        type=at_least(2),
        default=10,
        metavar="N",
        help="subgroups task: fewest patients for a group to be scored",
    )
    parser.add_argument(
        "--label-fractions",
        type=float,
        nargs="+",
        default=None,
        metavar="F",
        help="label_efficiency task: fractions of the training patients (default 0.01 0.1 1)",
    )
    parser.add_argument(
        "--label-draws",
        type=at_least(1),
        default=5,
        metavar="N",
        help="label_efficiency task: seeded draws per fraction below 1",
    )
    parser.add_argument(
        "--knn",
        action="store_true",
        help="label_efficiency task: also fit k-NN probes (every val/test row "
        "against every training row: minutes at 40,000 patients)",
    )


class Stages:
    """Times named stages and prints each one's wall time."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self.times: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        self.times[name] = round(time.perf_counter() - t0, 3)
        self.console.print(f"[dim]stage[/dim] {name}: {self.times[name]:.1f} s")


def ensure_default_cohort(path: Path = DEFAULT_DATA) -> Path:
    """The default synthetic cohort at ``path``, written through ``clerc.synthetic`` if missing."""
    if (path / "samples.parquet").is_file():
        return path
    from clerc.synthetic.config import SynthConfig
    from clerc.synthetic.writer import synthesize

    cfg = SynthConfig(angio_fraction=DEFAULT_COHORT["angio_fraction"])
    return Path(synthesize(path, DEFAULT_COHORT["patients"], DEFAULT_COHORT["seed"], cfg))


def render_report(results_path: Path, out_dir: Path) -> list[Path] | None:
    """Render the HTML report when ``clerc.report.html`` provides ``render``; else None."""
    try:
        from clerc.report.html import render
    except ImportError:
        return None
    return list(render(results_path, out_dir))


def _embeddings(args: argparse.Namespace, data: Path, prompts: list[str], console: Any) -> Any:
    from clerc.data.manifest import manifest_hash
    from clerc.evaluate.embed import default_device, embed_cached
    from clerc.evaluate.embeddings import Embeddings

    if args.embeddings is not None:
        emb = Embeddings.load(args.embeddings)
        missing = [p for p in prompts if p not in emb.prompt_texts]
        if missing and emb.header.get("text_side", True):
            raise ValueError(
                f"{args.embeddings}: {len(missing)} prompts were not embedded "
                f"(first {missing[0]!r}); re-run `clerc embed` with this "
                "--tasks-file"
            )
        made_from = emb.header.get("manifest_hash")
        if made_from and made_from != manifest_hash(data):
            console.print(
                f"[yellow]warning:[/yellow] {args.embeddings} was made from another "
                f"version of the manifest in {data}; labels are matched by sample "
                "and study ids",
                highlight=False,
            )
        return emb
    from clerc.models.cli import source_from_args

    source = source_from_args(args)
    if source is None:
        raise ValueError("give --checkpoint, --model or --embeddings FILE")
    computed, _ = embed_cached(
        source,
        data,
        prompts,
        device=args.device or default_device(),
        batch_size=args.batch_size,
        workers=args.workers,
    )
    return computed


def _selected(args: argparse.Namespace) -> list[str]:
    from clerc.evaluate.registry import task_names

    if args.tasks:
        return list(dict.fromkeys(args.tasks))
    return [n for n in task_names() if n != "supervised" or args.supervised is not None]


def _provenance(
    args: argparse.Namespace, emb: Any, data: Path, tasks: list[str], stages: dict[str, float]
) -> dict[str, Any]:
    from clerc.data.manifest import manifest_hash
    from clerc.evaluate.results import provenance

    h = emb.header
    return provenance(
        checkpoint_hash=h.get("checkpoint_hash"),
        manifest_hash=manifest_hash(data),
        seed=args.seed,
        checkpoint=str(args.checkpoint or h.get("checkpoint")),
        embeddings=str(args.embeddings) if args.embeddings else h.get("cache_key"),
        embeddings_manifest_hash=h.get("manifest_hash"),
        model_config=h.get("config"),
        data=str(data),
        tasks=tasks,
        bootstrap=args.bootstrap,
        max_gap_days=args.max_gap_days,
        tasks_file=str(args.tasks_file) if args.tasks_file else None,
        supervised=str(args.supervised) if args.supervised else None,
        stage_seconds=stages,
        model=h.get("model"),
        model_args=h.get("model_args"),
        modalities_encoded=h.get("modalities"),
        text_side=h.get("text_side"),
    )


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    return _run(args, Console(stderr=True))


def _check_inputs(args: argparse.Namespace) -> None:
    """Fail before embedding (which can take hours) on a missing input file or an output
    directory that cannot be created."""
    for flag in ("checkpoint", "embeddings", "supervised", "tasks_file"):
        path = getattr(args, flag)
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"--{flag.replace('_', '-')} {path}: no such file")
    try:
        Path(args.out).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(
            f"--out {args.out}: cannot create the output directory ({exc.strerror or exc})"
        ) from exc


def _extra_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Settings of the subgroups and label_efficiency tasks from the command line."""
    from clerc.evaluate.knn import LabelEfficiencyConfig
    from clerc.evaluate.subgroups import SubgroupConfig

    label = {"draws": args.label_draws, "knn": args.knn}
    if args.label_fractions:
        label["fractions"] = tuple(args.label_fractions)
    return {
        "subgroups": SubgroupConfig(
            age_edges=tuple(args.age_edges or ()), min_patients=args.subgroup_min
        ),
        "label_efficiency": LabelEfficiencyConfig(**label),
    }


def _read_supervised(path: Path) -> Any:
    """The baselines' predictions table; a file that is not Parquet is named."""
    import pandas as pd

    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise ValueError(f"--supervised {path}: cannot read Parquet: {exc}") from exc


def _run(args: argparse.Namespace, console: Any) -> int:
    from datetime import timedelta

    from clerc.data.manifest import read_manifest, require_disjoint_splits
    from clerc.evaluate.cohort import cohort
    from clerc.evaluate.registry import Context, all_prompts, load_definitions, load_tasks
    from clerc.evaluate.results import TaskResult, write_predictions, write_results
    from clerc.models.applicable import mark_not_applicable

    _check_inputs(args)
    stage = Stages(console)
    tasks = _selected(args)
    with stage("cohort"):
        data = args.data if args.data is not None else ensure_default_cohort()
        manifest = read_manifest(data)
        require_disjoint_splits(manifest)  # before embedding, which can take hours
        defs = load_definitions(args.tasks_file)
    with stage("embed"):
        emb = _embeddings(args, data, all_prompts(defs), console)
    if emb is None or int(os.environ.get("RANK", "0")) != 0:  # under torchrun rank 0 scores
        return 0
    supervised = _read_supervised(args.supervised) if args.supervised else None
    ctx = Context(
        emb,
        manifest,
        defs,
        n_resamples=args.bootstrap,
        max_gap=timedelta(days=args.max_gap_days),
        seed=args.seed,
        supervised=supervised,
        **_extra_settings(args),
    )
    produced = TaskResult()
    registry = load_tasks()
    for name in tasks:
        with stage(f"task {name}"), console.status(f"task {name} (bootstrap {args.bootstrap})"):
            produced += registry.get(name).run(ctx)
    records = mark_not_applicable(list(produced.records), emb.header)
    with stage("write"):
        out = Path(args.out)
        results = write_results(
            out / "results.json",
            records,
            _provenance(args, emb, data, tasks, stage.times),
            cohort(manifest),
        )
        write_predictions(out / "predictions.parquet", produced.predictions)
    console.print(f"wrote {results} ({len(records)} records) and {out / 'predictions.parquet'}")
    if not args.no_report:
        with stage("report"):
            pages = render_report(results, out)
        console.print(
            f"report: {len(pages)} pages in {out}"
            if pages is not None
            else "report: clerc.report.html not available; skipped"
        )
    print_summary(records, console)
    return 0


def _fmt(r: Any) -> str:
    if r is None:
        return ""
    if r.value is None:
        return "n/a"
    ci = f" [{r.ci_low:.2f}, {r.ci_high:.2f}]" if r.ci_low is not None else ""
    return f"{r.value:.3f}{ci}"


def print_summary(records: list[Any], console: Any) -> None:
    """A short rich summary: Table 3 headline, Table 4 rows, undefined cell counts."""
    import numpy as np
    from rich.table import Table

    med = [
        r.value
        for r in records
        if r.table == "table3" and r.metric == "median_percentile" and r.value is not None
    ]
    if med:
        console.print(
            f"Table 3: median percentile over {len(med)} modality pairs: "
            f"median {np.median(med):.1f}, best {min(med):.1f}, worst {max(med):.1f}"
        )
    cells: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in records:
        if r.subgroup is not None or r.train_fraction is not None or r.setting == "knn_probe":
            continue
        if r.table == "table4" and r.setting != "difference" and not r.metric.endswith("_p_holm"):
            cells.setdefault((r.modality or "", r.task, r.metric), {})[r.setting] = r
    if cells:
        settings = [
            s
            for s in ("zero_shot", "linear_probe", "supervised")
            if any(s in row for row in cells.values())
        ]
        table = Table(title="Table 4 (95% CI)")
        for col in ("modality", "task", "metric", *settings):
            table.add_column(col, no_wrap=True)
        for (modality, task, metric), row in cells.items():
            table.add_row(modality, task, metric, *(_fmt(row.get(s)) for s in settings))
        console.print(table, width=max(console.width, 110))
    undefined = [r for r in records if r.value is None]
    t5 = [r for r in records if r.table == "table5" and r.subgroup is None]
    console.print(
        f"Table 5: {len(t5)} records; {len(undefined)} of {len(records)} records "
        "undefined (see their notes)"
    )
