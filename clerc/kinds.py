"""One record per modality kind: what every stage does with a sample of that kind.

A modality (``clerc.modalities``) names its kind; a ``Kind`` says how a file of that kind
is read, made native (what packed shards hold), turned into a training/validation view
and into the evaluation views that are embedded, how its encoder is built and what an
example input looks like. Every stage asks the kind through ``get_kind(modality.kind)``
instead of branching on the kind's name.

Adding a kind: write a ``Kind`` and ``register_kind`` it (then register modalities of it
with ``clerc.modalities.register_modality``). The built-in kinds' functions import their
implementation (readers, transforms, encoders) when called, so this module stays light.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from clerc.registry import Registry

if TYPE_CHECKING:
    import torch
    from torch import nn

    from clerc.data.inputs import SampleSpec
    from clerc.model.config import ModelConfig

#: The paper's sizes: 12 px padding of 112 px clips, 224 px crops of 256 px CXRs. Smaller
#: configs keep these ratios (a 64 px crop is taken from the CXR scaled to 73 px).
PAPER_VIDEO_PAD, PAPER_VIDEO_SIZE = 12, 112
PAPER_IMAGE_BASE, PAPER_IMAGE_SIZE = 256, 224
#: Packed ECGs are int16 microvolts.
ECG_SCALE = 1000.0


class Video(NamedTuple):
    """A native video and the frame rate its file gave (or the default it was read with)."""

    frames: np.ndarray
    fps: float


def _same(array: np.ndarray) -> np.ndarray:
    return array


@dataclass(frozen=True)
class Kind:
    """What the harness does with samples of one kind.

    ``read(path)``: a file's reader output (a ``Video`` with the file's frame rate for a
    timed kind). ``native(modality, x)``: the reader output in the modality's native form.
    ``view(x, spec, train, rng)``: one model input (random augmentation when ``train``,
    else the fixed validation view). ``eval_views(x, spec)``: every evaluation view
    ``(K, ...)``, whose embeddings are averaged. ``build_encoder(cfg, modality)``: the
    encoder module. ``example_input(cfg, batch, device)``: zeros of the encoder's input
    shape and dtype. ``packed_dtype``: the dtype of packed shards (None: the kind is not
    packed, e.g. text); ``pack``/``unpack`` convert a native array <-> its stored form.
    ``timed``: native samples are ``Video(frames, fps)`` (the fps is kept in the packed
    index). ``channels_last_3d``: the encoder runs faster in that memory format on a GPU.
    """

    name: str
    read: Callable[[Path], Any]
    native: Callable[[str, Any], Any]
    view: Callable[[Any, SampleSpec, bool, np.random.Generator | None], np.ndarray]
    eval_views: Callable[[Any, SampleSpec], np.ndarray]
    build_encoder: Callable[[ModelConfig, str], nn.Module]
    example_input: Callable[[ModelConfig, int, str], torch.Tensor]
    packed_dtype: type[np.generic] | None = None
    pack: Callable[[np.ndarray], np.ndarray] = _same
    unpack: Callable[[np.ndarray], np.ndarray] = _same
    timed: bool = False
    channels_last_3d: bool = False

    def array(self, sample: Any) -> Any:
        """The array of a native sample (a ``Video``'s frames)."""
        return sample.frames if self.timed else sample

    def with_fps(self, array: Any, fps: float) -> Any:
        """A native sample from its array (and, for a timed kind, its frame rate)."""
        return Video(array, fps) if self.timed else array


KINDS: Registry[Kind] = Registry("modality kind")


def register_kind(kind: Kind) -> Kind:
    """Register ``kind`` under its name (a duplicate is an error)."""
    return KINDS.add(kind.name, kind)


def get_kind(name: str) -> Kind:
    """The kind called ``name``; unknown names answer with close matches."""
    return KINDS.get(name)


# -- video: Video((T, H, W) uint8 grayscale, fps) ---------------------------------------


def _read_video(path: Path) -> Video:
    from clerc.data.readers import read_video

    frames, fps = read_video(path)
    return Video(frames, float(fps))


def _native(modality: str, x: np.ndarray) -> np.ndarray:
    from clerc.data.transforms import to_native

    return to_native(modality, x)


def _video_native(modality: str, x: Video) -> Video:
    from clerc.data.transforms import to_native

    return Video(to_native(modality, x.frames), x.fps)


def _video_view(
    x: Video, spec: SampleSpec, train: bool, rng: np.random.Generator | None
) -> np.ndarray:
    from clerc.data.transforms import video_clip

    pad = round(PAPER_VIDEO_PAD * spec.video_size / PAPER_VIDEO_SIZE)
    return video_clip(
        x.frames,
        fps=x.fps,
        clip_fps=spec.clip_fps,
        frames_out=spec.video_frames,
        size=spec.video_size,
        train=train,
        rng=rng,
        pad=pad,
    )


def _video_views(x: Video, spec: SampleSpec) -> np.ndarray:
    from clerc.data.transforms import video_clips_covering

    return video_clips_covering(
        x.frames,
        fps=x.fps,
        clip_fps=spec.clip_fps,
        frames_out=spec.video_frames,
        size=spec.video_size,
    )


def _video_encoder(cfg: ModelConfig, modality: str) -> nn.Module:
    from clerc.model.encoders.video import VideoEncoder

    return VideoEncoder(cfg.video_frames, cfg.video_size, cfg.video_widths, cfg.embed_dim)


def _video_example(cfg: ModelConfig, batch: int, device: str) -> torch.Tensor:
    import torch

    shape = (batch, cfg.video_frames, cfg.video_size, cfg.video_size)
    return torch.zeros(shape, dtype=torch.uint8, device=device)


# -- waveform: (12, L) float32 mV -------------------------------------------------------


def _read_ecg(path: Path) -> np.ndarray:
    from clerc.data.readers import read_ecg

    return read_ecg(path)


def _ecg_view(
    x: np.ndarray, spec: SampleSpec, train: bool, rng: np.random.Generator | None
) -> np.ndarray:
    from clerc.data.transforms import ecg_crop

    return ecg_crop(x, length=spec.ecg_length, train=train, rng=rng)


def ecg_views(sig: np.ndarray, length: int) -> np.ndarray:
    """``(K, 12, length)`` crops covering the signal (one zero-padded crop if it is short)."""
    from clerc.data.transforms import ecg_crop

    n = sig.shape[1]
    if n <= length:
        return ecg_crop(sig, length=length, train=False)[None]
    starts = np.unique(np.rint(np.linspace(0, n - length, math.ceil(n / length))).astype(int))
    return np.stack([sig[:, s : s + length] for s in starts]).astype(np.float32)


def _ecg_encoder(cfg: ModelConfig, modality: str) -> nn.Module:
    from clerc.model.encoders.ecg import ECGEncoder

    return ECGEncoder(
        cfg.ecg_length,
        cfg.ecg_widths,
        cfg.ecg_blocks,
        cfg.ecg_kernel,
        cfg.embed_dim,
        scale_mv=cfg.ecg_scale_mv,
    )


def _ecg_example(cfg: ModelConfig, batch: int, device: str) -> torch.Tensor:
    import torch

    return torch.zeros((batch, 12, cfg.ecg_length), device=device)


def _pack_ecg(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * ECG_SCALE), -32768, 32767).astype(np.int16)


