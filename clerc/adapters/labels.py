"""Label rules on report text and measurement values.

ECG reports (machine statements) give three binary labels:

- ``rbbb`` / ``lbbb``: a *complete* right / left bundle branch block. "Incomplete" (or
  "partial") blocks are negative. Matches "right bundle branch block", "right
  bundle-branch block" and the abbreviation "RBBB" (likewise left / "LBBB").
- ``pacemaker``: the words "paced", "pacing" or "pacemaker" ("atrial-paced rhythm",
  "demand pacing", "pacemaker rhythm"). "Wandering (atrial) pacemaker" is a native
  rhythm, not a device, and is negative.

A report with text gives a 0/1 value for each task; an empty report gives none.
LVEF results ("55", "55%", "55-60" -> 57.5) are parsed by :func:`parse_lvef`.
"""

from __future__ import annotations

import re

_INCOMPLETE = r"(?:incomplete|incompl\.?|partial)"


def _block(side: str, abbrev: str) -> re.Pattern[str]:
    return re.compile(
        rf"(?P<pre>\b{_INCOMPLETE}[\s-]+)?(?:\b{side}[\s-]+bundle[\s-]+branch[\s-]+block"
        rf"|\b{abbrev}\b)",
        re.IGNORECASE,
    )


RBBB = _block("right", "RBBB")
LBBB = _block("left", "LBBB")
PACEMAKER = re.compile(r"\b(?:paced|pacing|pacemaker)\b", re.IGNORECASE)
NATIVE_PACEMAKER = re.compile(r"\bwandering\s+(?:atrial\s+)?pacemaker\b", re.IGNORECASE)

#: The ECG tasks read from report text, in order.
ECG_TASKS: tuple[str, ...] = ("rbbb", "lbbb", "pacemaker")


def complete_block(pattern: re.Pattern[str], text: str) -> bool:
    """True when ``text`` names the block without an "incomplete" qualifier."""
    return any(m.group("pre") is None for m in pattern.finditer(text))


def has_pacemaker(text: str) -> bool:
    """True when ``text`` mentions pacing by a device."""
    return PACEMAKER.search(NATIVE_PACEMAKER.sub(" ", text)) is not None


def ecg_labels(report: str | None) -> dict[str, float]:
    """task -> 0.0/1.0 for ``rbbb``, ``lbbb``, ``pacemaker``; ``{}`` for an empty report."""
    if report is None or not report.strip():
        return {}
    return {
        "rbbb": float(complete_block(RBBB, report)),
        "lbbb": float(complete_block(LBBB, report)),
        "pacemaker": float(has_pacemaker(report)),
    }


_NUMBER = r"(\d+(?:\.\d+)?)"
_SINGLE = re.compile(rf"^\s*{_NUMBER}\s*%?\s*$")
_RANGE = re.compile(rf"^\s*{_NUMBER}\s*%?\s*(?:-|–|to)\s*{_NUMBER}\s*%?\s*$", re.IGNORECASE)


def parse_lvef(result: str | None) -> float | None:
    """LVEF in % from a result text: ``"55"``, ``"55%"``, ``"55-60"`` (midpoint).

    Returns None for anything else (inequalities such as ">55", words, values outside
    0-100); the caller counts those as unparseable.
    """
    if result is None:
        return None
    m = _SINGLE.match(result)
    if m:
        value = float(m.group(1))
    else:
        m = _RANGE.match(result)
        if not m:
            return None
        value = (float(m.group(1)) + float(m.group(2))) / 2
    return value if 0 <= value <= 100 else None


def lvef_sentence(value: float) -> str:
    """The echo report sentence for an LVEF (the paper's prompt wording)."""
    shown = f"{value:g}"
    return f"The left ventricular ejection fraction is estimated to be {shown}%."
