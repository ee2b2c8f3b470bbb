"""The multi-process paths, run for real with 2 gloo processes on the CPU.

- the distributed loss and DDP gradients equal one process's on the combined batch (a
  linear stand-in, float64), and so do one real ``train_step``'s through ``BatchEncoder``
  with an encoder unused on one rank;
- ``train`` under 2 ranks: one epoch runs, both ranks validate exactly the weights and
  batch-norm statistics rank 0 saves, only rank 0 writes checkpoints and log, every rank
  returns the log's records, and the checkpoint loads;
- ``torchrun ... clerc.cli embed`` gives exactly the samples, in the same order, and the
  embeddings of a one-process ``clerc embed`` of the same checkpoint (nothing duplicated or
  lost when the samples do not divide among the ranks).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
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


# --- the real trainer and embedder under two gloo processes --------------------------------

ROOT = Path(__file__).resolve().parents[1]
#: train-split patient indices of one real step: rank 0's have all six modalities of
#: ``make_cohort``, rank 1's only the ECG and its report (so two encoders sit unused there)
STEP_PATIENTS = ((0, 3, 6), (1, 4, 7))


def _spawn(fn: Any, args: tuple[Any, ...], timeout: float) -> None:
    """``mp.spawn`` of WORLD processes that fails the test (not hangs) if a collective hangs."""
    ctx = mp.spawn(fn, args=args, nprocs=WORLD, join=False)
    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"{fn.__name__}: the processes did not finish in {timeout} s")


def _step_config() -> Any:
    """Plain SGD: after one step ``grad`` is exactly what the step applied."""
    from tests.test_trainer import small_config

    return dataclasses.replace(small_config(), optimizer="sgd", lr=0.1, momentum=0.0,
                               weight_decay=0.0)


def _one_step(cohort: str, patients: tuple[int, ...]) -> dict[str, Any]:
    """Loss and gradients of one real ``train_step`` (DDP when a process group is up)."""
    from clerc.data.manifest import read_manifest
    from clerc.model.clerc import CLERC
    from clerc.train.data import PatientDataset, collate, sample_spec
    from clerc.train.trainer import BatchEncoder, make_optimizer, train_step

    cfg = _step_config()
    ds = PatientDataset(read_manifest(cohort), "train", cfg.modalities, sample_spec(cfg.model),
                        train=True, seed=cfg.seed)
    batch = collate([ds[(0, p)] for p in patients])
    torch.manual_seed(0)
    model = CLERC(cfg.model)
    net: nn.Module = BatchEncoder(model, cfg.modalities)
    if D.is_distributed():
        net = nn.parallel.DistributedDataParallel(net, find_unused_parameters=True)
    # batch norm on running statistics, so that a row's embedding does not depend on the
    # rows it is batched with (DDP does not synchronise batch statistics)
    net.eval()
    loss, pairs = train_step(net, make_optimizer(model, cfg), batch, cfg, torch.device("cpu"),
                             D.distributed_clerc_loss)
    grads = {n: torch.zeros_like(p) if p.grad is None else p.grad.detach().clone()
             for n, p in model.named_parameters()}
    return {"loss": loss.detach(), "pairs": sorted(pairs), "grads": grads,
            "present": sorted(batch.present)}


def _ddp_worker(rank: int, port: int, cohort: str, tmp: str) -> None:
    """One real DDP ``train_step``, then ``train`` for one epoch with its writes recorded."""
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(WORLD),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    from clerc.train import trainer
    from tests.test_trainer import small_config

    out = Path(tmp)
    assert D.init_from_env("cpu") == (rank, WORLD, rank)
    torch.save(_one_step(cohort, STEP_PATIENTS[rank]), out / f"step{rank}.pt")

    writes: list[list[str]] = []
    save, append_log, validate = trainer.save, trainer.append_log, trainer.validate

    def recorded_save(run: Any, name: str, *a: Any, **k: Any) -> None:
        writes.append(["save", name])
        save(run, name, *a, **k)

    def recorded_append_log(path: Path, row: dict[str, Any]) -> None:
        writes.append(["log", path.name])
        append_log(path, row)

    def dumping_validate(run: Any) -> Any:  # the model each rank scored, as rank 0 saves it
        val = validate(run)
        torch.save(run.model.state_dict(), out / f"state{rank}.pt")
        return val

    trainer.save, trainer.append_log = recorded_save, recorded_append_log
    trainer.validate = dumping_validate
    records = trainer.train(small_config(epochs=1), cohort, out / "run", progress=False)
    (out / f"rank{rank}.json").write_text(json.dumps({"writes": writes, "records": records}))


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(cohort, output folder) of one two-process :func:`_ddp_worker` job."""
    from tests.test_trainer import make_cohort

    cohort = make_cohort(tmp_path_factory.mktemp("ddp_cohort"))
    out = tmp_path_factory.mktemp("ddp")
    _spawn(_ddp_worker, (_free_port(), str(cohort), str(out)), timeout=180)
    return cohort, out


