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
  500 Hz.
- DICOM pixels go through pydicom's own display pipeline (:func:`dicom_display`): palette
  colour LUT, YBR -> RGB, Modality LUT / rescale, VOI LUT / window, MONOCHROME1 inversion,
  then luma. JPEG baseline, JPEG lossless and JPEG 2000 decode through pylibjpeg's plugins
  (dependencies of the package) or Pillow.
- A video's fps comes from the file: the container's rate, or DICOM FrameTime (ms),
  CineRate, RecommendedDisplayFrameRate or FrameTimeVector. A video with none (a .npy, a
  DICOM cine without those tags) gets :func:`default_fps` (30, or ``$CLERC_DEFAULT_FPS``)
  and a :class:`NoFrameRateWarning`; a single-frame DICOM still gets fps 0.0.

Every failure raises :class:`ReaderError` naming the file and what is wrong.
"""

from __future__ import annotations

import os
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from clerc.errors import UserError
from clerc.modalities import ECG_LEADS, get_modality

#: ECG sampling rate (Hz) and length (samples) of the native array.
ECG_FS = 500
ECG_LENGTH = 5000
#: fps assumed for a video whose file gives none (a .npy video; a DICOM cine without
#: FrameTime, CineRate, RecommendedDisplayFrameRate or FrameTimeVector), with a
#: :class:`NoFrameRateWarning`; the environment variable ``CLERC_DEFAULT_FPS`` overrides it.
#: The adapters, ``validate``, ``prepare``, training and embedding all read it through
#: :func:`default_fps`.
DEFAULT_FPS = 30.0
FPS_ENV = "CLERC_DEFAULT_FPS"

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
        raise ReaderError(
            f"{path}: not a readable .npy array ({type(exc).__name__}: {exc})"
        ) from exc


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
        frames = _video_from_npy(path)
        return frames, _assumed_fps(None, ".npy videos carry no frame rate")
    raise ReaderError(
        f"{path}: unsupported video file type {suffix!r}; expected one of "
        f"{', '.join(VIDEO_CONTAINERS)}, .dcm or .npy"
    )


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
        raise ReaderError(
            f"{path}: truncated video: header declares {declared} frames, "
            f"only {len(frames)} decoded"
        )
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
        raise ReaderError(
            f"{path}: expected a uint8 video of shape (T, H, W) or (T, H, W, 3), "
            f"got {arr.dtype} {arr.shape}"
        )
    return np.ascontiguousarray(arr)


class NoFrameRateWarning(UserWarning):
    """A video whose file gives no frame rate; :func:`default_fps` is assumed."""


def default_fps() -> float:
    """The fps assumed for a video that gives none: ``$CLERC_DEFAULT_FPS`` or 30."""
    raw = os.environ.get(FPS_ENV, "").strip()
    if not raw:
        return DEFAULT_FPS
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or not np.isfinite(value):
        raise ReaderError(f"{FPS_ENV}={raw!r}: expected a positive number of frames per second")
    return value


def _assumed_fps(path: Path | None, why: str) -> float:
    """The default fps, with a warning naming the file (``None``: one message for every
    file of a kind, which Python's default filter shows once)."""
    fps = default_fps()
    where = f"{path}: " if path is not None else ""
    warnings.warn(
        f"{where}{why}; assuming {fps:g} fps (set {FPS_ENV} to change)",
        NoFrameRateWarning,
        stacklevel=3,
    )
    return fps


def dicom_fps(ds: Any) -> float | None:
    """Frame rate from FrameTime (ms), CineRate, RecommendedDisplayFrameRate or the mean of
    FrameTimeVector (ms, first entry 0); None when the dataset gives none."""
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
    return None


def _dicom_fps(ds: Any, path: Path, n_frames: int) -> float:
    """The file's fps; a still gets 0.0, a cine without timing tags the default + a warning."""
    fps = dicom_fps(ds)
    if fps is not None:
        return fps
    if n_frames == 1:
        return 0.0
    return _assumed_fps(
        path,
        "multi-frame DICOM without FrameTime, CineRate, "
        "RecommendedDisplayFrameRate or FrameTimeVector",
    )


def _dicom_pixels(path: Path) -> tuple[np.ndarray, Any]:
    """Grayscale uint8 (T, H, W) display pixels and the dataset of a DICOM file.

    pydicom decodes (with pylibjpeg / Pillow for JPEG, JPEG 2000, RLE) and converts YBR to
    RGB; :func:`dicom_display` then applies the display pipeline.
    """
    import pydicom

    _check_file(path)
    try:
        ds = pydicom.dcmread(path)
        arr = dicom_display(np.asarray(ds.pixel_array), ds)
    except ReaderError:
        raise
    except Exception as exc:  # pydicom raises many types for corrupt or truncated files
        raise ReaderError(
            f"{path}: cannot decode DICOM pixel data ({type(exc).__name__}: {exc})"
        ) from exc
    n_frames = int(ds.get("NumberOfFrames") or 1)
    if arr.ndim == 2 and n_frames == 1:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] != n_frames:
        raise ReaderError(
            f"{path}: DICOM pixel array has shape {arr.shape}, expected "
            f"({n_frames}, Rows, Columns) for NumberOfFrames {n_frames}"
        )
    return np.ascontiguousarray(arr), ds


