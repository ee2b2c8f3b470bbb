"""Two gloo processes give the loss and the DDP gradients of one process on the whole batch."""

from __future__ import annotations

import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import Tensor, nn

from clerc.model.loss import clerc_loss
from clerc.train import distributed as D

MODALITIES = ("echo_video", "ecg_waveform", "cxr_text")
PER_RANK, WORLD, IN, DIM = 4, 2, 6, 5


class LinearModel(nn.Module):
    """One linear "encoder" per modality plus a logit scale: a stand-in for CLERC."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.enc = nn.ModuleDict({m: nn.Linear(IN, DIM).double() for m in MODALITIES})
        self.logit_scale = nn.Parameter(torch.tensor(2.0, dtype=torch.float64))

    def forward(self, x: dict[str, Tensor]) -> tuple[dict[str, Tensor], Tensor]:
        emb = {m: F.normalize(self.enc[m](v), dim=-1) for m, v in x.items()}
        return emb, self.logit_scale.exp()


def _batch() -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    g = torch.Generator().manual_seed(1)
    n = PER_RANK * WORLD
    x = {m: torch.randn(n, IN, generator=g, dtype=torch.float64) for m in MODALITIES}
    present = {
        "echo_video": torch.tensor([1, 1, 0, 1, 1, 0, 1, 1], dtype=torch.bool),
        "ecg_waveform": torch.tensor([1, 1, 1, 1, 0, 1, 1, 1], dtype=torch.bool),
        "cxr_text": torch.tensor([0, 1, 1, 0, 1, 1, 0, 0], dtype=torch.bool),
    }
    return x, present


def _grads(model: nn.Module) -> dict[str, Tensor]:
    return {k: p.grad.detach().clone() for k, p in model.named_parameters()}


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=WORLD)
    try:
        model = nn.parallel.DistributedDataParallel(LinearModel())
        x, present = _batch()
        rows = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
        emb, scale = model({m: v[rows] for m, v in x.items()})
        loss, per_pair = D.distributed_clerc_loss(emb, {m: p[rows] for m, p in present.items()},
                                                  scale)
        loss.backward()
        gathered = D.gather_no_grad(torch.full((2,), rank))
        torch.save({"loss": loss.detach(), "pairs": {k: v.detach() for k, v in per_pair.items()},
                    "grads": _grads(model.module), "rank": D.rank(), "world": D.world_size(),
                    "gathered": gathered}, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_process_on_the_combined_batch(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    model = LinearModel()
    x, present = _batch()
    emb, scale = model(x)
    loss, per_pair = clerc_loss(emb, present, scale)
    loss.backward()
    ref = _grads(model)
    for r in range(WORLD):
        got = torch.load(tmp_path / f"rank{r}.pt", weights_only=True)
        assert (got["rank"], got["world"]) == (r, WORLD)
        assert torch.equal(got["gathered"], torch.tensor([0, 0, 1, 1]))
        torch.testing.assert_close(got["loss"], loss.detach(), rtol=1e-12, atol=1e-12)
        assert set(got["pairs"]) == set(per_pair)
        for k, g in ref.items():
            torch.testing.assert_close(got["grads"][k], g, rtol=1e-10, atol=1e-12, msg=k)


def test_helpers_without_a_process_group(monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert D.init_from_env("cpu") == (0, 1, 0)
    assert not D.is_distributed() and D.rank() == 0 and D.world_size() == 1
    x = torch.randn(3, 2, requires_grad=True)
    assert D.gather_with_grad(x) is x
    m = torch.tensor([True, False])
    assert D.gather_no_grad(m) is m
    emb = {"a": F.normalize(torch.randn(3, 4), dim=-1), "b": F.normalize(torch.randn(3, 4), dim=-1)}
    present = {k: torch.ones(3, dtype=torch.bool) for k in emb}
    torch.testing.assert_close(D.distributed_clerc_loss(emb, present, 3.0)[0],
                               clerc_loss(emb, present, 3.0)[0])
