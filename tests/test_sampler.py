"""The paper's patient batch sampler and the collate function."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from clerc.train.data import PAD, PatientBatchSampler, collate, plan_epoch

ECHO = frozenset({"echo_video", "echo_text"})
ECG = frozenset({"ecg_waveform", "ecg_text"})
ALL = ECHO | ECG
# 23 echo-only, 17 ecg-only, 9 with both, 1 with a single ECG: 50 patients
SETS = [ECHO] * 23 + [ECG] * 17 + [ALL] * 9 + [frozenset({"ecg_waveform"})]


def _patients(batches: list[list[tuple[int, int]]]) -> list[int]:
    return [p for b in batches for _, p in b]


def test_each_patient_exactly_once_per_epoch_without_drop_last() -> None:
    for epoch in range(3):
        plan = plan_epoch(SETS, 4, seed=1, epoch=epoch, drop_last=False)
        assert sorted(p for b in plan for p in b) == list(range(len(SETS)))
        assert all(1 <= len(b) <= 4 for b in plan)


def test_drop_last_drops_only_one_short_batch() -> None:
    plan = plan_epoch(SETS, 4, seed=1, epoch=0, drop_last=True)
    seen = [p for b in plan for p in b]
    assert len(seen) == len(set(seen)) == 48  # 50 patients, 2 left in a short batch
    assert all(len(b) == 4 for b in plan)


def test_full_batches_share_a_modality_set_and_leftovers_are_pooled() -> None:
    plan = plan_epoch(SETS, 4, seed=3, epoch=0, drop_last=False)
    mixed = [b for b in plan if len({SETS[p] for p in b}) > 1]
    # group leftovers: 23 % 4 = 3, 17 % 4 = 1, 9 % 4 = 1, 1 % 4 = 1 -> 6 patients, 2 batches
    assert len(mixed) <= 2
    assert sum(len(b) for b in mixed) <= 6
    homogeneous = [b for b in plan if len({SETS[p] for p in b}) == 1]
    assert sum(len(b) for b in homogeneous) >= 44
    counts = Counter(SETS[b[0]] for b in homogeneous if len(b) == 4)
    assert counts[ECHO] == 5 and counts[ECG] == 4 and counts[ALL] == 2


def test_leftovers_are_grouped_at_random_across_epochs() -> None:
    sets = [ECHO, ECG, ALL, frozenset({"ecg_text"})] * 4  # no group fills a batch of 8
    plans = [plan_epoch(sets, 8, seed=0, epoch=e, drop_last=False) for e in range(6)]
    firsts = {tuple(sorted(p[0])) for p in plans}
    assert len(firsts) > 1
    for p in plans:
        assert sorted(x for b in p for x in b) == list(range(16))


def test_plan_is_deterministic_per_seed_and_epoch() -> None:
    a = plan_epoch(SETS, 4, seed=7, epoch=2, drop_last=True)
    assert a == plan_epoch(SETS, 4, seed=7, epoch=2, drop_last=True)
    assert a != plan_epoch(SETS, 4, seed=7, epoch=3, drop_last=True)
    assert a != plan_epoch(SETS, 4, seed=8, epoch=2, drop_last=True)


@pytest.mark.parametrize("world", [1, 2, 3, 4, 7])
def test_every_patient_once_per_epoch_on_every_world_size(world: int) -> None:
    """The paper: each patient appears once per epoch (drop_last lost up to B-1 patients,
    and the DDP equal-count cut up to world-1 batches more); ranks get equal counts."""
    shards = []
    for rank in range(world):
        s = PatientBatchSampler(SETS, 4, seed=5, rank=rank, world_size=world)
        s.set_epoch(4)
        shards.append(list(s))
        assert len(s) == len(shards[-1])
    assert len({len(b) for b in shards}) == 1  # equal counts per rank
    seen = [p for sh in shards for p in _patients(sh) if p != PAD]
    assert sorted(seen) == list(range(len(SETS)))  # every patient, once
    sizes = {len(b) for sh in shards for b in sh}
    assert sizes == {4} if world > 1 else max(sizes) == 4  # DDP: padded to equal shapes
    assert all(e == 4 for sh in shards for b in sh for e, _ in b)
    # full single-modality batches are kept where the split allows
    full = sum(len(b) == 4 and PAD not in [p for _, p in b]
               and len({SETS[p] for _, p in b}) == 1 for sh in shards for b in sh)
    assert full >= 11 - (world - 1)


def test_split_refuses_only_when_impossible() -> None:
    assert len(plan_epoch(SETS[:3], 2, seed=0, epoch=0, multiple_of=3)) == 3
    with pytest.raises(ValueError, match="3 patients cannot be cut into a multiple of 2"):
        plan_epoch(SETS[:3], 1, seed=0, epoch=0, multiple_of=2)  # 3 batches of one


def test_padding_rows_hold_no_modality() -> None:
    batch = collate([{"ecg_waveform": np.ones((12, 8), np.float32)}, {}])
    assert batch.size == 2 and batch.present["ecg_waveform"].tolist() == [True, False]
def test_validation_sharding_uses_every_patient() -> None:
    seen = []
    for rank in range(3):
        s = PatientBatchSampler(SETS, 4, seed=0, rank=rank, world_size=3, drop_last=False,
                                equal_counts=False, fixed_epoch=0)
        s.set_epoch(9)  # ignored: validation keeps its fixed plan
        seen += _patients(list(s))
    assert sorted(seen) == list(range(len(SETS)))


def test_max_batches_and_bad_rank() -> None:
    s = PatientBatchSampler(SETS, 4, max_batches=2)
    assert len(s) == 2
    with pytest.raises(ValueError, match="rank"):
        PatientBatchSampler(SETS, 4, rank=2, world_size=2)


def test_collate_aligns_rows_and_zero_fills_absent_ones() -> None:
    items = [
        {"ecg_waveform": np.ones((12, 5), np.float32), "ecg_text": np.arange(77)},
        {"echo_video": np.full((2, 3, 3), 7, np.uint8)},
        {"ecg_text": np.arange(77) + 1},
    ]
    batch = collate(items)
    assert batch.size == 3
    assert set(batch.inputs) == {"ecg_waveform", "ecg_text", "echo_video"}
    assert batch.present["ecg_waveform"].tolist() == [True, False, False]
    assert batch.present["ecg_text"].tolist() == [True, False, True]
    assert batch.inputs["echo_video"].dtype == torch.uint8
    assert batch.inputs["echo_video"].shape == (3, 2, 3, 3)
    assert batch.inputs["echo_video"][0].sum() == 0 and batch.inputs["echo_video"][1].sum() == 126
    assert batch.inputs["ecg_text"][2, 0] == 1 and batch.inputs["ecg_text"][1].sum() == 0
