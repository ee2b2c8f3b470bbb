"""TrainConfig: presets, validation, TOML round trip, and the pure learning-rate schedule."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from clerc.model.config import ModelConfig
from clerc.train.config import TrainConfig, load_config, lr_at

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_paper_preset_is_the_papers_recipe() -> None:
    cfg = TrainConfig.paper()
    assert (cfg.lr, cfg.momentum, cfg.batch_size, cfg.epochs) == (1e-4, 0.9, 32, 60)
    assert (cfg.lr_step, cfg.lr_gamma) == (20, 0.1)
    assert cfg.model == ModelConfig.paper()
    assert len(cfg.modalities) == 8


def test_tiny_preset_uses_the_tiny_model() -> None:
    cfg = TrainConfig.tiny()
    assert cfg.model == ModelConfig.tiny()
    assert cfg.lr > TrainConfig.paper().lr


@pytest.mark.parametrize("name", ["paper", "tiny"])
def test_toml_round_trip(tmp_path: Path, name: str) -> None:
    cfg = TrainConfig.preset(name)
    f = tmp_path / "c.toml"
    f.write_text(cfg.to_toml())
    assert TrainConfig.from_toml(f) == cfg
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("name", ["paper", "tiny"])
def test_committed_toml_files_mirror_the_presets(name: str) -> None:
    assert TrainConfig.from_toml(CONFIGS / f"{name}.toml") == TrainConfig.preset(name)
    assert load_config(str(CONFIGS / f"{name}.toml")) == load_config(name)


def test_toml_overrides_a_base_preset_deeply(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('base = "tiny"\nepochs = 3\nmax_steps_per_epoch = 5\n'
                 'modalities = ["ecg_waveform", "ecg_text"]\n[model.vit]\nlayers = 1\n')
    cfg = TrainConfig.from_toml(f)
    tiny = TrainConfig.tiny()
    assert (cfg.epochs, cfg.max_steps_per_epoch, cfg.lr) == (3, 5, tiny.lr)
    assert cfg.modalities == ("ecg_waveform", "ecg_text")
    assert cfg.model.vit.layers == 1 and cfg.model.vit.width == tiny.model.vit.width
    assert TrainConfig.from_toml(_write(tmp_path, cfg.to_toml())) == cfg


def _write(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "again.toml"
    f.write_text(text)
    return f


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("lr", 0.0, "lr: expected a number > 0, got 0.0"),
    ("momentum", 1.0, "momentum: expected a number in [0, 1), got 1.0"),
    ("batch_size", 0, "batch_size: expected an integer >= 1, got 0"),
    ("epochs", 2.5, "epochs: expected an integer >= 1, got 2.5"),
    ("lr_gamma", 0.0, "lr_gamma: expected a number in (0, 1], got 0.0"),
    ("amp", "fp8", "amp: expected one of"),
    ("max_steps_per_epoch", 0, "max_steps_per_epoch: expected an integer >= 1, got 0"),
    ("modalities", ("echo_video", "ekg"), "modalities: unknown ['ekg']"),
    ("modalities", ("echo_video",), "modalities: expected at least two distinct"),
    ("seed", -1, "seed: expected an integer >= 0, got -1"),
    ("logit_scale_lr_factor", -0.5, "logit_scale_lr_factor: expected a number >= 0, got -0.5"),
    ("text_keep", 0.0, "text_keep: expected a number in (0, 1], got 0.0"),
    ("text_keep", 1.5, "text_keep: expected a number in (0, 1], got 1.5"),
])
def test_validation_names_field_value_and_expectation(field: str, value: object,
                                                      expected: str) -> None:
    with pytest.raises(ValueError, match=expected.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)")):
        dataclasses.replace(TrainConfig.tiny(), **{field: value})


def test_unknown_keys_and_bad_files_are_named(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text("learning_rate = 0.1\n")
    with pytest.raises(ValueError, match=r"bad.toml: train config: unknown keys \['learning_"):
        TrainConfig.from_toml(f)
    with pytest.raises(ValueError, match="neither a preset"):
        load_config(str(tmp_path / "missing.toml"))
    with pytest.raises(ValueError, match="preset: unknown 'huge'"):
        TrainConfig.preset("huge")


def _scale_and_linear() -> torch.nn.Module:
    model = torch.nn.Module()
    model.logit_scale = torch.nn.Parameter(torch.tensor(2.0))
    model.proj = torch.nn.Linear(2, 2)
    return model


def test_optimizer_gives_the_logit_scale_its_own_lr_factor() -> None:
    from clerc.train.trainer import make_optimizer, set_lr

    model = _scale_and_linear()
    cfg = dataclasses.replace(TrainConfig.tiny(), lr=0.1, logit_scale_lr_factor=0.01)
    opt = make_optimizer(model, cfg)

    def lr_of(param: torch.Tensor) -> float:
        return next(g["lr"] for g in opt.param_groups if any(p is param for p in g["params"]))

    assert lr_of(model.proj.weight) == pytest.approx(0.1)
    assert lr_of(model.proj.bias) == pytest.approx(0.1)
    assert lr_of(model.logit_scale) == pytest.approx(0.001)
    set_lr(opt, lr_at(cfg.lr_step, cfg))
    assert lr_of(model.proj.weight) == pytest.approx(0.01)
    assert lr_of(model.logit_scale) == pytest.approx(1e-4)


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_weight_decay_spares_biases_norms_and_the_logit_scale(optimizer: str) -> None:
    """With no gradient, a step is pure decay: the weight matrix shrinks by lr * wd (AdamW)
    and the bias and logit scale stay where they are."""
    from clerc.train.trainer import make_optimizer

    model = _scale_and_linear()
    cfg = dataclasses.replace(TrainConfig.tiny(), optimizer=optimizer, lr=0.1, weight_decay=0.5)
    opt = make_optimizer(model, cfg)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    assert torch.equal(model.logit_scale.detach(), before["logit_scale"])
    assert torch.equal(model.proj.bias.detach(), before["proj.bias"])
    assert torch.allclose(model.proj.weight.detach(), before["proj.weight"] * (1 - 0.1 * 0.5))


def test_lr_schedule_at_start_boundary_and_end() -> None:
    cfg = TrainConfig.paper()
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(19, cfg) == pytest.approx(1e-4)
    assert lr_at(20, cfg) == pytest.approx(1e-5)
    assert lr_at(40, cfg) == pytest.approx(1e-6)
    assert lr_at(59, cfg) == pytest.approx(1e-6)
    with pytest.raises(ValueError, match="epoch: expected >= 0, got -1"):
        lr_at(-1, cfg)


def test_cosine_schedule_with_warmup_at_its_boundaries():
    import dataclasses

    cfg = dataclasses.replace(TrainConfig.demo(), lr=1e-3, epochs=10, warmup_epochs=1.0)
    assert lr_at(0, cfg) == 0.0
    assert lr_at(0.5, cfg) == pytest.approx(0.5 * 0.5 * (1 + 1) * 1e-3)  # ramp x cosine(0)
    assert lr_at(1.0, cfg) == pytest.approx(1e-3)
    assert lr_at(5.5, cfg) == pytest.approx(0.5e-3)  # halfway through the decay
    assert lr_at(10.0, cfg) == pytest.approx(0.0, abs=1e-15)
    step = dataclasses.replace(cfg, schedule="step", lr_step=4, warmup_epochs=0.0)
    assert lr_at(3.99, step) == pytest.approx(1e-3) and lr_at(4.0, step) == pytest.approx(1e-4)


def test_schedule_and_warmup_are_validated():
    import dataclasses

    with pytest.raises(ValueError, match="schedule: expected one of"):
        dataclasses.replace(TrainConfig.tiny(), schedule="linear")
    with pytest.raises(ValueError, match="warmup_epochs"):
        dataclasses.replace(TrainConfig.tiny(), warmup_epochs=99.0)


def test_demo_preset_round_trips_and_spans_a_cardiac_cycle():
    cfg = TrainConfig.preset("demo")
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.model.video_frames / cfg.model.video_fps == pytest.approx(16 / 15)
