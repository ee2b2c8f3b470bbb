"""``clerc prepare DIR``: decode every non-text sample once into packed memory-mapped shards.

Layout of the output directory (default ``DIR/packed``):

- ``{modality}-{NNNNN}.bin``: the raw C-order arrays of up to ``shard_size`` samples of one
  modality, concatenated: video ``uint8 (T, 112, 112)``, image ``uint8 (256, 256)``, ECG
  ``int16 (12, 5000)`` microvolts (clipped to +-32.767 mV, rounded to 1 uV).
- ``parts/{modality}-{NNNNN}.parquet``: the shard's index part, written after its ``.bin``
  (both by atomic rename), so a part marks a finished shard; re-running skips finished
  shards (resume) unless their sample list or a file's size or mtime changed. Rows of
  samples that failed to decode carry their error.
- ``index.parquet`` (sample_id, modality, shard, offset [bytes], shape, fps: the video's
  frame rate from its file, NaN for non-video; clips are sampled by it), written last, only
  when every shard is finished; ``failed.parquet`` lists skipped samples (``--skip-bad``).

What is stored is :func:`clerc.data.transforms.to_native` of the reader's array: echo
videos are cropped to the sector square only when they are not already 112 x 112, angio
videos are scaled to 112 x 112, CXRs scaled and centre-cropped to 256 x 256.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from clerc.data.manifest import Manifest
from clerc.kinds import ECG_SCALE, get_kind  # noqa: F401  (ECG_SCALE: old import path)
from clerc.modalities import get_modality

INDEX = "index.parquet"
FAILED = "failed.parquet"


@dataclass(frozen=True)
class ShardJob:
    """One shard to write: its name and the (sample_id, absolute file path) it holds."""

    out: Path
    modality: str
    name: str
    samples: tuple[tuple[str, str], ...]

    @property
    def part(self) -> Path:
        return self.out / "parts" / f"{self.name}.parquet"


@dataclass(frozen=True)
class ShardResult:
    name: str
    n_samples: int
    failures: tuple[tuple[str, str, str], ...] = ()  # (sample_id, path, error)
    resumed: bool = False


@dataclass(frozen=True)
class PrepareReport:
    """What ``prepare`` did; ``complete`` is True when ``index.parquet`` was written."""

    n_samples: int
    n_shards: int
    n_resumed: int
    failures: tuple[tuple[str, str, str], ...] = field(default_factory=tuple)
    complete: bool = False


def encode(modality: str, array: np.ndarray) -> np.ndarray:
    """The stored form of a native array (the kind's ``pack``: ECG mV float -> int16 uV)."""
    kind = get_kind(get_modality(modality).kind)
    return np.ascontiguousarray(kind.pack(array), dtype=kind.packed_dtype)


def plan_shards(manifest: Manifest, out: Path, shard_size: int) -> list[ShardJob]:
    """Shards of ``shard_size`` samples per non-text modality, in manifest order."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be a positive integer, got {shard_size}")
    jobs = []
    s = manifest.samples
    for modality in dict.fromkeys(s["modality"]):
        if get_modality(str(modality)).is_text:
            continue
        rows = s[s["modality"] == modality]
        pairs = [
            (str(i), str(manifest.resolve(str(p))))
            for i, p in zip(rows["sample_id"], rows["path"].fillna(""), strict=True)
        ]
        for k in range(0, len(pairs), shard_size):
            name = f"{modality}-{k // shard_size:05d}"
            jobs.append(ShardJob(out, str(modality), name, tuple(pairs[k : k + shard_size])))
    return jobs


def _stamp(path: str) -> str:
    """Size and mtime of a sample's file(s) (a WFDB record: its .hea and .dat), or ''."""
    p = Path(path)
    files = [p] if p.is_file() else [p.with_name(p.name + s) for s in (".hea", ".dat")]
    stats = [f.stat() for f in files if f.is_file()]
    return ";".join(f"{st.st_size}:{st.st_mtime_ns}" for st in stats)


def _finished(job: ShardJob, skip_bad: bool) -> ShardResult | None:
    """The result of an earlier run of ``job`` when it can be reused, else None."""
    if not job.part.is_file() or not (job.out / f"{job.name}.bin").is_file():
        return None
    part = pd.read_parquet(job.part)
    if "fps" not in part:
        return None  # written before frame rates were kept
    if list(part["sample_id"]) != [sid for sid, _ in job.samples]:
        return None  # the manifest or the shard size changed
    if "stamp" not in part or list(part["stamp"]) != [_stamp(p) for _, p in job.samples]:
        return None  # a file changed since the shard was written
    bad = part[part["error"].notna()]
    if len(bad) and not skip_bad:
        return None  # retry samples that failed before
    failures = tuple((r.sample_id, r.path, r.error) for r in bad.itertuples())
    return ShardResult(job.name, len(job.samples), failures, resumed=True)


def _read_native(modality: str, path: str) -> tuple[np.ndarray, float]:
    """The native array of a file and its fps (NaN for a kind that is not timed)."""
    kind = get_kind(get_modality(modality).kind)
    native = kind.native(modality, kind.read(Path(path)))
    return kind.array(native), float(native.fps) if kind.timed else float("nan")


def write_shard(
    job: ShardJob, skip_bad: bool, on_sample: Callable[[], None] | None = None
) -> ShardResult:
    """Decode the job's samples into ``{name}.bin`` and its part (unless failures block it)."""
    from clerc.data.readers import ReaderError

    done = _finished(job, skip_bad)
    if done is not None:
        return done
    bin_path = job.out / f"{job.name}.bin"
    tmp = bin_path.with_suffix(".bin.tmp")
    rows: list[tuple[str, str, str, int, list[int], str, str | None, float]] = []
    failures: list[tuple[str, str, str]] = []
    offset = 0
    with open(tmp, "wb") as f:
        for sid, path in job.samples:
            try:
                if not path:
                    raise ValueError(f"sample {sid}: {job.modality} sample has no path")
                native, fps = _read_native(job.modality, path)
                arr = encode(job.modality, native)
            except (ReaderError, ValueError) as exc:
                failures.append((sid, path, str(exc)))
                rows.append((sid, job.modality, job.name, -1, [], path, str(exc), np.nan))
            else:
                f.write(arr.tobytes())
                rows.append((sid, job.modality, job.name, offset, list(arr.shape), path, None, fps))
                offset += arr.nbytes
            if on_sample is not None:
                on_sample()
    if failures and not skip_bad:
        tmp.unlink()
        job.part.unlink(missing_ok=True)  # an older part of this shard is stale now
        return ShardResult(job.name, len(job.samples), tuple(failures))
    os.replace(tmp, bin_path)
    part = pd.DataFrame(
        rows, columns=["sample_id", "modality", "shard", "offset", "shape", "path", "error", "fps"]
    )
    part["stamp"] = [_stamp(p) for _, p in job.samples]
    part_tmp = job.part.with_suffix(".parquet.tmp")
    part.to_parquet(part_tmp, index=False)
    os.replace(part_tmp, job.part)
    return ShardResult(job.name, len(job.samples), tuple(failures))


def prepare(
    root: str | Path,
    out: str | Path | None = None,
    *,
    shard_size: int = 256,
    skip_bad: bool = False,
    workers: int = 1,
    progress: bool = True,
) -> PrepareReport:
    """Pack every non-text sample of the manifest in ``root``; see the module docstring."""
    from clerc.data.manifest import manifest_hash, read_manifest

    manifest = read_manifest(root)
    out = Path(out) if out is not None else Path(root) / "packed"
    (out / "parts").mkdir(parents=True, exist_ok=True)
    (out / INDEX).unlink(missing_ok=True)  # a stale index must not outlive a changed plan
    jobs = plan_shards(manifest, out, shard_size)
    results = _run_jobs(jobs, skip_bad, workers, progress)
    failures = tuple(f for r in results for f in r.failures)
    complete = all((j.part).is_file() for j in jobs) and (skip_bad or not failures)
    if complete:
        _write_index(
            out,
            jobs,
            {
                "manifest_hash": manifest_hash(root),
                "shard_size": shard_size,
                "n_failed": len(failures),
            },
        )
    return PrepareReport(
        sum(len(j.samples) for j in jobs),
        len(jobs),
        sum(r.resumed for r in results),
        failures,
        complete,
    )


def _run_jobs(jobs: list[ShardJob], skip_bad: bool, workers: int, show: bool) -> list[ShardResult]:
    from rich.progress import Progress

    total = sum(len(j.samples) for j in jobs)
    with Progress(disable=not show) as progress:
        task = progress.add_task("packing samples", total=total)
        if workers <= 1:
            return [write_shard(j, skip_bad, lambda: progress.advance(task)) for j in jobs]
        from concurrent.futures import ProcessPoolExecutor, as_completed

        results = []
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(write_shard, j, skip_bad): j for j in jobs}
            for fut in as_completed(futures):
                results.append(fut.result())
                progress.advance(task, len(futures[fut].samples))
        return results


