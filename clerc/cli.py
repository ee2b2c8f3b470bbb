"""One entry point: ``clerc <command>``.

Each command lives in its own module, which defines ``add_arguments(parser)`` and
``run(args) -> int``. Modules keep heavy imports (torch) inside ``run`` so that
``clerc --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: command -> (module, one-line help). Order is the order of the data flow.
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("clerc.synthetic.command", "write the synthetic cohort (or preview it)"),
    "adapt": ("clerc.adapters.command", "turn a local copy of a public dataset into a manifest"),
    "validate": ("clerc.data.validate", "check a manifest; list every problem"),
    "prepare": ("clerc.data.packed", "decode every sample once into packed uint8 shards"),
    "train": ("clerc.train.command", "train CLERC"),
    "baselines": ("baselines.command", "train supervised single-modality baselines"),
    "embed": ("clerc.evaluate.embed", "embed every sample of a manifest with a checkpoint"),
    "benchmark": ("clerc.evaluate.benchmark", "score a checkpoint on every task (Tables 3-5)"),
    "report": ("clerc.report.html", "render reports/*.html from results.json"),
    "gate": ("clerc.gate", "fail when a metric drifted from a baseline"),
    "demo": ("clerc.demo", "the main job: synth -> train -> benchmark -> report"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported to add its arguments."""
    parser = argparse.ArgumentParser(
        prog="clerc",
        description="CLERC harness: multimodal contrastive learning across cardiac diagnostics.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=module)
        if name == command:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    mod = importlib.import_module(args._module)
    try:
        return int(mod.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
