"""The input pipeline: native samples -> model inputs, for training, evaluation and baselines.

``load_input`` gives a sample's native array (or text), from the packed store when
``clerc prepare`` wrote one, else read and made native by the modality's kind.
``make_view`` gives one model input (a random augmentation in training, the fixed
validation view otherwise) and ``eval_views`` every evaluation view ``(K, ...)`` whose
embeddings are averaged. ``SampleSpec`` carries the sizes, from the model config. What a
kind does is its record in ``clerc.kinds``; this module only asks it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from clerc.data.manifest import Manifest
from clerc.kinds import Video, get_kind
from clerc.modalities import get_modality

if TYPE_CHECKING:
    from clerc.data.packed import PackedStore
    from clerc.model.config import ModelConfig


__all__ = ["SampleSpec", "Video", "eval_views", "load_input", "make_view", "sample_spec"]


class SampleSpec(NamedTuple):
    """Input sizes, from the model config; clips are sampled at ``clip_fps`` frames per
    second (``ModelConfig.video_fps``; the paper's 15: every other frame of a 30 fps echo)
    whatever the native rate. ``text_keep`` is the training-time probability of keeping
    each report sentence (``TrainConfig.text_keep``; 1 = the paper's no text augmentation)."""

    video_frames: int
    video_size: int
    ecg_length: int
    image_size: int
    context_length: int
    clip_fps: float = 15.0
    text_keep: float = 1.0


def sample_spec(model_cfg: ModelConfig) -> SampleSpec:
    """The input sizes a model config (or a protocol model's sizes) asks for."""
    return SampleSpec(
        video_frames=model_cfg.video_frames,
        video_size=model_cfg.video_size,
        ecg_length=model_cfg.ecg_length,
        image_size=model_cfg.image_size,
        context_length=model_cfg.text.context_length,
        clip_fps=float(getattr(model_cfg, "video_fps", 15.0)),
    )


def load_input(manifest: Manifest, row: Any, store: PackedStore | None) -> Any:
    """A sample's native form (a :class:`Video` for a timed kind, or text): from the packed
    store when there is one, else read from its file and made native by the modality's
    kind (samples ``--skip-bad`` left out are dropped by ``read_prepared``)."""
    from clerc.data.readers import load_sample, sample_file

    modality = get_modality(str(row["modality"]))
    if modality.is_text:
        return load_sample(manifest, row)
    kind = get_kind(modality.kind)
    sid = str(row["sample_id"])
    if store is not None and sid in store:
        return kind.with_fps(store.load(sid), store.fps(sid) if kind.timed else float("nan"))
    return kind.native(modality.name, kind.read(sample_file(manifest, row)))


def make_view(
    modality: str, x: Any, spec: SampleSpec, *, train: bool, rng: np.random.Generator | None
) -> np.ndarray:
    """One model input from a native sample: random augmentation when ``train``, else the
    fixed evaluation view; text is tokenised. Sizes keep the paper's ratios."""
    return get_kind(get_modality(modality).kind).view(x, spec, train, rng)


def eval_views(modality: str, x: Any, spec: SampleSpec) -> np.ndarray:
    """The evaluation views ``(K, ...)`` of one native sample (their embeddings are averaged)."""
    return get_kind(get_modality(modality).kind).eval_views(x, spec)