def _write_index(out: Path, jobs: list[ShardJob], meta: dict) -> None:
    parts = (
        pd.concat([pd.read_parquet(j.part) for j in jobs], ignore_index=True)
        if jobs
        else pd.DataFrame(
            columns=["sample_id", "modality", "shard", "offset", "shape", "path", "error", "fps"]
        )
    )
    bad = parts["error"].notna()
    parts.loc[bad, ["sample_id", "modality", "path", "error"]].to_parquet(out / FAILED, index=False)
    (out / "packed.json").write_text(json.dumps(meta, indent=2))
    index = parts.loc[~bad, ["sample_id", "modality", "shard", "offset", "shape", "fps"]]
    tmp = out / (INDEX + ".tmp")
    index.to_parquet(tmp, index=False)
    os.replace(tmp, out / INDEX)


class PackedStore:
    """Read-only access to packed shards: ``load(sample_id)`` -> the native array.

    Video and image arrays are read-only views into a memory map (no copy); ECGs are
    converted back to float32 mV. Memory maps are opened lazily per process and never
    pickled, so a store can be handed to DataLoader workers.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        index_file = self.directory / INDEX
        if not index_file.is_file():
            raise FileNotFoundError(f"{index_file}: no packed index; run `clerc prepare`")
        index = pd.read_parquet(index_file)
        if "fps" not in index:
            raise ValueError(
                f"{index_file}: written by an older `clerc prepare` without frame "
                "rates; run `clerc prepare` again (it re-decodes every shard)"
            )
        self._fps = {
            str(sid): float(v) for sid, v in zip(index["sample_id"], index["fps"], strict=True)
        }
        self._entries = {
            str(sid): (str(m), str(shard), int(off), tuple(int(v) for v in shape))
            for sid, m, shard, off, shape in zip(
                index["sample_id"],
                index["modality"],
                index["shard"],
                index["offset"],
                index["shape"],
                strict=True,
            )
        }
        self._maps: dict[str, np.memmap] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_maps": {}}

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def sample_ids(self) -> list[str]:
        return list(self._entries)

    def failed_ids(self) -> set[str]:
        """Samples ``prepare --skip-bad`` could not decode (``failed.parquet``; none if absent)."""
        path = self.directory / FAILED
        if not path.is_file():
            return set()
        return set(pd.read_parquet(path, columns=["sample_id"])["sample_id"].astype(str))

    def fps(self, sample_id: str) -> float:
        """The frame rate the video's file gave (or the default it was read with)."""
        self._entry(sample_id)
        return self._fps[sample_id]

    def modality_of(self, sample_id: str) -> str:
        return self._entry(sample_id)[0]

    def _entry(self, sample_id: str) -> tuple[str, str, int, tuple[int, ...]]:
        try:
            return self._entries[sample_id]
        except KeyError:
            raise KeyError(
                f"sample {sample_id!r} is not in the packed store {self.directory}"
            ) from None

    def load(self, sample_id: str) -> np.ndarray:
        """The sample's native array (video uint8 (T,H,W), image uint8, ECG float32 mV)."""
        modality, shard, offset, shape = self._entry(sample_id)
        kind = get_kind(get_modality(modality).kind)
        if kind.packed_dtype is None:
            raise ValueError(f"sample {sample_id!r}: {modality} samples are not packed")
        if shard not in self._maps:
            self._maps[shard] = np.memmap(
                self.directory / f"{shard}.bin", dtype=kind.packed_dtype, mode="r"
            )
        data = self._maps[shard]
        start = offset // data.itemsize
        return kind.unpack(
            data[start : start + int(np.prod(shape))].view(np.ndarray).reshape(shape)
        )


