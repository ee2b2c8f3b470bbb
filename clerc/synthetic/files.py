"""Write rendered arrays in true file formats: MJPEG AVI, WFDB, PNG. Byte-deterministic."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clerc.modalities import ECG_LEADS

#: JPEG quantiser for the AVI frames (2 = best, 31 = worst).
AVI_QUALITY = 9


def write_avi(path: Path, frames: np.ndarray, fps: float) -> None:
    """Grayscale uint8 (T, H, W) -> MJPEG AVI (pix_fmt yuvj420p)."""
    import av

    if frames.dtype != np.uint8 or frames.ndim != 3:
        raise ValueError(
            f"{path}: expected uint8 (T, H, W) frames, got {frames.dtype} {frames.shape}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream("mjpeg", rate=int(round(fps)))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuvj420p"
        stream.options = {"qmin": str(AVI_QUALITY), "qmax": str(AVI_QUALITY)}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="gray")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_ecg(path: Path, signal: np.ndarray, fs: int = 500) -> None:
    """float32 (12, N) mV -> WFDB record ``path`` (``.hea`` + ``.dat``, fmt 16, 1 uV units).

    Writes the same bytes as ``wfdb.wrsamp(..., fmt=["16"] * 12, adc_gain=[1000.0] * 12,
    baseline=[0] * 12)`` (checked in the tests) without its per-call overhead.
    """
    if signal.ndim != 2 or signal.shape[0] != len(ECG_LEADS):
        raise ValueError(f"{path}: expected {len(ECG_LEADS)} leads, got shape {signal.shape}")
    path = path.with_suffix(".hea")
    path.parent.mkdir(parents=True, exist_ok=True)
    digital = np.clip(np.round(signal.astype(np.float64) * 1000.0), -32767, 32767).astype("<i2")
    dat = path.with_suffix(".dat")
    dat.write_bytes(np.ascontiguousarray(digital.T).tobytes())
    lines = [f"{path.stem} {len(ECG_LEADS)} {fs} {signal.shape[1]}"]
    for lead, d in zip(ECG_LEADS, digital, strict=True):
        checksum = int(d.astype(np.int64).sum()) & 0xFFFF
        lines.append(f"{dat.name} 16 1000.0(0)/mV 16 0 {int(d[0])} {checksum} 0 {lead}")
    path.write_text("\n".join(lines) + "\n")


def write_png(path: Path, image: np.ndarray) -> None:
    """Grayscale uint8 (H, W) -> PNG without metadata."""
    from PIL import Image

    if image.dtype != np.uint8 or image.ndim != 2:
        raise ValueError(f"{path}: expected uint8 (H, W) image, got {image.dtype} {image.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image, mode="L").save(path, format="PNG", optimize=False)
