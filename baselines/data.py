"""Sample-level data for the baselines, through CLERC's own pipeline.

Samples load natively from ``DIR/packed`` (``PackedStore``) when ``clerc prepare`` wrote
it, else read and made native by the modality's kind: the input pipeline
``clerc.data.inputs``, shared with CLERC's training and ``clerc embed``. Training views
are CLERC's training transforms at the ``ModelConfig`` sizes (random clip with padding
and crop, random ECG crop, random CXR crop); validation uses the single deterministic
view (centre clip, centre crop); predictions average over the kind's evaluation views
(every clip or ECG window covering the sample, the CXR centre crop), as CLERC's
embeddings do.

Unlike CLERC (one sample per patient per epoch), a supervised model trains on every
labelled sample once per epoch: each sample carries its own labels.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from clerc.data import inputs
from clerc.data.inputs import SampleSpec, load_input, make_view
from clerc.data.manifest import Manifest
from clerc.modalities import get_modality

Key = tuple[int, int]  # (epoch, sample index)


def load_native(manifest: Manifest, row: dict[str, Any], store: Any) -> np.ndarray:
    """The sample's native array: from the packed store when it holds it, else the file."""
    return load_input(manifest, row, store)


def train_view(
    modality: str, x: np.ndarray, spec: SampleSpec, *, train: bool, rng: np.random.Generator | None
) -> np.ndarray:
    """One view, as CLERC's training data makes it (random when ``train``, else centred)."""
    if get_modality(modality).is_text:
        raise ValueError(f"baselines: {modality!r} is a text modality; baselines are diagnostic")
    return make_view(modality, x, spec, train=train, rng=rng)


class SampleSet(torch.utils.data.Dataset):
    """Samples of one modality with their labels ``(N, K)`` (NaN = missing).

    ``dataset[(epoch, i)]`` -> ``(view, labels)``: one training view (seeded by seed,
    epoch and i) when ``train``, the centred view otherwise.
    """

    def __init__(
        self,
        manifest: Manifest,
        samples: pd.DataFrame,
        labels: np.ndarray,
        spec: SampleSpec,
        *,
        train: bool,
        seed: int,
        store: Any = None,
    ) -> None:
        if len(samples) != len(labels):
            raise ValueError(f"SampleSet: {len(samples)} samples but {len(labels)} label rows")
        modalities = samples["modality"].unique().tolist()
        if len(modalities) > 1:
            raise ValueError(f"SampleSet holds one modality, got {sorted(modalities)}")
        self.modality = str(modalities[0]) if modalities else ""
        self.records: list[dict[str, Any]] = samples.to_dict("records")
        self.labels = np.asarray(labels, dtype=np.float32)
        self.manifest, self.spec, self.train, self.seed = manifest, spec, train, seed
        self.store = store

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: Key) -> tuple[np.ndarray, np.ndarray]:
        epoch, i = key
        rng = np.random.default_rng([self.seed, epoch, i]) if self.train else None
        x = load_native(self.manifest, self.records[i], self.store)
        return train_view(self.modality, x, self.spec, train=self.train, rng=rng), self.labels[i]


class EpochBatches:
    """Batches of ``(epoch, index)`` keys: a seeded shuffle per epoch when ``shuffle``.

    ``drop_last`` drops a short last batch (training: batch norm needs > 1 sample);
    ``max_batches`` caps the batches of an epoch. Call :meth:`set_epoch` each epoch.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        seed: int,
        shuffle: bool,
        drop_last: bool,
        max_batches: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size: expected an integer >= 1, got {batch_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.shuffle, self.drop_last, self.max_batches = shuffle, drop_last, max_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[Key]]:
        order = (
            np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
            if self.shuffle
            else np.arange(self.n)
        )
        out = [order[i : i + self.batch_size].tolist() for i in range(0, self.n, self.batch_size)]
        if self.drop_last and out and len(out[-1]) < self.batch_size:
            out = out[:-1]
        if self.max_batches is not None:
            out = out[: self.max_batches]
        return [[(self.epoch, i) for i in b] for b in out]

    def __iter__(self) -> Iterator[list[Key]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())


def collate(items: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack views and labels: ``(B, ...)`` input and ``float32 (B, K)`` labels."""
    x = torch.from_numpy(np.stack([v for v, _ in items]))
    y = torch.from_numpy(np.stack([lab for _, lab in items]))
    return x, y


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def make_loader(
    dataset: SampleSet, sampler: EpochBatches, *, num_workers: int, pin_memory: bool = False
) -> torch.utils.data.DataLoader:
    """A DataLoader over ``dataset`` batched by ``sampler``."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=num_workers,
        pin_memory=pin_memory,
        worker_init_fn=_worker_init if num_workers else None,
    )


def eval_views(modality: str, x: np.ndarray, spec: SampleSpec) -> np.ndarray:
    """The evaluation views ``(K, ...)`` of a native sample (as ``clerc embed`` uses)."""
    if get_modality(modality).is_text:
        raise ValueError(f"baselines: {modality!r} is a text modality; baselines are diagnostic")
    return inputs.eval_views(modality, x, spec)