def _unpack_ecg(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / np.float32(ECG_SCALE)


# -- image: (H, W) uint8 grayscale ------------------------------------------------------


def _read_image(path: Path) -> np.ndarray:
    from clerc.data.readers import read_image

    return read_image(path)


def _image_view(
    x: np.ndarray, spec: SampleSpec, train: bool, rng: np.random.Generator | None
) -> np.ndarray:
    from clerc.data.transforms import image_crop

    base = round(spec.image_size * PAPER_IMAGE_BASE / PAPER_IMAGE_SIZE)
    return image_crop(x, size=spec.image_size, train=train, rng=rng, base=base)


def _image_views(x: np.ndarray, spec: SampleSpec) -> np.ndarray:
    return _image_view(x, spec, False, None)[None]


def _image_encoder(cfg: ModelConfig, modality: str) -> nn.Module:
    from clerc.model.encoders.image import ImageEncoder

    v = cfg.vit
    return ImageEncoder(
        cfg.image_size,
        v.patch_size,
        v.width,
        v.layers,
        v.heads,
        cfg.embed_dim,
        mlp_ratio=v.mlp_ratio,
        quick_gelu=cfg.quick_gelu,
    )


def _image_example(cfg: ModelConfig, batch: int, device: str) -> torch.Tensor:
    import torch

    shape = (batch, cfg.image_size, cfg.image_size)
    return torch.zeros(shape, dtype=torch.uint8, device=device)


# -- text: a str, tokenised -------------------------------------------------------------


def _read_text(path: Path) -> str:
    from clerc.data.readers import read_text

    return read_text(path)


def _text_native(modality: str, x: str) -> str:
    return x


def _text_view(
    x: str, spec: SampleSpec, train: bool, rng: np.random.Generator | None
) -> np.ndarray:
    from clerc.data.transforms import keep_sentences
    from clerc.model.encoders.text import tokenize

    if train and rng is not None and spec.text_keep < 1.0:
        x = keep_sentences(x, spec.text_keep, rng)
    return tokenize([x], context_length=spec.context_length)[0].numpy()


def _text_views(x: str, spec: SampleSpec) -> np.ndarray:
    return _text_view(x, spec, False, None)[None]


def _text_encoder(cfg: ModelConfig, modality: str) -> nn.Module:
    from clerc.model.encoders.text import TextEncoder

    t = cfg.text
    return TextEncoder(
        t.context_length,
        t.vocab_size,
        t.width,
        t.heads,
        t.layers,
        cfg.embed_dim,
        mlp_ratio=t.mlp_ratio,
        quick_gelu=cfg.quick_gelu,
    )


def _text_example(cfg: ModelConfig, batch: int, device: str) -> torch.Tensor:
    import torch

    return torch.zeros((batch, cfg.text.context_length), dtype=torch.long, device=device)


for _kind in (
    Kind(
        "video",
        _read_video,
        _video_native,
        _video_view,
        _video_views,
        _video_encoder,
        _video_example,
        np.uint8,
        timed=True,
        channels_last_3d=True,
    ),
    Kind(
        "waveform",
        _read_ecg,
        _native,
        _ecg_view,
        lambda x, spec: ecg_views(x, spec.ecg_length),
        _ecg_encoder,
        _ecg_example,
        np.int16,
        _pack_ecg,
        _unpack_ecg,
    ),
    Kind(
        "image",
        _read_image,
        _native,
        _image_view,
        _image_views,
        _image_encoder,
        _image_example,
        np.uint8,
    ),
    Kind("text", _read_text, _text_native, _text_view, _text_views, _text_encoder, _text_example),
):
    register_kind(_kind)
