"""One entry point: ``clerc <command>``.

Each command lives in its own module, which defines ``add_arguments(parser)`` and
``run(args) -> int``. Modules keep heavy imports (torch) inside ``run`` so that
``clerc --help`` stays fast.

Commands are thin: parse, call the library, print, return an exit code. They do not
catch errors: ``main`` is the one place that turns a user error (``clerc.errors``: bad
input, its message naming the file or value) into one line ``clerc COMMAND: message``
and exit code 2. ``clerc --debug COMMAND ...`` shows the traceback instead. A bug
(``KeyError``, ``AttributeError``, ``TypeError``...) is never reported as a user error:
its traceback is always shown.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from clerc.argtypes import at_least
from clerc.errors import USER_ERRORS, describe_error

__all__ = ["COMMANDS", "USER_ERRORS", "at_least", "build_parser", "describe_error", "main"]

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
    "compare": ("clerc.compare.command", "several runs' Tables 3-5 side by side, paired"),
    "gate": ("clerc.gate", "fail when a metric drifted from a baseline"),
    "demo": ("clerc.demo", "the main job: synth -> train -> benchmark -> report"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported to add its arguments."""
    parser = argparse.ArgumentParser(
        prog="clerc",
        description="CLERC harness: multimodal contrastive learning across cardiac diagnostics.",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback when a command fails"
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
    except USER_ERRORS as exc:  # a bug (KeyError, TypeError...) is not caught here
        if args.debug:
            raise
        print(f"clerc {args.command}: {describe_error(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
