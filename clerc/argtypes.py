"""argparse value types shared by the commands (kept apart from ``clerc.cli``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


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
