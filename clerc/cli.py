"""One entry point: ``clerc <command>``.

Each command lives in its own module, which defines ``add_arguments(parser)`` and
``run(args) -> int``. Modules keep heavy imports (torch) inside ``run`` so that
``clerc --help`` stays fast.

A user error that a command does not handle itself (a missing or unreadable file, a
value that does not parse) ends as one line ``clerc COMMAND: message`` and exit code 2;
``clerc --debug COMMAND ...`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

from clerc.registry import UnknownNameError

#: Exceptions that mean bad input (their messages name the file or value), not a bug.
USER_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, UnknownNameError)

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
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback when a command fails")
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
    except USER_ERRORS as exc:
        if args.debug:
            raise
        print(f"clerc {args.command}: {describe_error(exc)}", file=sys.stderr)
        return 2


def at_least(low: float, kind: type = int) -> Callable[[str], float]:
    """argparse type: a number of ``kind`` that is ``>= low``; anything else names the value."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            expected = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected a number >= {low}, got {text!r}")
        return value

    return parse


def describe_error(exc: BaseException) -> str:
    """One line for a user error; an OS error reads ``FILE: reason``, not ``[Errno 2] ...``."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
