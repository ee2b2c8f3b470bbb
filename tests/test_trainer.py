"""The trainer: a short run writes its files, kill-and-resume equals an uninterrupted run,
two gloo processes train under DDP, and the CLI reports bad input by name."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import socket
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from clerc.cli import main
from clerc.data.manifest import write_manifest
from clerc.train.checkpoint import load_checkpoint, load_model
from clerc.train.config import TrainConfig
from clerc.train.state import rng_state, set_rng_state
from clerc.train.trainer import train

WORDS = ("normal", "dilated", "hypertrophic")
SETS = (
    ("echo_video", "echo_text", "ecg_waveform", "ecg_text", "cxr_image", "cxr_text"),
    ("ecg_waveform", "ecg_text"),
    ("echo_video", "echo_text", "ecg_waveform", "ecg_text"),
)
LOG_KEYS = {"epoch", "lr", "train_loss", "val_loss", "train_pairs", "val_pairs", "temperature",
            "samples_per_s", "data_wait_share", "train_seconds", "val_seconds", "steps",
            "samples"}


def _media(modality: str, c: int, rng: np.random.Generator) -> np.ndarray:
    if modality == "echo_video":
        yy, xx = np.mgrid[:112, :112]
        disk = ((yy - 56) ** 2 + (xx - 56) ** 2 < (12 + 14 * c) ** 2) * 200.0
        return np.clip(disk[None] + rng.normal(0, 20, (12, 112, 112)), 0, 255).astype(np.uint8)
    if modality == "ecg_waveform":
        t = np.arange(5000) / 500
        sig = np.sin(2 * np.pi * (1 + c) * t)[None] * np.linspace(0.5, 1.5, 12)[:, None]
        return (sig + rng.normal(0, 0.1, (12, 5000))).astype(np.float32)
    stripes = (np.arange(256) // (8 * (c + 1)) % 2 * 180.0)[None, :] + np.zeros((256, 1))
    return np.clip(stripes + rng.normal(0, 20, (256, 256)), 0, 255).astype(np.uint8)


def make_cohort(root: Path, n_train: int = 16, n_val: int = 6, seed: int = 0) -> Path:
    """A small manifest of .npy media and inline reports whose content follows a class."""
    rng = np.random.default_rng(seed)
    (root / "media").mkdir(parents=True, exist_ok=True)
    rows, patients = [], []
    t0 = pd.Timestamp("2020-01-01")
    for i in range(n_train + n_val):
        pid, c = f"p{i:03d}", int(rng.integers(3))
        split = "train" if i < n_train else "val"
        patients.append({"patient_id": pid, "sex": "FM"[i % 2], "anchor_age": 60.0,
                         "anchor_time": t0, "race": pd.NA})
        for m in SETS[i % len(SETS)]:
            for k in range(1 + i % 2):  # odd patients have two samples per modality
                sid = f"{pid}_{m}_{k}"
                row = {"patient_id": pid, "study_id": f"{pid}_{m.split('_')[0]}_{k}",
                       "sample_id": sid, "modality": m, "acquired_at": t0, "split": split,
                       "path": pd.NA, "text": pd.NA}
                if m.endswith("_text"):
                    row["text"] = f"{m.split('_')[0]} study {k}: {WORDS[c]} heart"
                else:
                    np.save(root / "media" / f"{sid}.npy", _media(m, c, rng))
                    row["path"] = f"media/{sid}.npy"
                rows.append(row)
    labels = pd.DataFrame(columns=["patient_id", "study_id", "task", "value", "measured_at",
                                   "source_modality"])
    return write_manifest(root, pd.DataFrame(rows), labels, pd.DataFrame(patients))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_cohort(tmp_path_factory.mktemp("cohort"))


def small_config(**kw: object) -> TrainConfig:
    base = dataclasses.replace(TrainConfig.tiny(), batch_size=4, epochs=2, num_workers=0,
                               max_steps_per_epoch=2)
    return dataclasses.replace(base, **kw)


def test_cli_two_epoch_run_writes_checkpoints_and_log(cohort: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text(small_config().to_toml())
    out = tmp_path / "run"
    assert main(["train", "--data", str(cohort), "--config", str(cfg_file), "--out", str(out),
                 "--device", "cpu", "--no-progress"]) == 0
    assert "best epoch" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {"ckpt.pt", "last.pt", "log.jsonl"}
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [0, 1]
    for r in log:
        assert set(r) >= LOG_KEYS
        assert np.isfinite(r["train_loss"]) and np.isfinite(r["val_loss"])
        assert r["steps"] == 2 and r["samples"] == 8 and 0 <= r["data_wait_share"] <= 1
        assert "ecg_waveform-ecg_text" in r["val_pairs"]
    model, header = load_model(out / "ckpt.pt")
    assert header["epoch"] == header["best_epoch"]
    assert header["best_val_loss"] == min(r["val_loss"] for r in log)
    assert TrainConfig.from_dict(header["config"]) == small_config()
    assert len(header["manifest_hash"]) == 64
    assert isinstance(model, torch.nn.Module) and not model.training
    state, last = load_checkpoint(out / "last.pt")
    assert {"model", "optimizer", "rng"} <= set(state) and last["epoch"] == 1


def test_resume_after_a_kill_equals_an_uninterrupted_run(cohort: Path, tmp_path: Path) -> None:
    cfg = small_config(epochs=3)
    full = train(cfg, cohort, tmp_path / "full", progress=False)
    stopped = train(cfg, cohort, tmp_path / "cut", progress=False, stop_after_epoch=0)
    assert [r["epoch"] for r in stopped] == [0]
    # a fresh process would start with other RNG states; resume must restore them
    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    resumed = train(cfg, cohort, tmp_path / "cut", resume=True, progress=False)
    assert [r["epoch"] for r in resumed] == [0, 1, 2]
    assert [r["val_loss"] for r in resumed] == [r["val_loss"] for r in full]
    for name in ("last.pt", "ckpt.pt"):
        a, ha = load_checkpoint(tmp_path / "full" / name)
        b, hb = load_checkpoint(tmp_path / "cut" / name)
        assert ha["epoch"] == hb["epoch"]
        assert a["model"].keys() == b["model"].keys()
        for k in a["model"]:
            assert torch.equal(a["model"][k], b["model"][k]), k


def test_paper_config_without_init_is_refused(cohort: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    from clerc.model.config import ModelConfig
    from clerc.model.init import random_init_warning

    assert main(["train", "--data", str(cohort), "--out", str(tmp_path / "r"), "--config",
                 "paper", "--device", "cpu", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert ("refusing to train the paper's encoders without pretrained weights for "
            "echo_video, angio_video, cxr_image, text") in err
    assert "--allow-random-init" in err
    paper, mods = ModelConfig.paper(), ("echo_video", "ecg_waveform", "ecg_text")
    loud = random_init_warning(paper, mods, {"echo_video": "k400.pth"}, allow_random=True)
    assert loud.startswith("WARNING") and "for text" in loud and "RANDOM" in loud
    assert random_init_warning(paper, mods, {"echo_video": "a", "text": "b"},
                               allow_random=False) is None
    assert random_init_warning(ModelConfig.tiny(), mods, {}, allow_random=False) is None


def test_rng_state_round_trip() -> None:
    state = rng_state()
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_cli_names_bad_input(cohort: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture) -> None:
    args = ["--config", "tiny", "--device", "cpu", "--no-progress", "--epochs", "1"]
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), *args]) == 2
    assert "not a manifest directory" in capsys.readouterr().err
    assert main(["train", "--data", str(cohort), "--out", str(tmp_path / "r"), "--resume",
                 *args]) == 2
    assert "last.pt: --resume needs" in capsys.readouterr().err
    leaky = make_cohort(tmp_path / "leaky")
    samples = pd.read_parquet(leaky / "samples.parquet")
    samples.loc[samples.index[samples["patient_id"] == "p001"][0], "split"] = "val"
    samples.to_parquet(leaky / "samples.parquet", index=False)
    assert main(["train", "--data", str(leaky), "--out", str(tmp_path / "r"), *args]) == 2
    err = capsys.readouterr().err
    assert "1 patient(s) in more than one split (p001: train, val)" in err
    assert "splits must be by patient" in err
    assert main(["train", "--data", str(cohort), "--out", str(tmp_path / "r"), "--init",
                 "echo_video", *args]) == 2
    assert "expected ENCODER=PATH" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, cohort: str, out: str) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    train(small_config(epochs=1), cohort, out, progress=False)


def test_ddp_two_gloo_processes_train_and_only_rank0_writes(cohort: Path,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    ctx = torch.multiprocessing.spawn(_ddp_worker, nprocs=2, join=False,
                                      args=(2, _free_port(), str(cohort), str(out)))
    deadline = time.monotonic() + 240
    while not ctx.join(timeout=2):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("DDP training did not finish in 240 s (a collective hung)")
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(log) == 1
    assert log[0]["samples"] == 2 * 2 * 4  # 2 steps x 2 ranks x batch 4
    assert np.isfinite(log[0]["train_loss"]) and np.isfinite(log[0]["val_loss"])
    _, header = load_checkpoint(out / "last.pt")
    assert header["world_size"] == 2


def test_dataset_items_are_seeded_and_reports_follow_their_test(cohort: Path) -> None:
    from clerc.data.manifest import read_manifest
    from clerc.train.data import PatientDataset, sample_spec

    cfg = small_config()
    spec = sample_spec(cfg.model)
    ds = PatientDataset(read_manifest(cohort), "train", cfg.modalities, spec, train=True, seed=0)
    seen: list[dict] = []
    load = ds._load
    ds._load = lambda m, row: (seen.append(row), load(m, row))[1]  # type: ignore[method-assign]
    p = ds.patient_ids.index("p003")  # all six modalities, two samples of each
    items = [ds[(e, p)] for e in range(6)]
    first = items[0]
    assert set(first) == set(SETS[0])
    assert first["echo_video"].shape == (spec.video_frames, spec.video_size, spec.video_size)
    assert first["ecg_waveform"].shape == (12, spec.ecg_length)
    assert first["cxr_image"].shape == (spec.image_size, spec.image_size)
    assert first["echo_text"].shape == (77,)
    assert all(np.array_equal(first[m], ds[(0, p)][m]) for m in first)
    assert any(not np.array_equal(first["ecg_waveform"], it["ecg_waveform"]) for it in items)
    by_item = [seen[i:i + 6] for i in range(0, 36, 6)]
    for rows in by_item:
        study = {r["modality"]: r["study_id"] for r in rows}
        for test in ("echo", "ecg", "cxr"):
            assert study[f"{test}_text"] == study[f"{test}_video" if test == "echo" else
                                                  {"ecg": "ecg_waveform", "cxr": "cxr_image"}[test]]
    assert len({r["sample_id"] for r in seen if r["modality"] == "echo_video"}) == 2
    val = PatientDataset(read_manifest(cohort), "val", cfg.modalities, spec, train=False, seed=0)
    assert all(np.array_equal(val[(0, 0)][m], val[(5, 0)][m]) for m in val[(0, 0)])


def test_init_loads_pretrained_encoder_weights(cohort: Path, tmp_path: Path) -> None:
    from clerc.model.clerc import CLERC
    from clerc.train.trainer import setup

    cfg = small_config()
    torch.manual_seed(123)
    donor = CLERC(cfg.model).encoders["echo_video"].net.state_dict()
    torch.save(donor, tmp_path / "video.pth")
    run = setup(cfg, cohort, tmp_path / "run", device="cpu", progress=False,
                init={"echo_video": str(tmp_path / "video.pth")})
    got = run.model.encoders["echo_video"].net.state_dict()
    # every tensor but the Kinetics classifier ``fc`` (skipped by design) is the donor's
    assert all(torch.equal(got[k], v) for k, v in donor.items() if not k.startswith("fc."))
    assert run.header["init"] == {"echo_video": str(tmp_path / "video.pth")}


def test_persistent_loader_workers_yield_the_same_epochs_as_the_main_process(
        cohort: Path) -> None:
    from clerc.train.data import make_loaders

    def epochs(workers: int) -> list[list[torch.Tensor]]:
        loader, _ = make_loaders(cohort, small_config(num_workers=workers))
        out = []
        for epoch in range(2):
            loader.batch_sampler.set_epoch(epoch)
            out.append([b.inputs["echo_video"].clone() for b in loader
                        if "echo_video" in b.inputs])
        if workers:
            assert loader.persistent_workers and loader._iterator is not None
        return out

    main_process, workers = epochs(0), epochs(2)
    assert [len(e) for e in main_process] == [len(e) for e in workers]
    assert not all(torch.equal(a, b) for a, b in zip(*main_process, strict=True))  # epochs differ
    for want, got in zip(main_process, workers, strict=True):
        assert all(torch.equal(a, b) for a, b in zip(want, got, strict=True))


def test_text_keep_shortens_training_reports_and_leaves_validation_whole(
        cohort: Path, tmp_path: Path) -> None:
    import shutil

    from clerc.train.data import make_loaders

    data = tmp_path / "cohort"
    shutil.copytree(cohort, data)
    samples = pd.read_parquet(data / "samples.parquet")
    texts = samples["text"].notna()
    samples.loc[texts, "text"] = samples.loc[texts, "text"] + ". Second sentence. Third one."
    samples.to_parquet(data / "samples.parquet")

    def tokens(cfg: TrainConfig) -> tuple[int, int]:
        train, val = make_loaders(data, cfg)
        train.batch_sampler.set_epoch(0)
        count = lambda loader: sum(int((b.inputs["ecg_text"] != 0).sum())  # noqa: E731
                                   for b in loader if "ecg_text" in b.inputs)
        return count(train), count(val)

    whole_train, whole_val = tokens(small_config(max_steps_per_epoch=None))
    cut_train, cut_val = tokens(small_config(max_steps_per_epoch=None, text_keep=0.3))
    assert cut_val == whole_val
    assert cut_train < 0.8 * whole_train
