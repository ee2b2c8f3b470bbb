"""Clips/s of 16-frame 112 x 112 training clips: decoding each AVI vs packed shards.

    python benchmarks/bench_loading.py [N_CLIPS]

Writes N small synthetic echo AVIs (112 x 112, 60 frames, MJPG via PyAV) to a temporary
directory, then times, on the same samples, (a) decoding each AVI per sample with
``read_video`` and cutting a training clip with ``video_clip``, and (b) ``PackedStore.load``
plus the same ``video_clip`` after ``clerc prepare``. Prints both rates and their ratio
(target: packed >= 10x).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def synthetic_echo(rng: np.random.Generator, n_frames: int = 60, size: int = 112) -> np.ndarray:
    """uint8 (n_frames, size, size): noise plus a pulsing bright disc (a beating chamber)."""
    yy, xx = np.mgrid[:size, :size]
    frames = rng.integers(0, 40, (n_frames, size, size), dtype=np.uint8)
    cy, cx = rng.integers(40, 72, size=2)
    for t in range(n_frames):
        r = 18 + 8 * np.sin(2 * np.pi * t / 30)
        frames[t][(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 200
    return frames


def write_avis(directory: Path, n: int, seed: int = 0) -> list[str]:
    """Write ``n`` MJPG AVIs; returns their file names."""
    import av

    rng = np.random.default_rng(seed)
    names = []
    for i in range(n):
        name = f"echo{i:04d}.avi"
        with av.open(str(directory / name), "w") as c:
            s = c.add_stream("mjpeg", rate=30)
            s.width = s.height = 112
            s.pix_fmt = "yuvj420p"
            for f in synthetic_echo(rng):
                for p in s.encode(av.VideoFrame.from_ndarray(f, format="gray")):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
        names.append(name)
    return names


def _manifest(directory: Path, names: list[str]) -> None:
    from clerc.data.manifest import write_manifest

    samples = pd.DataFrame({
        "patient_id": [f"p{i}" for i in range(len(names))],
        "study_id": [f"st{i}" for i in range(len(names))],
        "sample_id": [f"s{i}" for i in range(len(names))],
        "modality": "echo_video", "acquired_at": pd.Timestamp("2020-01-01"),
        "path": names, "text": pd.NA, "split": "train"})
    write_manifest(directory, samples, pd.DataFrame(), pd.DataFrame())


def measure(n_clips: int = 64, min_seconds: float = 0.5) -> dict[str, float]:
    """Clips/s of per-sample AVI decoding vs packed shards, and their ratio."""
    from clerc.data.packed import PackedStore, prepare
    from clerc.data.readers import read_video
    from clerc.data.transforms import video_clip

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        names = write_avis(root, n_clips)
        _manifest(root, names)
        rng = np.random.default_rng(0)

        t0 = time.perf_counter()
        for name in names:
            frames, fps = read_video(root / name)
            video_clip(frames, fps=fps, train=True, rng=rng)
        decode_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        prepare(root, progress=False)
        prepare_s = time.perf_counter() - t0

        store = PackedStore(root / "packed")
        ids = [f"s{i}" for i in range(n_clips)]
        passes, t0 = 0, time.perf_counter()
        while passes == 0 or time.perf_counter() - t0 < min_seconds:
            for sid in ids:
                video_clip(store.load(sid), fps=store.fps(sid), train=True, rng=rng)
            passes += 1
        packed_s = (time.perf_counter() - t0) / passes

    return {"n_clips": n_clips, "decode_clips_per_s": n_clips / decode_s,
            "packed_clips_per_s": n_clips / packed_s, "ratio": decode_s / packed_s,
            "prepare_s": prepare_s}


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 64
    r = measure(n)
    print(f"{n} clips of 16x112x112 from 60-frame MJPG AVIs")
    print(f"  decode AVI per sample : {r['decode_clips_per_s']:10.1f} clips/s")
    print(f"  packed shards         : {r['packed_clips_per_s']:10.1f} clips/s "
          f"(one-off prepare {r['prepare_s']:.2f} s)")
    print(f"  ratio packed / decode : {r['ratio']:10.1f}x (target >= 10x)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