def dicom_display(arr: np.ndarray, ds: Any) -> np.ndarray:
    """Decoded pixel data -> grayscale uint8 as a viewer shows it, with pydicom's handlers.

    - PALETTE COLOR: ``apply_color_lut`` -> RGB -> luma (ITU-R 601).
    - RGB (and YBR, which pydicom's decoding already gives as RGB): luma; more than 8 bits
      stored are scaled linearly from ``[0, 2**BitsStored - 1]``.
    - MONOCHROME1/2: ``apply_modality_lut`` (rescale or Modality LUT Sequence), then
      ``apply_voi_lut`` (VOI LUT Sequence first, else the first window); the result is
      scaled linearly from the output range the standard gives that step (the LUT's bit
      depth, the window's ``[y_min, y_max]``, else the modality output range) to 0-255.
      MONOCHROME1 is then inverted (white = low values).
    """
    from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    samples = int(ds.get("SamplesPerPixel") or 1)
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds)
        depth = int(ds.RedPaletteColorLookupTableDescriptor[2])
        return _rgb_to_gray(_scale(rgb, 0.0, float(2**depth - 1)))
    if samples == 3:
        if arr.dtype != np.uint8:
            arr = _scale(arr, 0.0, float(2 ** int(ds.get("BitsStored") or 8) - 1))
        return _rgb_to_gray(arr)
    if samples != 1:
        raise ReaderError(f"SamplesPerPixel {samples}; expected 1 or 3")
    if not photometric.startswith("MONOCHROME"):
        raise ReaderError(
            f"PhotometricInterpretation {photometric!r} with one sample per "
            "pixel; expected MONOCHROME1, MONOCHROME2 or PALETTE COLOR"
        )
    lo, hi = _voi_range(ds)
    out = _scale(apply_voi_lut(apply_modality_lut(arr, ds), ds), lo, hi)
    return 255 - out if photometric == "MONOCHROME1" else out


def _voi_range(ds: Any) -> tuple[float, float]:
    """The output range of the modality + VOI steps (DICOM PS3.3 C.11), as pydicom applies
    them: a VOI LUT's bit depth, else a window's ``[y_min, y_max]``, else the modality
    output (a Modality LUT's bit depth, else the stored range rescaled)."""
    if ds.get("VOILUTSequence"):
        return 0.0, float(2 ** int(ds.VOILUTSequence[0].LUTDescriptor[2]) - 1)
    if ds.get("ModalityLUTSequence"):
        return 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    bits = int(ds.get("BitsStored") or 8)
    if int(ds.get("PixelRepresentation") or 0) == 0:
        lo, hi = 0.0, float(2**bits - 1)
    else:
        lo, hi = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        lo, hi = sorted(
            (lo * float(slope) + float(intercept), hi * float(slope) + float(intercept))
        )
    return lo, hi