def open_store(root: str | Path) -> PackedStore | None:
    """The packed store of a manifest directory (``root/packed``), or None if not prepared."""
    directory = Path(root) / "packed"
    return PackedStore(directory) if (directory / INDEX).is_file() else None


def read_prepared(
    root: str | Path, log: Callable[[str], None] | None = None
) -> tuple[Manifest, PackedStore | None]:
    """The manifest of ``root`` and its packed store (None if not prepared).

    Samples that ``clerc prepare --skip-bad`` could not decode are left out of the
    manifest's samples (training, embedding and baselines never see them), and ``log``
    (default: stderr) says how many and where they are listed.
    """
    from clerc.data.manifest import read_manifest

    manifest, store = read_manifest(root), open_store(root)
    bad = store.failed_ids() if store is not None else set()
    if store is None or not bad:
        return manifest, store
    keep = ~manifest.samples["sample_id"].astype(str).isin(bad).to_numpy()
    say = log or (lambda text: print(text, file=sys.stderr))
    say(
        f"{int((~keep).sum())} samples that `clerc prepare --skip-bad` could not decode are "
        f"left out (listed in {store.directory / FAILED})"
    )
    return replace(manifest, samples=manifest.samples[keep].reset_index(drop=True)), store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from clerc.argtypes import at_least

    parser.add_argument("dir", type=Path, help="manifest directory")
    parser.add_argument("--out", type=Path, default=None, help="output (default DIR/packed)")
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave out samples that fail to decode instead of failing",
    )
    parser.add_argument("--workers", type=at_least(1), default=1, help="decoding processes")
    parser.add_argument("--shard-size", type=at_least(1), default=256, help="samples per shard")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(stderr=True, soft_wrap=True)
    report = prepare(
        args.dir, args.out, shard_size=args.shard_size, skip_bad=args.skip_bad, workers=args.workers
    )
    for sid, _path, error in report.failures:
        console.print(f"failed {sid}: {error}", markup=False, highlight=False, style="red")
    console.print(
        f"{report.n_samples} samples in {report.n_shards} shards "
        f"({report.n_resumed} resumed), {len(report.failures)} failed to decode"
    )
    if report.failures and not args.skip_bad:
        console.print("index not written; fix the files or re-run with --skip-bad")
        return 1
    if report.failures:
        out = args.out if args.out is not None else args.dir / "packed"
        console.print(
            f"skipped samples are listed in {out / FAILED}; training, embedding "
            "and the baselines leave them out until they are fixed and `clerc "
            "prepare` runs again",
            markup=False,
        )
    return 0
