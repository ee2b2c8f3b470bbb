"""``clerc embed``: embed every sample of a manifest (and every prompt) with a checkpoint.

Evaluation views, at the checkpoint's ``ModelConfig`` sizes:
- video (echo, angio): every clip of ``video_clips_covering``; the sample's embedding is
  the mean of the clip embeddings, re-normalised.
- ECG: the non-overlapping-as-possible crops of ``ecg_length`` covering the whole signal
  (two for a 10 s ECG at the paper's 2500 samples), mean of their embeddings,
  re-normalised. The whole recording is seen, as with videos; training's random crops
  make every window in-distribution.
- CXR: the centre crop; text: the tokenised report.
Prompt embeddings of every prompt of the task definitions and the learned logit scale
(the multiplier) are stored alongside. Results are cached at ``DIR/embeddings/<key>.npz``
where the key hashes the checkpoint bytes, the manifest tables, the (size, mtime_ns) of
every media file (and the packed index) and the prompts; a changed input gives a new key,
so a stale file is never read. Under ``torchrun`` each rank embeds every
``world_size``-th sample and rank 0 gathers and writes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from clerc.data.inputs import eval_views, load_input
from clerc.data.manifest import Manifest, manifest_hash
from clerc.evaluate.embeddings import Embeddings, normalize_rows
from clerc.kinds import ecg_views  # noqa: F401  (kept importable from here)
from clerc.modalities import MODALITY_NAMES, get_modality

#: Bumped when the way embeddings are computed changes (old cache files then miss).
EMBED_VERSION = 2  # 2: video clips sampled by time (each video's own fps)
CACHE_DIR = "embeddings"


def cache_key(checkpoint: Any, manifest: Manifest, prompts: list[str]) -> str:
    """Hash of everything an embedding file depends on. ``checkpoint`` is a checkpoint path
    or a model source (``clerc.models.source``: code, weights, arguments, view sizes)."""
    from clerc.models.source import as_source

    h = hashlib.sha256(f"clerc-embed-v{EMBED_VERSION}\n".encode())
    h.update(as_source(checkpoint).identity().encode())
    h.update(manifest_hash(manifest.root).encode())
    for p in manifest.samples["path"].dropna().astype(str):
        f = manifest.resolve(p)
        st = f.stat() if f.exists() else None
        h.update(f"{p}\0{st.st_size if st else -1}\0{st.st_mtime_ns if st else -1}\n".encode())
    index = manifest.root / "packed" / "index.parquet"
    if index.is_file():
        h.update(f"packed\0{index.stat().st_size}\0{index.stat().st_mtime_ns}".encode())
    h.update(json.dumps(prompts).encode())
    return h.hexdigest()[:32]


def cache_path(data_dir: str | Path, key: str) -> Path:
    return Path(data_dir) / CACHE_DIR / f"{key}.npz"


def views(modality: str, x: Any, spec: Any) -> np.ndarray:
    """The evaluation views ``(K, ...)`` of one native diagnostic sample (the modality's
    kind's ``eval_views``; videos are a ``Video``)."""
    if get_modality(modality).is_text:
        raise ValueError(f"views: {modality!r} is text; tokenise it instead")
    return eval_views(modality, x, spec)


def _load(manifest: Manifest, row: dict[str, Any], store: Any) -> Any:
    return load_input(manifest, row, store)


def _batches(
    items: Iterator[tuple[int, np.ndarray]], size: int
) -> Iterator[tuple[list[int], np.ndarray]]:
    owners: list[int] = []
    arrays: list[np.ndarray] = []
    for owner, arr in items:
        owners.append(owner)
        arrays.append(arr)
        if len(arrays) == size:
            yield owners, np.stack(arrays)
            owners, arrays = [], []
    if arrays:
        yield owners, np.stack(arrays)


class _Encoder:
    """Runs one encoder on numpy batches (no grad, bf16 autocast on CUDA)."""

    def __init__(self, model: Any, device: str) -> None:
        self.model, self.device = model, device

    def __call__(self, modality: str, batch: np.ndarray | Any) -> np.ndarray:
        import torch

        x = (
            batch
            if isinstance(batch, torch.Tensor | list)
            else torch.from_numpy(np.ascontiguousarray(batch))
        )
        dev = torch.device(self.device)
        with (
            torch.no_grad(),
            torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"),
        ):
            z = self.model.encode(modality, x if isinstance(x, list) else x.to(dev), normalize=True)
        return z.float().cpu().numpy()


class _Views:
    """Map-style dataset: position -> (position, evaluation views of that sample)."""

    def __init__(
        self, manifest: Manifest, rows: list[dict[str, Any]], spec: Any, store: Any
    ) -> None:
        self.manifest, self.rows, self.spec, self.store = manifest, rows, spec, store

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray]:
        r = self.rows[i]
        return i, views(str(r["modality"]), _load(self.manifest, r, self.store), self.spec)


