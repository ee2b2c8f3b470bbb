"""Training data: the patient dataset, the paper's batch sampler, and collation.

Loading and views are the input pipeline's (``clerc.data.inputs``), shared with
evaluation and the baselines.

An item is one patient: for each modality the patient has in the split, one sample,
chosen at random by (seed, epoch, patient) in training and fixed in validation (a report
is drawn from the study of the chosen test when that study has one, so a video is
contrasted with its own report rather than one of another date), loaded
natively (from ``DIR/packed`` when it exists, else through the readers) and transformed
at the model config's sizes. :func:`collate` stacks items into per-modality tensors plus
``present`` masks, rows aligned by patient, absent rows zero-filled.

The batch sampler follows the paper (Methods: Model training): "each patient appears once
per epoch. [...] We group the patients into batches based on the modalities available for
that patient. The remaining unmatched patients are randomly grouped into batches."
Batches are lists of ``(epoch, patient)`` keys, so the dataset seeds its random choices
with no hidden state; under DDP every rank builds the same epoch plan and takes every
``world_size``-th batch. No patient is left out of an epoch: the last pooled batch may be
short, and under DDP batches are split until each rank has as many, then padded with
rows that hold no modality.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from clerc.data.inputs import SampleSpec, Video, load_input, make_view, sample_spec  # noqa: F401
from clerc.data.manifest import Manifest
from clerc.modalities import MODALITY_NAMES, get_modality

Key = tuple[int, int]  # (epoch, patient index)


#: The patient index of a padding row (no modality): under DDP every rank's batch has
#: ``batch_size`` rows so the gathered embeddings line up; padding rows are never encoded.
PAD = -1


def plan_epoch(
    modality_sets: Sequence[frozenset[str]],
    batch_size: int,
    seed: int,
    epoch: int,
    *,
    drop_last: bool = False,
    multiple_of: int = 1,
) -> list[list[int]]:
    """Patient-index batches for one epoch, in a seeded random order.

    Patients are grouped by their modality set; each group is shuffled and cut into full
    batches; the leftovers of all groups are pooled, shuffled, and cut into batches, the
    last one short (dropped only when ``drop_last``, which leaves patients out). With
    ``multiple_of`` (the DDP world size) batches are split until their number is a
    multiple of it -- the pooled ones first, largest first -- so every rank gets as many
    batches and no patient is left out; a ``ValueError`` says when that is impossible
    (fewer patients than ranks, or batches of one that cannot be split).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size: expected an integer >= 1, got {batch_size}")
    rng = np.random.default_rng([seed, epoch])
    groups: dict[frozenset[str], list[int]] = {}
    for i, s in enumerate(modality_sets):
        groups.setdefault(s, []).append(i)
    full: list[list[int]] = []
    leftovers: list[int] = []
    for key in sorted(groups, key=sorted):
        members = rng.permutation(groups[key]).tolist()
        n_full = len(members) // batch_size * batch_size
        full += [members[i : i + batch_size] for i in range(0, n_full, batch_size)]
        leftovers += members[n_full:]
    leftovers = rng.permutation(np.asarray(leftovers, dtype=np.int64)).tolist()
    pooled = [leftovers[i : i + batch_size] for i in range(0, len(leftovers), batch_size)]
    if drop_last and pooled and len(pooled[-1]) < batch_size:
        pooled.pop()
    _split_to_multiple(full, pooled, multiple_of, len(modality_sets))
    batches = full + pooled
    order = rng.permutation(len(batches))
    return [batches[j] for j in order]