def _scale(arr: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Linear map of ``[lo, hi]`` to uint8 ``[0, 255]`` (clipped, rounded)."""
    if arr.dtype == np.uint8 and (lo, hi) == (0.0, 255.0):
        return arr
    span = hi - lo if hi > lo else 1.0
    scaled = (np.asarray(arr, dtype=np.float64) - lo) * (255.0 / span)
    return np.rint(np.clip(scaled, 0, 255)).astype(np.uint8)


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
            raise ReaderError(
                f"{path}: expected an ECG array of shape (12, L) "
                f"(leads {', '.join(ECG_LEADS)}, mV, 500 Hz), got {arr.shape}"
            )
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
        raise ReaderError(
            f"{header}: cannot read WFDB record ({type(exc).__name__}: {exc})"
        ) from exc
    if rec.p_signal is None or rec.p_signal.size == 0:
        raise ReaderError(f"{header}: WFDB record has no samples")
    names = list(rec.sig_name or [])
    units = list(rec.units or [])
    order = _lead_index(names, header)
    scale = np.array(
        [_unit_factor(units[i] if i < len(units) else "", header, names[i]) for i in order],
        dtype=np.float64,
    )
    sig = np.asarray(rec.p_signal, dtype=np.float64).T[order] * scale[:, None]
    sig = np.nan_to_num(sig, nan=0.0)
    sig = _resample(sig, float(rec.fs), header)
    return _fit_length(sig.astype(np.float32))


def _lead_index(names: list[str], where: Path) -> list[int]:
    """Column of each lead of ``ECG_LEADS`` in ``names`` (matched case-insensitively)."""
    lower = [str(n).strip().lower() for n in names]
    missing = [lead for lead in ECG_LEADS if lead.lower() not in lower]
    if missing:
        raise ReaderError(
            f"{where}: leads {', '.join(missing)} not found; record has "
            f"{', '.join(map(str, names)) or 'no lead names'}; expected "
            f"{', '.join(ECG_LEADS)}"
        )
    dupes = sorted(
        {n for n in lower if lower.count(n) > 1 and n in {lead.lower() for lead in ECG_LEADS}}
    )
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
            raise ReaderError(
                f"{path}: expected a single-frame DICOM image, got {frames.shape[0]} frames"
            )
        return frames[0]
    if suffix == ".npy":
        arr = _load_npy(path)
        if arr.ndim == 3 and arr.shape[-1] == 3 and arr.dtype == np.uint8:
            arr = _rgb_to_gray(arr)
        if arr.ndim != 2 or arr.dtype != np.uint8 or 0 in arr.shape:
            raise ReaderError(f"{path}: expected a uint8 image (H, W), got {arr.dtype} {arr.shape}")
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


def sample_file(manifest: Any, row: Any) -> Path:
    """The file of a samples-table row (a row without a path is named)."""
    if not _present(row.get("path")):
        raise ReaderError(f"sample {row['sample_id']}: {row['modality']} sample has no path")
    return manifest.resolve(str(row["path"]))


def load_sample(manifest: Any, row: Any) -> np.ndarray | str:
    """The native array (or text) of one samples-table row, by the modality's kind.

    ``row`` is a mapping (a ``pd.Series`` row of ``manifest.samples`` or a dict); video
    returns the frames only (:func:`load_video` gives the fps too).
    """
    modality = get_modality(str(row["modality"]))
    if modality.is_text:
        text = row.get("text")
        if _present(text):
            return str(text)
        if not _present(row.get("path")):
            raise ReaderError(f"sample {row['sample_id']}: text sample has neither text nor path")
        return read_text(manifest.resolve(str(row["path"])))
    return read_file(modality.name, sample_file(manifest, row))


def load_video(manifest: Any, row: Any) -> tuple[np.ndarray, float]:
    """Frames and fps of a video row (see :func:`read_video`)."""
    return read_video(sample_file(manifest, row))


def read_file(modality: str, path: str | Path) -> Any:
    """The reader's output for a file of ``modality``, by its kind (``clerc.kinds``): video
    frames without fps, an ECG array, an image array, a report's text."""
    from clerc.kinds import get_kind

    kind = get_kind(get_modality(modality).kind)
    return kind.array(kind.read(Path(path)))