def _identity(x: Any) -> Any:
    return x


def _loaded(data: _Views, workers: int) -> Iterator[tuple[int, np.ndarray]]:
    """(position, views) in order; decoded in ``workers`` processes when > 0."""
    if workers < 1:
        return (data[i] for i in range(len(data)))
    import torch

    dataset = cast("torch.utils.data.Dataset[tuple[int, np.ndarray]]", data)  # map-style
    return iter(
        torch.utils.data.DataLoader(
            dataset, batch_size=None, num_workers=workers, collate_fn=_identity, prefetch_factor=4
        )
    )


def _embed_rows(
    enc: _Encoder,
    manifest: Manifest,
    rows: list[dict[str, Any]],
    spec: Any,
    batch_size: int,
    store: Any,
    advance: Callable[[int], None],
    workers: int = 0,
) -> np.ndarray:
    """Embeddings of ``rows`` (all of one modality), in order."""
    modality = str(rows[0]["modality"])
    if get_modality(modality).is_text:
        texts = [_load(manifest, r, store) for r in rows]
        out = []
        for i in range(0, len(texts), batch_size):
            out.append(enc(modality, enc.model.tokenize(texts[i : i + batch_size])))
            advance(len(texts[i : i + batch_size]))
        return np.concatenate(out)

    def items() -> Iterator[tuple[int, np.ndarray]]:
        for i, vs in _loaded(_Views(manifest, rows, spec, store), workers):
            for v in vs:
                yield i, v
            advance(1)

    sums: np.ndarray | None = None
    for owners, batch in _batches(items(), batch_size):
        z = enc(modality, batch)
        if sums is None:
            sums = np.zeros((len(rows), z.shape[1]), dtype=np.float64)
        np.add.at(sums, np.asarray(owners), z)
    if sums is None:
        raise ValueError(f"no {modality} samples to embed")
    return normalize_rows(sums)


def embed_manifest(
    model: Any,
    manifest: Manifest,
    cfg: Any,
    device: str = "cpu",
    batch_size: int = 32,
    prompts: list[str] | None = None,
    progress: Callable[[int], None] | None = None,
    rank: int = 0,
    world_size: int = 1,
    workers: int = 0,
    modalities: Sequence[str] = MODALITY_NAMES,
) -> Embeddings | None:
    """Embed every sample of ``modalities`` (this rank's share under torchrun) and the prompts.

    ``cfg`` is the checkpoint's ``ModelConfig`` (or a protocol model's ``InputSpec``);
    ``workers`` processes decode samples; samples of other modalities are left out.
    Returns the ``Embeddings`` on rank 0 (gathered from all ranks), None on other ranks.
    """
    from clerc.data.inputs import sample_spec
    from clerc.data.packed import open_store

    spec, store, enc = sample_spec(cfg), open_store(manifest.root), _Encoder(model, device)
    advance = progress or (lambda n: None)
    samples = manifest.samples
    samples = samples[samples["modality"].isin(list(modalities))].reset_index(drop=True)
    mine = np.arange(rank, len(samples), world_size)
    parts: dict[int, np.ndarray] = {}
    for modality in modalities:
        idx = mine[(samples["modality"].iloc[mine] == modality).to_numpy(bool)]
        if idx.size:
            rows = samples.iloc[idx].to_dict("records")
            z = _embed_rows(enc, manifest, rows, spec, batch_size, store, advance, workers)
            parts.update(zip(idx.tolist(), z, strict=True))
    parts = _gather(parts, world_size)
    if rank != 0:
        return None
    texts = list(prompts or [])
    pv = enc("text", model.tokenize(texts)) if texts else np.zeros((0, cfg.embed_dim), np.float32)
    vectors = (
        np.stack([parts[i] for i in range(len(samples))])
        if len(samples)
        else np.zeros((0, cfg.embed_dim), np.float32)
    )
    return Embeddings(
        samples=samples,
        vectors=vectors,
        prompt_texts=texts,
        prompt_vectors=pv,
        logit_scale=float(model.scale().detach().cpu()),
        header={"config": cfg.to_dict(), "embed_version": EMBED_VERSION},
    )


def _gather(parts: dict[int, np.ndarray], world_size: int) -> dict[int, np.ndarray]:
    """All ranks' ``{position: vector}`` merged on rank 0 (identity without torchrun)."""
    if world_size == 1:
        return parts
    import torch.distributed as dist

    gathered: list[dict[int, np.ndarray]] | None = (
        [{} for _ in range(world_size)] if dist.get_rank() == 0 else None
    )
    dist.gather_object(parts, gathered, dst=0)
    merged: dict[int, np.ndarray] = {}
    for g in gathered or []:
        merged.update(g)
    return merged


