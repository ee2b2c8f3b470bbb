"""``--model`` / ``--model-arg``: the options ``clerc embed`` and ``clerc benchmark`` share."""

from __future__ import annotations

import argparse
from typing import Any


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=None,
        metavar="PACKAGE.MODULE:FACTORY",
        help="a model following clerc.models.protocol instead of a checkpoint, "
        "e.g. clerc.models.echoclip:build",
    )
    parser.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keyword argument for the --model factory (repeatable), "
        "e.g. weights=/path/echoclip.pt",
    )


def source_from_args(args: argparse.Namespace) -> Any:
    """The embedding source the options name: a ``ModelSource``, the checkpoint path, or None."""
    from clerc.models.source import ModelSource, parse_model_args

    if args.model and args.checkpoint is not None:
        raise ValueError("give either --checkpoint or --model, not both")
    if args.model_arg and not args.model:
        raise ValueError("--model-arg needs --model")
    if args.model:
        return ModelSource(args.model, parse_model_args(args.model_arg))
    return args.checkpoint
