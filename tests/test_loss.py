"""The CLERC loss against open_clip's ClipLoss, masking, skipping and gradients."""

from __future__ import annotations

from itertools import combinations

import pytest
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss

from clerc.model.loss import clerc_loss, clip_loss, pair_name


def _emb(n: int, d: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=-1)


def test_clip_loss_equals_open_clip() -> None:
    a, b = _emb(8, seed=1), _emb(8, seed=2)
    scale = torch.tensor(14.3, dtype=torch.float64)
    torch.testing.assert_close(clip_loss(a, b, scale), ClipLoss()(a, b, scale))


def test_two_modalities_equal_open_clip() -> None:
    a, b = _emb(6, seed=3), _emb(6, seed=4)
    present = {m: torch.ones(6, dtype=torch.bool) for m in ("ecg_waveform", "ecg_text")}
    total, per_pair = clerc_loss({"ecg_waveform": a, "ecg_text": b}, present, 20.0)
    ref = ClipLoss()(a, b, 20.0)
    torch.testing.assert_close(total, ref)
    assert list(per_pair) == ["ecg_waveform-ecg_text"]


def test_sum_over_pairs_on_shared_rows_only() -> None:
    names = ["echo_video", "ecg_waveform", "cxr_image"]
    emb = {m: _emb(7, seed=i) for i, m in enumerate(names)}
    present = {
        "echo_video": torch.tensor([1, 1, 1, 1, 0, 0, 1], dtype=torch.bool),
        "ecg_waveform": torch.tensor([1, 0, 1, 1, 1, 1, 1], dtype=torch.bool),
        "cxr_image": torch.tensor([0, 0, 0, 1, 1, 0, 0], dtype=torch.bool),
    }
    # Absent rows hold garbage: it must not reach the loss.
    for m in names:
        emb[m][~present[m]] = float("nan")
    total, per_pair = clerc_loss(emb, present, 10.0)
    expected = {}
    for a, b in combinations(names, 2):
        rows = [i for i in range(7) if present[a][i] and present[b][i]]
        if len(rows) >= 2:
            expected[pair_name(a, b)] = ClipLoss()(emb[a][rows], emb[b][rows], 10.0)
    assert set(per_pair) == set(expected) == {"echo_video-ecg_waveform", "ecg_waveform-cxr_image"}
    for k, v in expected.items():
        torch.testing.assert_close(per_pair[k], v)
    torch.testing.assert_close(total, sum(expected.values()))
    assert torch.isfinite(total)


def test_no_qualifying_pair_gives_a_zero_that_requires_grad() -> None:
    a = _emb(4, seed=1).requires_grad_(True)
    b = _emb(4, seed=2).requires_grad_(True)
    present = {
        "x": torch.tensor([1, 0, 0, 1], dtype=torch.bool),
        "y": torch.tensor([1, 1, 0, 0], dtype=torch.bool),
    }
    total, per_pair = clerc_loss({"x": a, "y": b}, present, torch.tensor(5.0, requires_grad=True))
    assert per_pair == {} and total.item() == 0.0 and total.requires_grad
    total.backward()
    assert torch.equal(a.grad, torch.zeros_like(a))


def test_gradient_flows_to_embeddings_and_scale() -> None:
    a = _emb(5, seed=1).requires_grad_(True)
    b = _emb(5, seed=2).requires_grad_(True)
    log_scale = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    present = {m: torch.tensor([1, 1, 1, 0, 1], dtype=torch.bool) for m in ("x", "y")}
    total, _ = clerc_loss({"x": a, "y": b}, present, log_scale.exp())
    total.backward()
    assert a.grad is not None and a.grad[[0, 1, 2, 4]].abs().sum() > 0
    assert torch.equal(a.grad[3], torch.zeros(16, dtype=torch.float64))
    assert log_scale.grad is not None and log_scale.grad != 0


def test_bad_masks_are_named() -> None:
    a = _emb(4)
    with pytest.raises(ValueError, match="no presence mask for modality 'y'"):
        clerc_loss({"x": a, "y": a}, {"x": torch.ones(4, dtype=torch.bool)}, 1.0)
    with pytest.raises(ValueError, match=r"present\['x'\]"):
        clerc_loss({"x": a}, {"x": torch.ones(4)}, 1.0)
    with pytest.raises(ValueError, match="batch size"):
        clerc_loss({"x": a, "y": _emb(3)}, {}, 1.0)