def _dist_env(device: str) -> tuple[int, int, int]:
    """(rank, world_size, local_rank); initialises the process group under torchrun.

    NCCL for a CUDA ``device`` (each rank then on its own GPU, which ``gather_object``
    needs), gloo otherwise.
    """
    import torch

    from clerc.train.distributed import init_from_env

    return init_from_env("cuda" if torch.device(device).type == "cuda" else "cpu")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def embed_cached(
    checkpoint: str | Path,
    data_dir: str | Path,
    prompts: list[str],
    *,
    device: str = "cpu",
    batch_size: int = 32,
    workers: int = 0,
    log: Callable[[str], None] = print,
) -> tuple[Embeddings | None, Path]:
    """Load the cached embeddings of (checkpoint, manifest, prompts) or compute and save.

    Returns (embeddings or None on non-zero ranks, cache path).
    """
    from clerc.data.packed import read_prepared

    manifest, _ = read_prepared(data_dir, log=log)
    from clerc.models.source import as_source

    source = as_source(checkpoint)
    prompts = prompts if source.has_text else []
    key = cache_key(source, manifest, prompts)
    path = cache_path(data_dir, key)
    if path.is_file():
        try:
            emb = Embeddings.load(path)
        except ValueError as exc:  # e.g. a write cut short: compute again, overwrite it
            log(f"embeddings: unreadable cache, recomputing ({exc})")
        else:
            if emb.header.get("cache_key") == key:
                log(f"embeddings: cached {path}")
                return emb, path
    rank, world, local = _dist_env(device)
    if world > 1 and device == "cuda":
        device = f"cuda:{local}"
    computed = _compute(source, manifest, prompts, device, batch_size, rank, world, workers)
    if computed is None:
        return None, path
    emb = computed
    header = {
        **emb.header,
        "cache_key": key,
        **source.header(),
        "manifest_hash": manifest_hash(data_dir),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    emb = Embeddings(
        emb.samples, emb.vectors, emb.prompt_texts, emb.prompt_vectors, emb.logit_scale, header
    )
    emb.save(path)
    log(f"embeddings: wrote {path}")
    return emb, path


def _compute(
    source: Any,
    manifest: Manifest,
    prompts: list[str],
    device: str,
    batch_size: int,
    rank: int,
    world: int,
    workers: int,
) -> Embeddings | None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    model, cfg, modalities = source.load(device)
    n = len(range(rank, int(manifest.samples["modality"].isin(list(modalities)).sum()), world))
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=rank != 0,
    ) as bar:
        t = bar.add_task("embedding samples", total=n)
        return embed_manifest(
            model,
            manifest,
            cfg,
            device,
            batch_size,
            prompts,
            progress=lambda k: bar.advance(t, k),
            rank=rank,
            world_size=world,
            workers=workers,
            modalities=modalities,
        )


def default_device() -> str:
    return "cuda" if _cuda() else "cpu"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from clerc.argtypes import at_least
    from clerc.models.cli import add_model_arguments

    parser.add_argument("--checkpoint", type=Path, default=None, help="checkpoint (.pt)")
    add_model_arguments(parser)
    parser.add_argument("--data", type=Path, required=True, help="manifest directory")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="also write the embeddings here (default: only the cache, DIR/embeddings/<key>.npz)",
    )
    parser.add_argument("--batch-size", type=at_least(1), default=32, help="views per forward pass")
    parser.add_argument(
        "--workers",
        type=at_least(0),
        default=0,
        help="processes decoding samples (0 = in the main process)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if any)")
    parser.add_argument(
        "--tasks-file",
        type=Path,
        default=None,
        help="extra task definitions whose prompts are embedded too",
    )


def run(args: argparse.Namespace) -> int:
    import shutil

    from clerc.evaluate.registry import all_prompts, load_definitions

    prompts = all_prompts(load_definitions(args.tasks_file))
    t0 = time.perf_counter()
    from clerc.models.cli import source_from_args

    source = source_from_args(args)
    if source is None:
        raise ValueError("give --checkpoint FILE or --model package.module:factory")
    emb, path = embed_cached(
        source,
        args.data,
        prompts,
        device=args.device or default_device(),
        batch_size=args.batch_size,
        workers=args.workers,
    )
    if emb is None:
        return 0
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, args.out)
        print(f"embeddings: copied to {args.out}")
    print(
        f"{len(emb.samples)} samples, {len(emb.prompt_texts)} prompts, dim {emb.dim}, "
        f"logit scale {emb.logit_scale:.2f} ({time.perf_counter() - t0:.1f} s)"
    )
    return 0