def test_ddp_train_step_equals_one_process_on_the_combined_batch(
        ddp_run: tuple[Path, Path]) -> None:
    cohort, out = ddp_run
    ref = _one_step(str(cohort), STEP_PATIENTS[0] + STEP_PATIENTS[1])
    ranks = [torch.load(out / f"step{r}.pt", weights_only=True) for r in range(WORLD)]
    # the case that needs find_unused_parameters and the zero blocks: encoders idle on rank 1
    assert {"echo_video", "cxr_image"} <= set(ranks[0]["present"])
    assert not {"echo_video", "cxr_image"} & set(ranks[1]["present"])
    moved = [n for n, g in ref["grads"].items() if g.abs().max() > 0]
    assert any(n.startswith("encoders.echo_video.") for n in moved)
    assert any(n.startswith("encoders.ecg_waveform.") for n in moved)
    for got in ranks:
        assert got["pairs"] == ref["pairs"]
        torch.testing.assert_close(got["loss"], ref["loss"], rtol=1e-5, atol=1e-6)
        for n, g in ref["grads"].items():
            scale = float(g.abs().max()) or 1.0
            torch.testing.assert_close(got["grads"][n], g, rtol=1e-4, atol=1e-5 * scale, msg=n)


def test_ddp_training_keeps_ranks_identical_and_only_rank0_writes(
        ddp_run: tuple[Path, Path]) -> None:
    from clerc.model.clerc import CLERC
    from clerc.train.checkpoint import load_checkpoint, load_model
    from clerc.train.state import seed_everything
    from tests.test_trainer import small_config

    _, out = ddp_run
    run = out / "run"
    assert {p.name for p in run.iterdir()} == {"ckpt.pt", "last.pt", "log.jsonl"}
    done = [json.loads((out / f"rank{r}.json").read_text()) for r in range(WORLD)]
    assert done[0]["writes"] == [["save", "ckpt.pt"], ["log", "log.jsonl"], ["save", "last.pt"]]
    assert done[1]["writes"] == []
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and log[0]["epoch"] == 0
    assert log[0]["samples"] == log[0]["steps"] * WORLD * small_config().batch_size
    assert np.isfinite(log[0]["train_loss"]) and np.isfinite(log[0]["val_loss"])
    for r in range(WORLD):  # every rank returns the run's records
        assert done[r]["records"] == log, r

    # DDP averages the gradients, so both ranks hold the same weights after the steps, and
    # validation scores, on both, rank 0's batch-norm statistics: the model in ckpt.pt
    state, header = load_checkpoint(run / "ckpt.pt")
    assert header["world_size"] == WORLD and header["epoch"] == 0
    for r in range(WORLD):
        scored = torch.load(out / f"state{r}.pt", weights_only=True)
        assert scored.keys() == state["model"].keys()
        for n, t in state["model"].items():
            assert torch.equal(scored[n], t), (r, n)
    cfg = small_config()  # ... which training moved from the initial weights
    seed_everything(cfg.seed)
    init = CLERC(cfg.model).state_dict()
    assert any(not torch.equal(init[n], t) for n, t in state["model"].items())
    model, _ = load_model(run / "ckpt.pt")
    assert isinstance(model, CLERC) and not model.training


def _odd_cohort(root: Path) -> Path:
    """``make_cohort`` less one report: an odd number of samples, so 2 ranks get unequal shares."""
    from clerc.data.manifest import read_manifest, write_manifest
    from tests.test_trainer import make_cohort

    m = read_manifest(make_cohort(root, n_train=7, n_val=2))
    samples = m.samples.drop(index=m.samples.index[m.samples["modality"] == "ecg_text"][-1])
    write_manifest(root, samples.reset_index(drop=True), m.labels, m.patients)
    assert len(samples) % WORLD == 1
    return root


def test_torchrun_embed_equals_one_process(tmp_path: Path) -> None:
    from clerc.cli import main
    from clerc.data.manifest import read_manifest
    from clerc.evaluate.embeddings import Embeddings
    from clerc.model.clerc import CLERC
    from clerc.train.checkpoint import make_header, save_checkpoint
    from tests.test_trainer import small_config

    cohort = _odd_cohort(tmp_path / "cohort")
    one, two = tmp_path / "one", tmp_path / "two"  # the cache lives in the data folder
    shutil.copytree(cohort, one)
    shutil.copytree(cohort, two)
    cfg = small_config().model
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "ckpt.pt", {"model": CLERC(cfg).state_dict()},
                           make_header({"model": cfg.to_dict()}, "m", 0))
    args = ["embed", "--checkpoint", str(ckpt), "--device", "cpu", "--batch-size", "4"]
    assert main([*args, "--data", str(one), "--out", str(tmp_path / "one.npz")]) == 0

    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
         str(WORLD), "-m", "clerc.cli", *args, "--data", str(two),
         "--out", str(tmp_path / "two.npz")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert proc.stdout.count(" samples, ") == 1  # rank 0 alone reports ...
    assert len(list((two / "embeddings").iterdir())) == 1  # ... and writes

    ref, got = Embeddings.load(tmp_path / "one.npz"), Embeddings.load(tmp_path / "two.npz")
    ids = read_manifest(cohort).samples["sample_id"].tolist()
    assert got.samples["sample_id"].tolist() == ids  # every sample once, in manifest order
    assert got.samples["sample_id"].is_unique
    pd.testing.assert_frame_equal(got.samples, ref.samples)
    np.testing.assert_allclose(np.linalg.norm(got.vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(got.vectors, ref.vectors, rtol=0, atol=1e-5)
    assert got.prompt_texts == ref.prompt_texts
    np.testing.assert_allclose(got.prompt_vectors, ref.prompt_vectors, rtol=0, atol=1e-5)
    assert got.logit_scale == ref.logit_scale
