"""Example protocol model: a plain PyTorch single-modality encoder (12-lead ECG only).

A small 1D CNN (conv -> BN -> ReLU stages, global average pool, linear head). It has no
text side, so zero-shot and every non-ECG cell are reported as not applicable. Random
weights (seeded) unless ``weights`` names a state dict file::

    clerc benchmark --model clerc.models.ecg_encoder:build --model-arg weights=/m/ecg.pt
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from clerc.models.protocol import InputSpec


class ECGEncoder(nn.Module):
    """``(B, 12, L)`` millivolts -> ``(B, embed_dim)``."""

    modalities = ("ecg_waveform",)

    def __init__(self, embed_dim: int = 128, width: int = 32, length: int = 2500) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 12
        for c_out in (width, width * 2, width * 4):
            layers += [
                nn.Conv1d(c_in, c_out, 7, stride=2, padding=3, bias=False),
                nn.BatchNorm1d(c_out),
                nn.ReLU(inplace=True),
            ]
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, embed_dim)
        self.embed_dim = embed_dim
        self.inputs = InputSpec(ecg_length=length, embed_dim=embed_dim)

    def encode(self, modality: str, batch: torch.Tensor) -> torch.Tensor:
        if modality != "ecg_waveform":
            raise ValueError(f"ECGEncoder encodes ecg_waveform, not {modality}")
        return self.head(self.body(batch.float()).mean(dim=-1))


def build(
    embed_dim: str | int = 128,
    width: str | int = 32,
    length: str | int = 2500,
    weights: str | None = None,
    seed: str | int = 0,
) -> ECGEncoder:
    """An ``ECGEncoder``; random weights (seeded) unless ``weights`` names a state dict."""
    torch.manual_seed(int(seed))
    model = ECGEncoder(int(embed_dim), int(width), int(length))
    if weights:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(2, "no such weights file", str(path))
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()