def _split_to_multiple(
    full: list[list[int]], pooled: list[list[int]], multiple_of: int, n_patients: int
) -> None:
    """Split batches in place (pooled first, then full ones) until their count is a
    multiple of ``multiple_of``."""
    while (len(full) + len(pooled)) % multiple_of:
        splittable = [b for b in pooled if len(b) > 1]
        if not splittable and full:
            pooled.append(full.pop())  # a full batch joins the pool to be split
            continue
        if not splittable:
            raise ValueError(
                f"{n_patients} patients cannot be cut into a multiple of {multiple_of} "
                f"batches (one per rank per step) without leaving one out; use fewer "
                f"ranks or a batch size above 1"
            )
        big = max(splittable, key=len)
        k = pooled.index(big)
        pooled[k : k + 1] = [big[: len(big) // 2], big[len(big) // 2 :]]


class PatientBatchSampler:
    """Yields lists of ``(epoch, patient)`` keys; call :meth:`set_epoch` before each epoch.

    Every patient appears once per epoch (the paper), unless ``drop_last``. ``equal_counts``
    (training) gives every rank the same number of batches by splitting batches (see
    :func:`plan_epoch`), and under DDP pads each batch to ``batch_size`` rows with
    :data:`PAD` keys (rows without any modality, never encoded) so that the gathered
    embeddings line up; without it (validation) the batches are dealt round-robin.
    ``max_batches`` caps the batches per rank (for CI).
    """

    def __init__(
        self,
        modality_sets: Sequence[frozenset[str]],
        batch_size: int,
        *,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        equal_counts: bool = True,
        max_batches: int | None = None,
        fixed_epoch: int | None = None,
    ) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank: expected 0 <= rank < world_size={world_size}, got {rank}")
        self.modality_sets = list(modality_sets)
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.equal_counts = equal_counts
        self.max_batches = max_batches
        self.fixed_epoch = fixed_epoch
        self.epoch = 0 if fixed_epoch is None else fixed_epoch

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose plan the next iteration yields (ignored if fixed)."""
        if self.fixed_epoch is None:
            self.epoch = epoch

    def batches(self) -> list[list[Key]]:
        """This rank's batches for the current epoch."""
        if not self.modality_sets:
            return []
        multiple = self.world_size if self.equal_counts else 1
        plan = plan_epoch(
            self.modality_sets,
            self.batch_size,
            self.seed,
            self.epoch,
            drop_last=self.drop_last,
            multiple_of=multiple,
        )
        if self.equal_counts and self.world_size > 1:
            plan = [b + [PAD] * (self.batch_size - len(b)) for b in plan]
        mine = plan[self.rank :: self.world_size]
        if self.max_batches is not None:
            mine = mine[: self.max_batches]
        return [[(self.epoch, p) for p in b] for b in mine]

    def __iter__(self) -> Iterator[list[Key]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())


class PatientDataset(torch.utils.data.Dataset):
    """Patients of one split with at least one sample among ``modalities``.

    ``dataset[(epoch, p)]`` -> ``{modality: array}`` for patient ``p``: uint8 video
    ``(F, S, S)``, float32 ECG ``(12, L)``, uint8 image ``(S, S)``, int64 tokens ``(77,)``.
    """

    def __init__(
        self,
        manifest: Manifest,
        split: str,
        modalities: Sequence[str],
        spec: SampleSpec,
        *,
        train: bool,
        seed: int,
        store: Any = None,
    ) -> None:
        s = manifest.samples
        s = s[(s["split"] == split) & s["modality"].isin(list(modalities))]
        self.samples = s.sort_values(["patient_id", "modality", "sample_id"]).reset_index(drop=True)
        self.records: list[dict[str, Any]] = self.samples.to_dict("records")
        self.manifest = manifest
        self.split = split
        self.modalities = tuple(m for m in MODALITY_NAMES if m in modalities)
        self.spec = spec
        self.train = train
        self.seed = seed
        self.store = store  # a PackedStore (pickles without its memory maps) or None
        self.patient_ids: list[str] = []
        self.rows: list[dict[str, np.ndarray]] = []
        for pid, g in self.samples.groupby("patient_id", sort=True):
            self.patient_ids.append(str(pid))
            self.rows.append({str(m): gm.index.to_numpy() for m, gm in g.groupby("modality")})

    def __len__(self) -> int:
        return len(self.patient_ids)

    @property
    def modality_sets(self) -> list[frozenset[str]]:
        return [frozenset(r) for r in self.rows]

    def __getitem__(self, key: Key) -> dict[str, np.ndarray]:
        epoch, p = key
        out: dict[str, np.ndarray] = {}
        if p == PAD:
            return out  # a padding row: no modality
        studies: dict[str, Any] = {}
        for m in self.modalities:  # registry order: a test before its report
            idx = self.rows[p].get(m)
            if idx is None:
                continue
            rng = np.random.default_rng(
                [self.seed, epoch if self.train else 0, p, MODALITY_NAMES.index(m)]
            )
            row = self.records[self._choose(m, idx, studies, rng)]
            studies[m] = row["study_id"]
            out[m] = self._transform(m, self._load(m, row), rng)
        return out

    def _choose(
        self, modality: str, idx: np.ndarray, studies: dict[str, Any], rng: np.random.Generator
    ) -> int:
        """A random sample; a report comes from the chosen test's study when it has one."""
        describes = get_modality(modality).describes
        if describes in studies:
            same = [i for i in idx if self.records[i]["study_id"] == studies[describes]]
            idx = np.asarray(same) if same else idx
        return int(idx[rng.integers(len(idx))])

    def _load(self, modality: str, row: Any) -> Any:
        return load_input(self.manifest, row, self.store)

    def _transform(self, modality: str, x: Any, rng: np.random.Generator) -> np.ndarray:
        return make_view(modality, x, self.spec, train=self.train, rng=rng)


class Batch(NamedTuple):
    """Collated patients: per-modality inputs and which rows hold a real sample."""

    inputs: dict[str, torch.Tensor]
    present: dict[str, torch.Tensor]
    size: int


def collate(items: list[dict[str, np.ndarray]]) -> Batch:
    """Stack items by modality; rows of patients without the modality are zeros."""
    inputs: dict[str, torch.Tensor] = {}
    present: dict[str, torch.Tensor] = {}
    for m in MODALITY_NAMES:
        mask = [m in it for it in items]
        if not any(mask):
            continue
        first = next(it[m] for it in items if m in it)
        arr = np.zeros((len(items), *first.shape), dtype=first.dtype)
        for i, it in enumerate(items):
            if m in it:
                arr[i] = it[m]
        inputs[m] = torch.from_numpy(arr)
        present[m] = torch.tensor(mask, dtype=torch.bool)
    return Batch(inputs, present, len(items))


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def make_loader(
    dataset: PatientDataset,
    sampler: PatientBatchSampler,
    *,
    num_workers: int,
    pin_memory: bool = False,
) -> torch.utils.data.DataLoader:
    """A DataLoader over ``dataset`` batched by ``sampler`` and stacked by :func:`collate`."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=num_workers,
        pin_memory=pin_memory,
        worker_init_fn=_worker_init if num_workers else None,
        prefetch_factor=4 if num_workers else None,
        # items are keyed by (epoch, patient) with no worker state, so workers can live
        # across epochs instead of restarting (and re-importing torch) every epoch
        persistent_workers=num_workers > 0,
    )


def make_loaders(
    data_dir: str | Path, cfg: Any, *, rank: int = 0, world_size: int = 1, pin_memory: bool = False
) -> tuple[torch.utils.data.DataLoader, torch.utils.data.DataLoader]:
    """Training (train split, random choices and augmentation, every patient once per epoch)
    and validation (val split, fixed choices, eval transforms, every patient) loaders for ``cfg``
    (a ``TrainConfig``), sharded for ``rank`` of ``world_size``.

    Reads ``data_dir/packed`` when ``clerc prepare`` wrote it (without the samples it
    could not decode), the media files otherwise.
    Raises ``ValueError`` naming the directory when it is not a manifest, a patient is in
    two splits, or a split is too small to train on.
    """
    from clerc.data.manifest import require_disjoint_splits
    from clerc.data.packed import read_prepared

    try:
        manifest, store = read_prepared(data_dir)
    except FileNotFoundError as exc:
        raise ValueError(f"--data {data_dir}: not a manifest directory ({exc})") from exc
    require_disjoint_splits(manifest)
    spec = sample_spec(cfg.model)._replace(text_keep=cfg.text_keep)
    common = {"spec": spec, "seed": cfg.seed, "store": store}
    train = PatientDataset(manifest, "train", cfg.modalities, train=True, **common)
    val = PatientDataset(manifest, "val", cfg.modalities, train=False, **common)
    train_sampler = PatientBatchSampler(
        train.modality_sets,
        cfg.batch_size,
        seed=cfg.seed,
        drop_last=False,
        rank=rank,
        world_size=world_size,
        max_batches=cfg.max_steps_per_epoch,
    )
    val_sampler = PatientBatchSampler(
        val.modality_sets,
        cfg.batch_size,
        seed=cfg.seed,
        drop_last=False,
        rank=rank,
        world_size=world_size,
        equal_counts=False,
        fixed_epoch=0,
    )
    if len(train) < world_size:
        raise ValueError(
            f"--data {data_dir}: the train split has {len(train)} patients with any of "
            f"{list(cfg.modalities)}; need at least one per rank ({world_size})"
        )
    if len(val) == 0:
        raise ValueError(
            f"--data {data_dir}: the val split has no patients with any of "
            f"{list(cfg.modalities)}; validation picks the best epoch"
        )
    kw = {"num_workers": cfg.num_workers, "pin_memory": pin_memory}
    return make_loader(train, train_sampler, **kw), make_loader(val, val_sampler, **kw)
