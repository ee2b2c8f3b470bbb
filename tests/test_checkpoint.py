"""Checkpoints: safe round trip, atomic writes, refusal of pickled objects, model rebuild."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from clerc.model.clerc import CLERC, example_input
from clerc.model.config import ModelConfig
from clerc.train.checkpoint import (
    FORMAT,
    CheckpointError,
    load_checkpoint,
    load_model,
    make_header,
    save_checkpoint,
)


class Custom:
    """A class that only arbitrary unpickling could rebuild."""

    def __init__(self) -> None:
        self.x = 1


@pytest.fixture(scope="module")
def model() -> CLERC:
    torch.manual_seed(0)
    return CLERC(ModelConfig.tiny())


def _header(cfg: ModelConfig, epoch: int = 3) -> dict:
    return make_header({"model": cfg.to_dict(), "lr": 0.1}, "abc123", epoch, best_epoch=2)


def test_round_trip_with_optimizer_and_rng(model: CLERC, tmp_path: Path) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.logit_scale.grad = torch.tensor(1.0)
    opt.step()
    rng = {"torch": torch.get_rng_state(), "python": random.getstate()}
    path = save_checkpoint(tmp_path / "ck.pt", {"model": model.state_dict(),
                                                 "optimizer": opt.state_dict(), "rng": rng},
                           _header(model.cfg))
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT and isinstance(raw["header"], str)
    state, header = load_checkpoint(path)
    for k, v in model.state_dict().items():
        assert torch.equal(state["model"][k], v), k
    assert torch.equal(state["rng"]["torch"], rng["torch"])
    random.setstate(state["rng"]["python"])
    opt.load_state_dict(state["optimizer"])
    assert header["epoch"] == 3 and header["best_epoch"] == 2
    assert header["manifest_hash"] == "abc123" and header["config"]["lr"] == 0.1
    assert set(header["versions"]) >= {"torch", "torchvision", "open_clip", "numpy"}
    assert header["code_revision"] and "echo_text" in header["modalities"]
    assert list(tmp_path.iterdir()) == [path]


def test_load_model_rebuilds_the_same_network(model: CLERC, tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", {"model": model.state_dict()}, _header(model.cfg))
    again, header = load_model(path)
    assert again.cfg == model.cfg and not again.training
    x = torch.randint(0, 256, example_input("cxr_image", model.cfg, 2).shape, dtype=torch.uint8)
    with torch.no_grad():
        expected = model.eval().encode("cxr_image", x)
        torch.testing.assert_close(again.encode("cxr_image", x), expected)
    assert header["epoch"] == 3


def test_unsafe_state_is_named_and_old_file_kept(model: CLERC, tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", {"model": {"w": torch.ones(2)}}, {"epoch": 1})
    with pytest.raises(CheckpointError, match=r"state\['rng'\]\['numpy'\] is a numpy.ndarray"):
        save_checkpoint(path, {"model": {"w": torch.zeros(2)}, "rng": {"numpy": np.zeros(3)}}, {})
    with pytest.raises(CheckpointError, match="not JSON-able"):
        save_checkpoint(path, {"model": {"w": torch.zeros(2)}}, {"bad": object()})
    state, header = load_checkpoint(path)
    assert torch.equal(state["model"]["w"], torch.ones(2)) and header["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_pickled_objects_are_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "header": "{}", "state": {"model": Custom()}}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pt.*arbitrary unpickling"):
        load_checkpoint(path)


def test_foreign_and_missing_files_are_named(tmp_path: Path) -> None:
    torch.save({"weights": torch.ones(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"other\.pt: not a CLERC checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="nothere.pt"):
        load_checkpoint(tmp_path / "nothere.pt")
    save_checkpoint(tmp_path / "nocfg.pt", {"model": {}}, {"config": {}})
    with pytest.raises(CheckpointError, match="no config.model"):
        load_model(tmp_path / "nocfg.pt")


def test_a_file_that_is_not_a_checkpoint_is_named_in_one_line(tmp_path):
    path = tmp_path / "samples.parquet"
    path.write_bytes(b"PAR1" + bytes(100))
    with pytest.raises(CheckpointError, match=r"samples\.parquet: not a checkpoint") as err:
        load_checkpoint(path)
    assert "weights_only" not in str(err.value) and len(str(err.value)) < 200


def test_a_baseline_or_mismatched_checkpoint_is_named_briefly(model: CLERC, tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "base.pt", {"model": {"w": torch.ones(1)}},
                    {"kind": "baseline", "config": {"model": model.cfg.to_dict()}})
    with pytest.raises(CheckpointError, match=r"base\.pt: a supervised baseline checkpoint"):
        load_model(tmp_path / "base.pt")
    sd = dict(model.state_dict())
    sd["heads.x.weight"] = torch.ones(1)
    del sd["logit_scale"]
    save_checkpoint(tmp_path / "odd.pt", {"model": sd}, _header(model.cfg))
    with pytest.raises(CheckpointError, match=r"1 missing keys \(first 'logit_scale'\), "
                                              r"1 unexpected keys \(first 'heads.x.weight'\)"):
        load_model(tmp_path / "odd.pt")
