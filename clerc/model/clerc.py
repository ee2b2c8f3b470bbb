"""The CLERC model: one encoder per diagnostic modality plus one shared text encoder."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clerc.kinds import get_kind
from clerc.modalities import DIAGNOSTIC, ENCODERS, encoder_modality, get_modality
from clerc.model.config import ModelConfig
from clerc.model.encoders.text import TextEncoder
from clerc.model.encoders.video import VideoEncoder

#: CLIP's initial logit scale (temperature 0.07) and its clamp (scale at most 100).
INIT_LOGIT_SCALE = math.log(1 / 0.07)
MAX_LOGIT_SCALE = math.log(100)


def build_encoder(key: str, cfg: ModelConfig) -> nn.Module:
    """The encoder for one key of ``ENCODERS`` (``echo_video`` ... ``text``), built by the
    kind of the modality it embeds (``clerc.kinds``)."""
    modality = encoder_modality(key)
    return get_kind(modality.kind).build_encoder(cfg, modality.name)


def encoder_key(modality: str) -> str:
    """The encoder that embeds ``modality`` (every report -> ``text``); ``text`` maps to itself."""
    if modality == "text" or modality in ENCODERS:
        return modality
    return get_modality(modality).encoder


class CLERC(nn.Module):
    """Encoders in ``encoders`` (keyed by ``ENCODERS``) and a learnable ``logit_scale`` (log)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoders = nn.ModuleDict({k: build_encoder(k, cfg) for k in ENCODERS})
        self.logit_scale = nn.Parameter(torch.tensor(INIT_LOGIT_SCALE))

    def encode(self, modality: str, x: Tensor, normalize: bool = True) -> Tensor:
        """Embed a batch of one modality (or encoder key) -> ``(B, embed_dim)``."""
        z = self.encoders[encoder_key(modality)](x)
        return F.normalize(z, dim=-1) if normalize else z

    def forward(self, batch: dict[str, Tensor], normalize: bool = True) -> dict[str, Tensor]:
        """Embed every modality in ``batch`` (``{modality: input}``)."""
        return {m: self.encode(m, x, normalize) for m, x in batch.items()}

    def scale(self) -> Tensor:
        """The logit multiplier ``exp(logit_scale)``, clamped at 100 (differentiable below)."""
        return self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()

    def temperature(self) -> Tensor:
        """``1 / scale()``."""
        return 1.0 / self.scale()

    @torch.no_grad()
    def clamp_logit_scale_(self) -> None:
        """Clamp the parameter in place to ``[0, log(100)]``; call after each optimizer step."""
        self.logit_scale.clamp_(0.0, MAX_LOGIT_SCALE)

    def tokenize(self, texts: str | Sequence[str]) -> torch.LongTensor:
        """CLIP BPE tokens ``(N, context_length)`` for the text encoder."""
        return cast(TextEncoder, self.encoders["text"]).tokenize(texts)


def channels_last_3d(model: CLERC) -> CLERC:
    """Put the video encoders (weights and inputs) in ``channels_last_3d`` (faster on GPU)."""
    for key in DIAGNOSTIC:
        if get_kind(get_modality(key).kind).channels_last_3d:
            enc = cast(VideoEncoder, model.encoders[key])
            enc.to(memory_format=torch.channels_last_3d)
            enc.channels_last = True
    return model


def example_input(key: str, cfg: ModelConfig, batch: int = 1, device: str = "cpu") -> Tensor:
    """A batch of zeros of the right dtype and shape for encoder ``key``."""
    return get_kind(encoder_modality(key).kind).example_input(cfg, batch, device)


def encoder_flops(cfg: ModelConfig, keys: Sequence[str] = ENCODERS) -> dict[str, int]:
    """Forward FLOPs per sample (batch 1) of each encoder, counted on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    out: dict[str, int] = {}
    for key in keys:
        with torch.device("meta"):
            enc = build_encoder(key, cfg).eval()
            x = example_input(key, cfg, device="meta")
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            enc(x)
        out[key] = int(counter.get_total_flops())
    return out


__all__ = [
    "CLERC",
    "INIT_LOGIT_SCALE",
    "MAX_LOGIT_SCALE",
    "build_encoder",
    "channels_last_3d",
    "encoder_flops",
    "encoder_key",
    "example_input",
]
