"""Model configuration: frozen, validated dataclasses with the paper and a tiny CPU preset."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

#: Vocabulary of the CLIP byte-pair tokenizer bundled with open_clip (ids 0..49407).
CLIP_VOCAB_SIZE = 49408


def _positive(owner: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{owner}.{name} must be a positive integer, got {value!r}")


def _widths(owner: str, name: str, value: object, n: int) -> None:
    if not isinstance(value, tuple) or len(value) != n:
        raise ValueError(f"{owner}.{name} must be a tuple of {n} positive integers, got {value!r}")
    for v in value:
        _positive(owner, name, v)


@dataclass(frozen=True)
class ViTConfig:
    """open_clip ``VisionTransformer`` size (the paper's CXR encoder is ViT-B/32)."""

    width: int = 768
    layers: int = 12
    heads: int = 12
    patch_size: int = 32
    mlp_ratio: float = 4.0

    def __post_init__(self) -> None:
        for name in ("width", "layers", "heads", "patch_size"):
            _positive("ViTConfig", name, getattr(self, name))
        if self.width % self.heads:
            raise ValueError(
                f"ViTConfig.width ({self.width}) must be divisible by heads ({self.heads})"
            )
        if not self.mlp_ratio > 0:
            raise ValueError(f"ViTConfig.mlp_ratio must be > 0, got {self.mlp_ratio!r}")


@dataclass(frozen=True)
class TextConfig:
    """open_clip ``TextTransformer`` size (the paper's text encoder is CLIP's 512/8/12)."""

    context_length: int = 77
    vocab_size: int = CLIP_VOCAB_SIZE
    width: int = 512
    heads: int = 8
    layers: int = 12
    mlp_ratio: float = 4.0

    def __post_init__(self) -> None:
        for name in ("context_length", "vocab_size", "width", "heads", "layers"):
            _positive("TextConfig", name, getattr(self, name))
        if self.vocab_size < CLIP_VOCAB_SIZE:
            raise ValueError(
                f"TextConfig.vocab_size must be >= {CLIP_VOCAB_SIZE} (the CLIP BPE tokenizer's "
                f"ids), got {self.vocab_size}"
            )
        if self.width % self.heads:
            raise ValueError(
                f"TextConfig.width ({self.width}) must be divisible by heads ({self.heads})"
            )
        if not self.mlp_ratio > 0:
            raise ValueError(f"TextConfig.mlp_ratio must be > 0, got {self.mlp_ratio!r}")


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of every CLERC encoder.

    A clip is ``video_frames`` frames sampled at ``video_fps`` frames per second whatever the
    video's own rate (the paper: 16 frames at 15/s, every other frame of a 30 fps echo,
    about one cardiac cycle). ``video_widths`` are the four stage widths of R(2+1)D-18;
    ``(64, 128, 256, 512)`` is torchvision's ``r2plus1d_18`` exactly, so Kinetics-400 state
    dicts load. ``ecg_widths`` and ``ecg_blocks`` size the residual 1D CNN; ``ecg_scale_mv``
    is the fixed amplitude scale of the ECG input (see ``encoders/ecg.py``). ``quick_gelu``
    matches OpenAI CLIP weights (QuickGELU); plain GELU is faster when training from scratch.
    """

    embed_dim: int = 512
    video_frames: int = 16
    video_fps: float = 15.0
    video_size: int = 112
    video_widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    ecg_length: int = 2500
    ecg_widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    ecg_blocks: tuple[int, int, int, int] = (2, 2, 2, 2)
    ecg_kernel: int = 7
    ecg_scale_mv: float = 1.0
    image_size: int = 224
    vit: ViTConfig = field(default_factory=ViTConfig)
    text: TextConfig = field(default_factory=TextConfig)
    quick_gelu: bool = True

    def __post_init__(self) -> None:
        for name in ("embed_dim", "video_frames", "video_size", "ecg_length", "image_size"):
            _positive("ModelConfig", name, getattr(self, name))
        _widths("ModelConfig", "video_widths", self.video_widths, 4)
        _widths("ModelConfig", "ecg_widths", self.ecg_widths, 4)
        _widths("ModelConfig", "ecg_blocks", self.ecg_blocks, 4)
        _positive("ModelConfig", "ecg_kernel", self.ecg_kernel)
        if self.ecg_kernel % 2 == 0:
            raise ValueError(f"ModelConfig.ecg_kernel must be odd, got {self.ecg_kernel}")
        if not self.ecg_scale_mv > 0:
            raise ValueError(f"ModelConfig.ecg_scale_mv must be > 0, got {self.ecg_scale_mv!r}")
        if not isinstance(self.vit, ViTConfig):
            raise ValueError(f"ModelConfig.vit must be a ViTConfig, got {type(self.vit).__name__}")
        if not isinstance(self.text, TextConfig):
            raise ValueError(
                f"ModelConfig.text must be a TextConfig, got {type(self.text).__name__}"
            )
        if self.image_size % self.vit.patch_size:
            raise ValueError(
                f"ModelConfig.image_size ({self.image_size}) must be a multiple of "
                f"vit.patch_size ({self.vit.patch_size})"
            )
        if not (isinstance(self.video_fps, int | float) and 0 < self.video_fps <= 1000):
            raise ValueError(f"ModelConfig.video_fps must be in (0, 1000], got {self.video_fps!r}")
        if not isinstance(self.quick_gelu, bool):
            raise ValueError(f"ModelConfig.quick_gelu must be a bool, got {self.quick_gelu!r}")

    @classmethod
    def paper(cls) -> ModelConfig:
        """The paper: R(2+1)D-18 16x112, 1D ResNet on 2500 samples, ViT-B/32, CLIP text."""
        return cls()

    @classmethod
    def tiny(cls) -> ModelConfig:
        """A model that trains on 2 CPU cores in minutes (same architectures, narrower)."""
        return cls(
            video_frames=8,
            video_size=64,
            video_widths=(8, 16, 32, 64),
            ecg_length=1250,
            ecg_widths=(16, 32, 64, 128),
            ecg_blocks=(1, 1, 1, 1),
            image_size=64,
            vit=ViTConfig(width=128, layers=2, heads=4, patch_size=16),
            text=TextConfig(width=128, heads=4, layers=2),
            quick_gelu=False,
        )

    @classmethod
    def demo(cls) -> ModelConfig:
        """The tiny model with clips that span a cardiac cycle at CPU cost: 8 frames at
        7.5/s (1.07 s, the paper's span; 8 frames at 15/s see half a beat, and the echo
        encoder then learns nothing about ejection fraction) at 40 px."""
        return dataclasses.replace(cls.tiny(), video_fps=7.5, video_size=40)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (tuples become lists); inverse of :meth:`from_dict`."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Rebuild from :meth:`to_dict` output (lists back to tuples); unknown keys are errors."""
        if not isinstance(d, dict):
            raise ValueError(f"ModelConfig.from_dict expects a dict, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"ModelConfig got unknown keys {unknown}; expected some of {sorted(known)}"
            )
        kw: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        if isinstance(kw.get("vit"), dict):
            kw["vit"] = ViTConfig(**kw["vit"])
        if isinstance(kw.get("text"), dict):
            kw["text"] = TextConfig(**kw["text"])
        return cls(**kw)
