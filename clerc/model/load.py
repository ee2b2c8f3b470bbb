"""Rebuild a trained CLERC model from a checkpoint (the model's side of the format).

The checkpoint file format (header, state, safety checks) is ``clerc.train.checkpoint``.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from clerc.model.clerc import CLERC
from clerc.model.config import ModelConfig
from clerc.train.checkpoint import CheckpointError, load_checkpoint


def load_model(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[CLERC, dict[str, Any]]:
    """``(CLERC, header)``: the model rebuilt from ``header["config"]["model"]``, in eval mode."""
    state, header = load_checkpoint(path)
    if header.get("kind") == "baseline":
        raise CheckpointError(
            f"{path}: a supervised baseline checkpoint, not a CLERC model; "
            "baselines are scored with `clerc benchmark --supervised "
            "RUNS/predictions.parquet`"
        )
    config = header.get("config")
    model_cfg = config.get("model") if isinstance(config, dict) else None
    if not isinstance(model_cfg, dict):
        raise CheckpointError(f"{path}: header has no config.model (the ModelConfig as a dict)")
    try:
        cfg = ModelConfig.from_dict(model_cfg)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: header config.model is not a valid ModelConfig: {e}") from e
    model = CLERC(cfg)
    try:
        fit = model.load_state_dict(state["model"], strict=False)
    except RuntimeError as e:  # shape mismatches: name the first
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        raise CheckpointError(
            f"{path}: model weights do not fit its config: "
            f"{lines[1] if len(lines) > 1 else lines[0]}"
        ) from e
    if fit.missing_keys or fit.unexpected_keys:
        raise CheckpointError(
            f"{path}: model weights do not fit its config: "
            f"{_keys('missing', fit.missing_keys)}, "
            f"{_keys('unexpected', fit.unexpected_keys)}"
        )
    return model.to(device).eval(), header


def _keys(kind: str, keys: list[str]) -> str:
    """``"3 missing keys (first 'a.b')"``: a short account of a state-dict mismatch."""
    return f"{len(keys)} {kind} keys" + (f" (first {keys[0]!r})" if keys else "")
