"""The protocol a model follows to be embedded and benchmarked in place of a CLERC checkpoint.

``clerc embed --model package.module:factory [--model-arg KEY=VALUE ...]`` imports
``factory`` and calls it with the ``--model-arg`` pairs as string keyword arguments. It
returns an object with:

- ``modalities``: the harness modality names it embeds, e.g. ``("echo_video", "echo_text")``.
  Samples of other modalities are left out; their tasks are reported as not applicable.
- ``embed_dim``: the width ``D`` of its embeddings.
- ``encode(modality, batch) -> (B, D)`` for each diagnostic modality it lists. ``batch`` is a
  torch tensor of the harness's evaluation views, on the embedding device:
  video ``(B, F, S, S)`` uint8 grey frames (one clip of ``F`` frames, stride 2; the clips
  covering a video are averaged by the harness), ECG ``(B, 12, L)`` float32 millivolts
  (leads I, II, III, aVR, aVL, aVF, V1-V6, 500 Hz), image ``(B, S, S)`` uint8. The model
  does its own resizing and normalisation.
- ``encode_text(list[str]) -> (B, D)`` (optional): its text side. Needed for any report
  modality it lists and for zero-shot prompts; without it zero-shot is not applicable.
- ``logit_scale``: the multiplier applied to cosines before the softmax of zero-shot
  regression (CLIP's ``exp(logit_scale)``, e.g. 100); needed with a text side.
- ``inputs`` (optional): an ``InputSpec`` with the view sizes it wants (defaults: the paper's).

Outputs need not be normalised (the harness L2-normalises). An ``nn.Module`` model is moved to
the device and put in eval mode; its weights are part of the embedding cache key.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from clerc.modalities import MODALITY_NAMES, get_modality


class _Text(NamedTuple):
    context_length: int


@dataclass(frozen=True)
class InputSpec:
    """View sizes a protocol model receives (the attributes ``sample_spec`` reads)."""

    video_frames: int = 16
    video_size: int = 112
    ecg_length: int = 2500
    image_size: int = 224
    context_length: int = 77
    embed_dim: int = 512

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"InputSpec.{name} must be a positive integer, got {value!r}")

    @property
    def text(self) -> _Text:
        return _Text(self.context_length)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def has_text_side(model: Any) -> bool:
    return callable(getattr(model, "encode_text", None))


def check_model(model: Any, where: str) -> tuple[tuple[str, ...], InputSpec]:
    """Validate a protocol object; returns (modalities in harness order, input spec).

    Every problem is a ``ValueError`` naming ``where`` (the ``--model`` spec) and the attribute.
    """
    mods = getattr(model, "modalities", None)
    if isinstance(mods, str) or not mods:
        raise ValueError(
            f"{where}: the model's `modalities` must be a non-empty list of "
            f"modality names, got {mods!r}"
        )
    unknown = [m for m in mods if m not in MODALITY_NAMES]
    if unknown:
        raise ValueError(
            f"{where}: unknown modalities {unknown}; expected some of {list(MODALITY_NAMES)}"
        )
    text = has_text_side(model)
    for m in mods:
        if get_modality(m).is_text and not text:
            raise ValueError(
                f"{where}: lists the report modality {m!r} but has no `encode_text(list[str])`"
            )
        if not get_modality(m).is_text and not callable(getattr(model, "encode", None)):
            raise ValueError(f"{where}: lists {m!r} but has no `encode(modality, batch)`")
    dim = getattr(model, "embed_dim", None)
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"{where}: `embed_dim` must be a positive integer, got {dim!r}")
    if text:
        scale = getattr(model, "logit_scale", None)
        if not isinstance(scale, int | float) or not math.isfinite(scale) or scale <= 0:
            raise ValueError(
                f"{where}: a model with a text side needs a positive "
                f"`logit_scale` (a float multiplier), got {scale!r}"
            )
    spec = getattr(model, "inputs", None) or InputSpec()
    if not isinstance(spec, InputSpec):
        raise ValueError(
            f"{where}: `inputs` must be a clerc.models.protocol.InputSpec, "
            f"got {type(spec).__name__}"
        )
    spec = InputSpec(**{**spec.to_dict(), "embed_dim": dim})
    return tuple(m for m in MODALITY_NAMES if m in mods), spec


class ProtocolAdapter:
    """A protocol model behind the interface the embedding loop calls on a CLERC model:
    ``encode(modality, x, normalize)``, ``tokenize(texts)`` (texts pass through) and
    ``scale()``; output shapes are checked."""

    def __init__(self, model: Any, where: str) -> None:
        self.model, self.where = model, where
        self.modalities, self.cfg = check_model(model, where)

    def encode(self, modality: str, x: Any, normalize: bool = True) -> Any:
        import torch
        import torch.nn.functional as F

        is_text = modality == "text" or get_modality(modality).is_text
        z = self.model.encode_text(list(x)) if is_text else self.model.encode(modality, x)
        z = torch.as_tensor(z).float()
        n = len(x)
        if z.shape != (n, self.cfg.embed_dim):
            raise ValueError(
                f"{self.where}: encode{'_text' if is_text else ''} of "
                f"{n} {modality} inputs returned shape {tuple(z.shape)}, "
                f"expected ({n}, {self.cfg.embed_dim})"
            )
        return F.normalize(z, dim=-1) if normalize else z

    def tokenize(self, texts: str | list[str]) -> list[str]:
        return [texts] if isinstance(texts, str) else list(texts)

    def scale(self) -> Any:
        import torch

        return torch.tensor(float(getattr(self.model, "logit_scale", 100.0)))
