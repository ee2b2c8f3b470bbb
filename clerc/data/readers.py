"""Readers: one function per kind of file, each returning the native array of the contract.

- video: ``read_video(path) -> (uint8 (T, H, W) grayscale, fps)`` from .avi/.mp4/.mov/.mkv
  (PyAV), .dcm (pydicom, multi-frame cine or a single-frame still, T = 1) or .npy.
- ECG: ``read_ecg(path) -> float32 (12, 5000)`` mV at 500 Hz in ``ECG_LEADS`` order, from a
  WFDB record (``rec``, ``rec.hea`` or ``rec.dat``) or a .npy of shape (12, L).
- image: ``read_image(path) -> uint8 (H, W)`` grayscale from PNG/JPG (Pillow), .dcm or .npy.
- text: ``read_text(path) -> str`` (UTF-8 .txt).

Decisions:
- ECG samples that are NaN (WFDB's "invalid sample" marker, MIMIC-IV-ECG has some) are
  replaced by 0 mV, the baseline; a record that is entirely NaN or constant therefore reads
  as flat, which :func:`is_flat` detects (``clerc validate --deep`` reports it).
- ECGs shorter than 10 s are zero-padded at the end; longer ones keep the first 10 s.
- A .npy ECG carries no lead names or rate: it must be (12, L) in ``ECG_LEADS`` order, mV,
  500 Hz. A .npy video carries no rate: its fps is :data:`NPY_FPS`.
- DICOM pixel data with more than 8 bits stored is scaled linearly from
  ``[0, 2**BitsStored - 1]`` to ``[0, 255]``; MONOCHROME1 is inverted.
- A multi-frame DICOM needs FrameTime (ms), CineRate, RecommendedDisplayFrameRate or
  FrameTimeVector for its fps; a single-frame still without them gets fps 0.0 (one frame).

Every failure raises :class:`ReaderError` naming the file and what is wrong.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from clerc.errors import UserError
from clerc.modalities import ECG_LEADS, get_modality

#: ECG sampling rate (Hz) and length (samples) of the native array.
ECG_FS = 500
ECG_LENGTH = 5000
#: fps given to .npy videos, which carry no timing (the native echo rate).
NPY_FPS = 30.0

VIDEO_CONTAINERS = (".avi", ".mp4", ".mov", ".mkv", ".webm")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

#: unit name (lower case) -> factor to millivolts.
_UNITS_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "microvolt": 1e-3, "v": 1e3}


class ReaderError(UserError, ValueError):
    """A sample file that cannot be read; the message names the file and the problem."""


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise ReaderError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise ReaderError(f"{path}: file is empty (0 bytes)")


def _rgb_to_gray(arr: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma of a uint8 (..., 3) array, as uint8 (the same weights as Pillow's L)."""
    w = np.array([299, 587, 114], dtype=np.uint32)
    return ((arr.astype(np.uint32) @ w + 500) // 1000).astype(np.uint8)


def _load_npy(path: Path) -> np.ndarray:
    _check_file(path)
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # a corrupt header raises ValueError, SyntaxError, TokenError...
        raise ReaderError(f"{path}: not a readable .npy array ({type(exc).__name__}: "
                          f"{exc})") from exc


# --------------------------------------------------------------------------- video
def read_video(path: str | Path) -> tuple[np.ndarray, float]:
    """Decode a video to grayscale ``uint8 (T, H, W)`` and its frame rate."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in VIDEO_CONTAINERS:
        return _read_container(path)
    if suffix in (".dcm", ".dicom"):
        return _read_dicom(path)
    if suffix == ".npy":
        return _video_from_npy(path), NPY_FPS
    raise ReaderError(f"{path}: unsupported video file type {suffix!r}; expected one of "
                      f"{', '.join(VIDEO_CONTAINERS)}, .dcm or .npy")


def _read_container(path: Path) -> tuple[np.ndarray, float]:
    import av

    _check_file(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ReaderError(f"{path}: no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            declared = int(stream.frames or 0)
            frames = [f.to_ndarray(format="gray") for f in container.decode(stream)]
    except av.FFmpegError as exc:
        raise ReaderError(f"{path}: cannot decode video ({exc})") from exc
    if not frames:
        raise ReaderError(f"{path}: video has no decodable frames")
    if declared and len(frames) < declared:
        raise ReaderError(f"{path}: truncated video: header declares {declared} frames, "
                          f"only {len(frames)} decoded")
    if not rate or float(rate) <= 0:
        raise ReaderError(f"{path}: video stream has no frame rate")
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise ReaderError(f"{path}: frame size changes within the video ({sorted(shapes)})")
    return np.ascontiguousarray(np.stack(frames)), float(rate)


def _video_from_npy(path: Path) -> np.ndarray:
    arr = _load_npy(path)
    if arr.ndim == 4 and arr.shape[-1] == 3 and arr.dtype == np.uint8:
        arr = _rgb_to_gray(arr)
    if arr.ndim != 3 or arr.dtype != np.uint8 or 0 in arr.shape:
        raise ReaderError(f"{path}: expected a uint8 video of shape (T, H, W) or (T, H, W, 3), "
                          f"got {arr.dtype} {arr.shape}")
    return np.ascontiguousarray(arr)


def _dicom_fps(ds: Any, path: Path, n_frames: int) -> float:
    """Frame rate from FrameTime (ms), CineRate, RecommendedDisplayFrameRate or FrameTimeVector."""
    frame_time = ds.get("FrameTime")
    if frame_time not in (None, "") and float(frame_time) > 0:
        return 1000.0 / float(frame_time)
    for tag in ("CineRate", "RecommendedDisplayFrameRate"):
        value = ds.get(tag)
        if value not in (None, "") and float(value) > 0:
            return float(value)
    vector = ds.get("FrameTimeVector")
    if vector not in (None, "") and len(vector) > 1:
        mean_ms = float(np.mean([float(v) for v in list(vector)[1:]]))
        if mean_ms > 0:
            return 1000.0 / mean_ms
    if n_frames == 1:
        return 0.0
    raise ReaderError(f"{path}: multi-frame DICOM without FrameTime, CineRate, "
                      "RecommendedDisplayFrameRate or FrameTimeVector; cannot tell its fps")


def _dicom_pixels(path: Path) -> tuple[np.ndarray, Any]:
    """Grayscale uint8 (T, H, W) pixels and the dataset of a DICOM file."""
    import pydicom

    _check_file(path)
    try:
        ds = pydicom.dcmread(path)
        arr = np.asarray(ds.pixel_array)
    except Exception as exc:  # pydicom raises many types for corrupt or truncated files
        raise ReaderError(f"{path}: cannot decode DICOM pixel data ({type(exc).__name__}: "
                          f"{exc})") from exc
    n_frames = int(ds.get("NumberOfFrames") or 1)
    samples = int(ds.get("SamplesPerPixel") or 1)
    if samples == 3:
        arr = _rgb_to_gray(arr if arr.dtype == np.uint8 else _to_uint8(arr, ds))
    elif samples != 1:
        raise ReaderError(f"{path}: SamplesPerPixel {samples}; expected 1 or 3")
    arr = _to_uint8(arr, ds)
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        arr = 255 - arr
    if arr.ndim == 2 and n_frames == 1:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] != n_frames:
        raise ReaderError(f"{path}: DICOM pixel array has shape {arr.shape}, expected "
                          f"({n_frames}, Rows, Columns) for NumberOfFrames {n_frames}")
    return np.ascontiguousarray(arr), ds


def _to_uint8(arr: np.ndarray, ds: Any) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    bits = int(ds.get("BitsStored") or 8)
    top = float(2**bits - 1)
    if np.issubdtype(arr.dtype, np.signedinteger):
        arr = arr.astype(np.float32) + 2 ** (bits - 1)
    scaled = np.clip(arr.astype(np.float32) * (255.0 / top), 0, 255)
    return np.rint(scaled).astype(np.uint8)


def _read_dicom(path: Path) -> tuple[np.ndarray, float]:
    frames, ds = _dicom_pixels(path)
    return frames, _dicom_fps(ds, path, frames.shape[0])


# --------------------------------------------------------------------------- ECG
def is_flat(sig: np.ndarray, tol: float = 1e-6) -> bool:
    """True when every lead is constant within ``tol`` (all-zero or all-NaN records)."""
    sig = np.nan_to_num(np.asarray(sig, dtype=np.float64), nan=0.0)
    if sig.size == 0:
        return True
    return bool(np.all(np.ptp(sig, axis=-1) <= tol))


def read_ecg(path: str | Path) -> np.ndarray:
    """Read a 12-lead ECG as float32 (12, 5000) mV at 500 Hz, leads in ``ECG_LEADS`` order."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        arr = _load_npy(path)
        if arr.ndim != 2 or arr.shape[0] != 12 or arr.shape[1] == 0:
            raise ReaderError(f"{path}: expected an ECG array of shape (12, L) "
                              f"(leads {', '.join(ECG_LEADS)}, mV, 500 Hz), got {arr.shape}")
        if not np.issubdtype(arr.dtype, np.number):
            raise ReaderError(f"{path}: expected a numeric ECG array, got dtype {arr.dtype}")
        return _fit_length(np.nan_to_num(arr.astype(np.float32), nan=0.0))
    return _read_wfdb(path)


def _read_wfdb(path: Path) -> np.ndarray:
    import wfdb

    record = path.with_suffix("") if path.suffix.lower() in (".hea", ".dat") else path
    header = record.with_name(record.name + ".hea")
    _check_file(header)
    try:
        rec = wfdb.rdrecord(str(record), physical=True)
    except FileNotFoundError as exc:
        raise ReaderError(f"{header}: a file of the record is missing ({exc})") from exc
    except Exception as exc:  # wfdb raises ValueError, HeaderSyntaxError, IndexError...
        raise ReaderError(f"{header}: cannot read WFDB record ({type(exc).__name__}: "
                          f"{exc})") from exc
    if rec.p_signal is None or rec.p_signal.size == 0:
        raise ReaderError(f"{header}: WFDB record has no samples")
    names = list(rec.sig_name or [])
    units = list(rec.units or [])
    order = _lead_index(names, header)
    scale = np.array([_unit_factor(units[i] if i < len(units) else "", header, names[i])
                      for i in order], dtype=np.float64)
    sig = np.asarray(rec.p_signal, dtype=np.float64).T[order] * scale[:, None]
    sig = np.nan_to_num(sig, nan=0.0)
    sig = _resample(sig, float(rec.fs), header)
    return _fit_length(sig.astype(np.float32))


def _lead_index(names: list[str], where: Path) -> list[int]:
    """Column of each lead of ``ECG_LEADS`` in ``names`` (matched case-insensitively)."""
    lower = [str(n).strip().lower() for n in names]
    missing = [lead for lead in ECG_LEADS if lead.lower() not in lower]
    if missing:
        raise ReaderError(f"{where}: leads {', '.join(missing)} not found; record has "
                          f"{', '.join(map(str, names)) or 'no lead names'}; expected "
                          f"{', '.join(ECG_LEADS)}")
    dupes = sorted({n for n in lower if lower.count(n) > 1 and n in
                    {lead.lower() for lead in ECG_LEADS}})
    if dupes:
        raise ReaderError(f"{where}: lead names {', '.join(dupes)} appear more than once")
    return [lower.index(lead.lower()) for lead in ECG_LEADS]


def _unit_factor(unit: str, where: Path, lead: str) -> float:
    key = str(unit).strip().lower()
    if key not in _UNITS_TO_MV:
        raise ReaderError(f"{where}: lead {lead} has units {unit!r}; expected mV, uV or V")
    return _UNITS_TO_MV[key]


def _resample(sig: np.ndarray, fs: float, where: Path) -> np.ndarray:
    """Resample (leads, L) from ``fs`` to 500 Hz with a polyphase filter."""
    if not fs or fs <= 0:
        raise ReaderError(f"{where}: sampling frequency {fs!r}; expected a positive number")
    if fs == ECG_FS:
        return sig
    from scipy.signal import resample_poly

    ratio = Fraction(ECG_FS / fs).limit_denominator(1000)
    return resample_poly(sig, ratio.numerator, ratio.denominator, axis=1)


def _fit_length(sig: np.ndarray, length: int = ECG_LENGTH) -> np.ndarray:
    """Keep the first ``length`` samples, zero-padding at the end when shorter."""
    out = np.zeros((sig.shape[0], length), dtype=np.float32)
    n = min(length, sig.shape[1])
    out[:, :n] = sig[:, :n]
    return out


# --------------------------------------------------------------------------- image, text
def read_image(path: str | Path) -> np.ndarray:
    """Read an image as grayscale uint8 (H, W); 16-bit images are scaled to 8 bits."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".dcm", ".dicom"):
        frames, _ = _dicom_pixels(path)
        if frames.shape[0] != 1:
            raise ReaderError(f"{path}: expected a single-frame DICOM image, "
                              f"got {frames.shape[0]} frames")
        return frames[0]
    if suffix == ".npy":
        arr = _load_npy(path)
        if arr.ndim == 3 and arr.shape[-1] == 3 and arr.dtype == np.uint8:
            arr = _rgb_to_gray(arr)
        if arr.ndim != 2 or arr.dtype != np.uint8 or 0 in arr.shape:
            raise ReaderError(f"{path}: expected a uint8 image (H, W), got {arr.dtype} "
                              f"{arr.shape}")
        return np.ascontiguousarray(arr)
    return _read_pillow(path)


def _read_pillow(path: Path) -> np.ndarray:
    from PIL import Image

    _check_file(path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float32) / 257.0
                return np.rint(np.clip(arr, 0, 255)).astype(np.uint8)
            return np.asarray(im.convert("L"), dtype=np.uint8).copy()
    except (OSError, SyntaxError, ValueError) as exc:  # UnidentifiedImageError is an OSError
        raise ReaderError(f"{path}: cannot decode image ({exc})") from exc


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text report; an empty report is an error."""
    path = Path(path)
    _check_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ReaderError(f"{path}: not UTF-8 text ({exc})") from exc
    if not text.strip():
        raise ReaderError(f"{path}: report is blank")
    return text.strip()


# --------------------------------------------------------------------------- dispatch
def _present(value: Any) -> bool:
    """True for a usable cell (not None, NaN, <NA> or the empty string)."""
    import pandas as pd

    return not (value is None or pd.isna(value) or str(value) == "")


def load_sample(manifest: Any, row: Any) -> np.ndarray | str:
    """The native array (or text) of one samples-table row, by the modality's kind.

    ``row`` is a mapping (a ``pd.Series`` row of ``manifest.samples`` or a dict); video
    returns the frames only (use :func:`read_video` for the fps).
    """
    modality = get_modality(str(row["modality"]))
    path = row.get("path")
    if modality.is_text:
        text = row.get("text")
        if _present(text):
            return str(text)
        if not _present(path):
            raise ReaderError(f"sample {row['sample_id']}: text sample has neither text nor "
                              "path")
        return read_text(manifest.resolve(str(path)))
    if not _present(path):
        raise ReaderError(f"sample {row['sample_id']}: {modality.name} sample has no path")
    return read_file(modality.name, manifest.resolve(str(path)))


def read_file(modality: str, path: str | Path) -> Any:
    """The reader's output for a file of ``modality``, by its kind (``clerc.kinds``): video
    frames without fps, an ECG array, an image array, a report's text."""
    from clerc.kinds import get_kind

    return get_kind(get_modality(modality).kind).read(Path(path))
