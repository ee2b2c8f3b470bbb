"""The synthetic cardiac cohort with known ground truth (the embedded default data).

``synthesize(out, patients, seed, config)`` writes a manifest directory with echo and
angiogram AVIs, WFDB ECGs, chest X-ray PNGs, inline reports and ``ground_truth.parquet``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SynthConfig", "synthesize"]


def __getattr__(name: str) -> Any:
    """Lazy exports, so ``clerc synth --help`` does not import numpy and pandas."""
    if name == "synthesize":
        from clerc.synthetic.writer import synthesize

        return synthesize
    if name == "SynthConfig":
        from clerc.synthetic.config import SynthConfig

        return SynthConfig
    raise AttributeError(f"module 'clerc.synthetic' has no attribute {name!r}")
