"""The paper's preprocessing and augmentation as pure functions on numpy arrays.

Uint8 stays uint8 (normalisation happens on the model's device); random transforms take an
explicit ``np.random.Generator``. Sizes are arguments so a tiny config can use e.g. 8 frames
at 64 px; the defaults are the paper's (16 frames at 15 frames/s -- every other frame of a
30 fps echo -- at 112 px, 2500-sample ECG crops, 224 px crops of 256 px CXRs). Clips are
sampled by time: a video's own fps (from its file, kept in the packed index) decides
which frames a clip takes, so a 50 fps or a 15 fps video covers the same span as a 30 fps
one.

:func:`to_native` turns a reader's output into the modality's native shape (echo: sector
crop to 112; angio: scaled to 112; CXR: shorter side to 256 then centre crop); ``clerc
prepare`` stores that, and loaders without a packed store apply it after the reader.
"""

from __future__ import annotations

import math
import re

import numpy as np

VIDEO_SIZE = 112
IMAGE_BASE = 256
#: Clips are sampled at this rate whatever the native one: the paper's 16 frames, every
#: other frame of a 30 fps echo, span 16 / 15 s of the cardiac cycle.
CLIP_FPS = 15.0


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of uint8 (T, H, W) frames to (T, height, width)."""
    if frames.shape[1:] == (height, width):
        return frames
    from PIL import Image

    out = np.empty((frames.shape[0], height, width), dtype=np.uint8)
    for i, frame in enumerate(frames):
        im = Image.fromarray(np.ascontiguousarray(frame))
        out[i] = np.asarray(im.resize((width, height), Image.Resampling.BILINEAR))
    return out


def clip_offsets(frames_out: int, fps: float, clip_fps: float = CLIP_FPS) -> np.ndarray:
    """Frame offsets (from the clip's first frame) of ``frames_out`` frames sampled at
    ``clip_fps`` from a video at ``fps``: the frame nearest each time ``k / clip_fps``.

    At 30 fps and the paper's 15 this is every other frame (0, 2, 4, ...); at 50 fps it is
    0, 3, 7, 10, ...; at 15 fps every frame; at 7.5 fps each frame twice.
    """
    if not fps > 0 or not clip_fps > 0:
        raise ValueError(
            f"clip sampling needs positive frame rates, got fps={fps!r} and clip_fps={clip_fps!r}"
        )
    return np.floor(np.arange(frames_out) * (float(fps) / float(clip_fps)) + 0.5).astype(np.int64)


def clip_span(frames_out: int, fps: float, clip_fps: float = CLIP_FPS) -> int:
    """Native frames one clip covers, first to last inclusive."""
    return int(clip_offsets(frames_out, fps, clip_fps)[-1]) + 1


def video_clip(
    frames: np.ndarray,
    *,
    fps: float,
    clip_fps: float = CLIP_FPS,
    frames_out: int = 16,
    size: int = VIDEO_SIZE,
    train: bool,
    rng: np.random.Generator | None = None,
    start: int | None = None,
    pad: int = 12,
) -> np.ndarray:
    """One clip ``uint8 (frames_out, size, size)`` of ``frames`` (T, H, W) recorded at ``fps``.

    ``frames_out`` frames at ``clip_fps`` (:func:`clip_offsets`) from frame ``start``,
    looping when the video is short. ``start`` defaults to a random one when training and
    to the centred clip otherwise. Frames are scaled to ``size`` if they are not; training
    then pads ``pad`` px per side with black and crops back to ``size`` at a random offset.
    """
    _check_video(frames)
    if train and rng is None:
        raise ValueError("video_clip(train=True) needs an rng (np.random.Generator)")
    n = frames.shape[0]
    offsets = clip_offsets(frames_out, fps, clip_fps)
    latest = max(n - int(offsets[-1]) - 1, 0)
    if start is None:
        start = int(rng.integers(0, latest + 1)) if train and rng else latest // 2
    clip = resize_frames(frames[(start + offsets) % n], size, size)
    if train and rng and pad > 0:
        clip = _pad_random_crop(clip, pad, size, rng)
    return np.ascontiguousarray(clip)


def _pad_random_crop(clip: np.ndarray, pad: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Pad ``pad`` px of black per side, then crop ``size`` px back at a random offset."""
    i, j = (int(v) for v in rng.integers(0, 2 * pad + 1, size=2))
    out = np.zeros((clip.shape[0], size, size), dtype=clip.dtype)
    # rows/cols of the padded image [i, i+size) mapped back into the unpadded clip
    r0, r1 = max(i - pad, 0), min(i - pad + size, size)
    c0, c1 = max(j - pad, 0), min(j - pad + size, size)
    out[:, r0 - (i - pad) : r1 - (i - pad), c0 - (j - pad) : c1 - (j - pad)] = clip[:, r0:r1, c0:c1]
    return out


def clip_starts(
    n_frames: int,
    *,
    fps: float,
    clip_fps: float = CLIP_FPS,
    frames_out: int = 16,
    max_clips: int | None = None,
) -> np.ndarray:
    """Evenly spaced clip starts from 0 to the last full clip, covering every frame.

    Consecutive starts are at most one clip duration (``frames_out / clip_fps`` seconds)
    apart.
    """
    span = clip_span(frames_out, fps, clip_fps)
    if n_frames <= span:
        return np.zeros(1, dtype=np.int64)
    step = frames_out * float(fps) / float(clip_fps)
    k = math.ceil((n_frames - span) / step) + 1
    if max_clips is not None:
        k = max(1, min(k, max_clips))
    return np.unique(np.rint(np.linspace(0, n_frames - span, k)).astype(np.int64))


def video_clips_covering(
    frames: np.ndarray,
    *,
    fps: float,
    clip_fps: float = CLIP_FPS,
    frames_out: int = 16,
    size: int = VIDEO_SIZE,
    max_clips: int | None = None,
) -> np.ndarray:
    """Evaluation clips ``uint8 (K, frames_out, size, size)`` covering the whole video.

    The first starts at frame 0 and the last ends on the last frame (see
    :func:`clip_starts`).
    """
    _check_video(frames)
    starts = clip_starts(
        frames.shape[0], fps=fps, clip_fps=clip_fps, frames_out=frames_out, max_clips=max_clips
    )
    return np.stack(
        [
            video_clip(
                frames,
                fps=fps,
                clip_fps=clip_fps,
                frames_out=frames_out,
                size=size,
                train=False,
                start=int(s),
            )
            for s in starts
        ]
    )


def _check_video(frames: np.ndarray) -> None:
    if frames.ndim != 3 or frames.dtype != np.uint8 or 0 in frames.shape:
        raise ValueError(f"expected uint8 frames (T, H, W), got {frames.dtype} {frames.shape}")


def sector_box(frames: np.ndarray, threshold: int = 10) -> tuple[int, int, int, int] | None:
    """Bounding box (top, bottom, left, right) of pixels brighter than ``threshold`` in any
    frame, or None when every pixel is dark."""
    mask = frames.max(axis=0) > threshold
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def crop_sector_square(
    frames: np.ndarray, *, size: int = VIDEO_SIZE, threshold: int = 10
) -> np.ndarray:
    """Crop to a tight square around the non-black scanning sector, then scale to ``size``.

    The square's side is the larger side of the sector's bounding box, centred on it; where
    it reaches past the frame, black is padded. A video that is dark everywhere is scaled
    whole.
    """
    _check_video(frames)
    box = sector_box(frames, threshold)
    if box is None:
        return resize_frames(frames, size, size)
    top, bottom, left, right = box
    side = max(bottom - top, right - left)
    r0 = (top + bottom - side) // 2
    c0 = (left + right - side) // 2
    square = np.zeros((frames.shape[0], side, side), dtype=np.uint8)
    h, w = frames.shape[1:]
    sr0, sr1 = max(r0, 0), min(r0 + side, h)
    sc0, sc1 = max(c0, 0), min(c0 + side, w)
    square[:, sr0 - r0 : sr1 - r0, sc0 - c0 : sc1 - c0] = frames[:, sr0:sr1, sc0:sc1]
    return resize_frames(square, size, size)


def ecg_crop(
    sig: np.ndarray, *, length: int = 2500, train: bool, rng: np.random.Generator | None = None
) -> np.ndarray:
    """A ``float32 (12, length)`` window: random when training, the centre otherwise.

    A signal shorter than ``length`` is zero-padded at the end.
    """
    if sig.ndim != 2:
        raise ValueError(f"expected an ECG (leads, L), got shape {sig.shape}")
    if train and rng is None:
        raise ValueError("ecg_crop(train=True) needs an rng (np.random.Generator)")
    n = sig.shape[1]
    if n < length:
        out = np.zeros((sig.shape[0], length), dtype=np.float32)
        out[:, :n] = sig
        return out
    start = int(rng.integers(0, n - length + 1)) if train and rng else (n - length) // 2
    return np.ascontiguousarray(sig[:, start : start + length], dtype=np.float32)


def image_to_base(img: np.ndarray, base: int = IMAGE_BASE) -> np.ndarray:
    """Scale the shorter side to ``base`` and centre-crop to ``uint8 (base, base)``."""
    if img.ndim != 2 or img.dtype != np.uint8 or 0 in img.shape:
        raise ValueError(f"expected a uint8 image (H, W), got {img.dtype} {img.shape}")
    h, w = img.shape
    if (h, w) == (base, base):
        return img
    scale = base / min(h, w)
    nh, nw = max(base, round(h * scale)), max(base, round(w * scale))
    resized = resize_frames(img[None], nh, nw)[0]
    r, c = (nh - base) // 2, (nw - base) // 2
    return np.ascontiguousarray(resized[r : r + base, c : c + base])


def image_crop(
    img: np.ndarray,
    *,
    size: int = 224,
    train: bool,
    rng: np.random.Generator | None = None,
    base: int = IMAGE_BASE,
) -> np.ndarray:
    """A ``uint8 (size, size)`` crop of the image scaled to ``base``: random when training,
    the centre otherwise."""
    if size > base:
        raise ValueError(f"crop size {size} is larger than the base size {base}")
    if train and rng is None:
        raise ValueError("image_crop(train=True) needs an rng (np.random.Generator)")
    img = image_to_base(img, base)
    if train and rng:
        i, j = (int(v) for v in rng.integers(0, base - size + 1, size=2))
    else:
        i = j = (base - size) // 2
    return np.ascontiguousarray(img[i : i + size, j : j + size])


def to_native(
    modality: str, array: np.ndarray, *, video_size: int = VIDEO_SIZE, image_base: int = IMAGE_BASE
) -> np.ndarray:
    """A reader's array in the modality's native shape (what packed shards hold).

    echo_video: :func:`crop_sector_square` unless already ``video_size`` square;
    angio_video: scaled to ``video_size`` square; cxr_image: :func:`image_to_base`;
    ecg_waveform: unchanged (readers already give (12, 5000)).
    """
    if modality == "echo_video":
        if array.shape[1:] == (video_size, video_size):
            return array
        return crop_sector_square(array, size=video_size)
    if modality == "angio_video":
        _check_video(array)
        return resize_frames(array, video_size, video_size)
    if modality == "cxr_image":
        return image_to_base(array, image_base)
    if modality == "ecg_waveform":
        return array
    raise ValueError(
        f"to_native: {modality!r} is not a diagnostic modality; expected "
        "echo_video, ecg_waveform, angio_video or cxr_image"
    )


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """The sentences of a report: split where ``.``, ``!`` or ``?`` and white space (line
    breaks included) come before a capital or a digit, so "Vent. rate" stays whole."""
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def keep_sentences(text: str, keep: float, rng: np.random.Generator) -> str:
    """A training view of a report: each sentence kept with probability ``keep``, in
    order, at least one (ConVIRT-style text augmentation, so a short prompt lands near the
    reports that state it). ``keep = 1`` returns the text unchanged."""
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be in (0, 1], got {keep!r}")
    sentences = split_sentences(text)
    if keep == 1.0 or len(sentences) < 2:
        return text
    mask = rng.random(len(sentences)) < keep
    if not mask.any():
        mask[rng.integers(len(sentences))] = True
    return " ".join(s for s, m in zip(sentences, mask, strict=True) if m)
