"""The CLERC model: config validation, encoder shapes, routing, normalisation, FLOPs."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torchvision.models.video import r2plus1d_18

from clerc.modalities import ENCODERS, MODALITY_NAMES
from clerc.model.clerc import (
    CLERC,
    build_encoder,
    channels_last_3d,
    encoder_flops,
    encoder_key,
    example_input,
)
from clerc.model.config import ModelConfig, TextConfig, ViTConfig
from clerc.model.encoders.video import KINETICS_MEAN, KINETICS_STD, R2Plus1D
from clerc.model.init import PretrainedError, load_pretrained


@pytest.fixture(scope="module")
def tiny() -> CLERC:
    torch.manual_seed(0)
    return CLERC(ModelConfig.tiny()).eval()


def _random_input(key: str, cfg: ModelConfig, batch: int) -> torch.Tensor:
    x = example_input(key, cfg, batch)
    if x.dtype == torch.uint8:
        return torch.randint(0, 256, x.shape, dtype=torch.uint8)
    if x.dtype == torch.long:
        return torch.randint(1, 49000, x.shape)
    return torch.randn(x.shape)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"embed_dim": 0}, "embed_dim"),
        ({"video_widths": (64, 128, 256)}, "video_widths"),
        ({"ecg_kernel": 4}, "ecg_kernel"),
        ({"ecg_scale_mv": -1.0}, "ecg_scale_mv"),
        ({"image_size": 100}, "image_size"),
        ({"quick_gelu": 1}, "quick_gelu"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ModelConfig(**kwargs)


def test_sub_configs_validate() -> None:
    with pytest.raises(ValueError, match="heads"):
        ViTConfig(width=100, heads=12)
    with pytest.raises(ValueError, match="vocab_size"):
        TextConfig(vocab_size=1000)


@pytest.mark.parametrize("cfg", [ModelConfig.paper(), ModelConfig.tiny()])
def test_config_round_trips_through_json(cfg: ModelConfig) -> None:
    again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


def test_config_from_dict_names_unknown_keys() -> None:
    with pytest.raises(ValueError, match="video_width"):
        ModelConfig.from_dict({"video_width": 3})


def test_paper_config_is_the_papers() -> None:
    cfg = ModelConfig.paper()
    assert (cfg.embed_dim, cfg.video_frames, cfg.video_size, cfg.ecg_length) == (512, 16, 112, 2500)
    assert (cfg.vit.width, cfg.vit.layers, cfg.vit.heads, cfg.vit.patch_size) == (768, 12, 12, 32)
    assert (cfg.text.width, cfg.text.heads, cfg.text.layers, cfg.text.context_length) == (
        512, 8, 12, 77,
    )


def test_every_encoder_embeds_to_unit_vectors(tiny: CLERC) -> None:
    assert list(tiny.encoders) == list(ENCODERS)
    with torch.no_grad():
        for key in ENCODERS:
            z = tiny.encode(key, _random_input(key, tiny.cfg, 3))
            assert z.shape == (3, 512), key
            torch.testing.assert_close(z.norm(dim=-1), torch.ones(3), msg=key)
            raw = tiny.encode(key, _random_input(key, tiny.cfg, 2), normalize=False)
            assert not torch.allclose(raw.norm(dim=-1), torch.ones(2)), key


def test_reports_route_to_the_shared_text_encoder(tiny: CLERC) -> None:
    tokens = tiny.tokenize(["normal sinus rhythm", "severe aortic stenosis"])
    assert tokens.shape == (2, 77) and tokens.dtype == torch.long
    with torch.no_grad():
        ref = tiny.encode("text", tokens)
        for name in MODALITY_NAMES:
            if name.endswith("_text"):
                assert encoder_key(name) == "text"
                torch.testing.assert_close(tiny.encode(name, tokens), ref)
    assert encoder_key("echo_video") == "echo_video"


def test_unknown_modality_names_close_matches(tiny: CLERC) -> None:
    with pytest.raises(KeyError, match="echo_video"):
        tiny.encode("echo_vide", torch.zeros(1))


@pytest.mark.parametrize(
    ("key", "bad", "match"),
    [
        ("echo_video", torch.zeros(1, 3, 8, 64, 64, dtype=torch.uint8), "video input"),
        ("ecg_waveform", torch.zeros(1, 8, 1250), "ECG input"),
        ("cxr_image", torch.zeros(1, 32, 32, dtype=torch.uint8), "image input"),
        ("text", torch.zeros(1, 50, dtype=torch.long), "text input"),
        ("text", torch.zeros(1, 77), "LongTensor"),
    ],
)
def test_wrong_input_is_named(tiny: CLERC, key: str, bad: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tiny.encode(key, bad)


def test_logit_scale_init_and_clamp(tiny: CLERC) -> None:
    model = CLERC(dataclasses.replace(ModelConfig.tiny()))
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    assert model.scale().item() == pytest.approx(1 / 0.07, rel=1e-6)
    assert model.temperature().item() == pytest.approx(0.07, rel=1e-6)
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    assert model.scale().item() == pytest.approx(100.0, rel=1e-6)
    model.clamp_logit_scale_()
    assert model.logit_scale.item() == pytest.approx(math.log(100))


def test_video_normalisation_is_kinetics(tiny: CLERC) -> None:
    enc = tiny.encoders["echo_video"]
    x = torch.randint(0, 256, (2, 4, 8, 8), dtype=torch.uint8)
    y = enc.normalize(x)
    assert y.shape == (2, 3, 4, 8, 8)
    for c in range(3):
        ref = (x.float() / 255 - KINETICS_MEAN[c]) / KINETICS_STD[c]
        torch.testing.assert_close(y[:, c], ref)


def test_ecg_normalisation_removes_lead_offsets(tiny: CLERC) -> None:
    enc = tiny.encoders["ecg_waveform"]
    x = torch.randn(2, 12, 1250)
    offsets = torch.randn(2, 12, 1) * 5
    torch.testing.assert_close(enc.normalize(x + offsets), enc.normalize(x), atol=1e-5, rtol=0)
    torch.testing.assert_close(enc.normalize(3 * x), 3 * enc.normalize(x), atol=1e-5, rtol=1e-5)


def test_paper_video_net_is_torchvision_r2plus1d_18() -> None:
    torch.manual_seed(0)
    ours, ref = R2Plus1D((64, 128, 256, 512), 400).eval(), r2plus1d_18(weights=None).eval()
    ours_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    ref_shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert ours_shapes == ref_shapes
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x))


def test_channels_last_3d_keeps_the_output() -> None:
    torch.manual_seed(0)
    model = CLERC(ModelConfig.tiny()).eval()
    x = _random_input("angio_video", model.cfg, 2)
    with torch.no_grad():
        before = model.encode("angio_video", x)
        after = channels_last_3d(model).encode("angio_video", x)
    assert model.encoders["angio_video"].channels_last
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-4)


def test_paper_flops_match_the_cost_model() -> None:
    flops = encoder_flops(ModelConfig.paper())
    assert flops["echo_video"] == flops["angio_video"]
    assert flops["echo_video"] == pytest.approx(81e9, rel=0.02)  # torchvision: 40.5 GMAC
    assert flops["cxr_image"] == pytest.approx(8.8e9, rel=0.02)
    assert flops["text"] == pytest.approx(6.0e9, rel=0.02)
    assert 0.5e9 < flops["ecg_waveform"] < 4e9


def test_tokenizer_works_without_network() -> None:
    code = (
        "import socket\n"
        "def refuse(*a, **k):\n    raise RuntimeError('network used')\n"
        "socket.socket.connect = refuse\nsocket.create_connection = refuse\n"
        "socket.getaddrinfo = refuse\n"
        "from clerc.model.encoders.text import tokenize\n"
        "t = tokenize(['sinus rhythm', 'x ' * 200], 77)\n"
        "assert t.shape == (2, 77) and t[1, -1].item() == 49407, t\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


# --- pretrained initialisation (clerc.model.init) ---------------------------------------


class Encoders(torch.nn.Module):
    """Only the paper-size encoders that have pretrained weights (cheaper than a CLERC)."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        super().__init__()
        cfg = ModelConfig.paper()
        self.encoders = torch.nn.ModuleDict({k: build_encoder(k, cfg) for k in keys})


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Random paper-size Kinetics and CLIP weights saved as a user would have them."""
    import open_clip

    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(1)
    torch.save(r2plus1d_18(weights=None).state_dict(), root / "r2plus1d_18.pth")
    clip = open_clip.create_model("ViT-B-32", pretrained=None)
    torch.save({k: v.half() for k, v in clip.state_dict().items()}, root / "clip.pt")
    return {"kinetics": root / "r2plus1d_18.pth", "clip": root / "clip.pt"}


def test_loads_kinetics_and_clip_weights(weight_files: dict[str, Path]) -> None:
    model = Encoders(("echo_video", "cxr_image", "text"))
    fc_before = model.encoders["echo_video"].net.fc.weight.clone()
    reports = load_pretrained(model, {"echo_video": weight_files["kinetics"],
                                      "cxr_image": weight_files["clip"],
                                      "text": weight_files["clip"]})
    kinetics = torch.load(weight_files["kinetics"], weights_only=True)
    net = model.encoders["echo_video"].net.state_dict()
    for k, v in kinetics.items():
        if not k.startswith("fc."):
            assert torch.equal(net[k], v), k
    assert torch.equal(model.encoders["echo_video"].net.fc.weight, fc_before)
    assert reports["echo_video"].skipped == ("fc.bias", "fc.weight")
    assert reports["echo_video"].loaded == len(kinetics) - 2
    clip = torch.load(weight_files["clip"], weights_only=True)
    vit = model.encoders["cxr_image"].vit.state_dict()
    tower = model.encoders["text"].tower.state_dict()
    assert reports["cxr_image"].loaded == len(vit) and reports["text"].loaded == len(tower)
    for k, v in clip.items():
        if k.startswith("visual."):
            assert torch.equal(vit[k[len("visual."):]], v.float()), k
        elif k not in ("logit_scale",):
            assert torch.equal(tower[k], v.float()), k
    assert "logit_scale" in reports["text"].skipped


def test_wrong_shapes_name_the_parameter(weight_files: dict[str, Path], tiny: CLERC) -> None:
    with pytest.raises(PretrainedError, match=r"r2plus1d_18\.pth.*stem\.0\.weight \(file "
                       r"\(45, 3, 1, 7, 7\) vs model \(5, 3, 1, 7, 7\)\)"):
        load_pretrained(tiny, {"angio_video": weight_files["kinetics"]})


def test_missing_keys_and_nesting(tiny: CLERC, tmp_path: Path) -> None:
    sd = {k: torch.randn_like(v) for k, v in tiny.encoders["text"].tower.state_dict().items()}
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in sd.items()}},
               tmp_path / "nested.pt")
    model = CLERC(ModelConfig.tiny())
    load_pretrained(model, {"text": tmp_path / "nested.pt"})
    for k, v in model.encoders["text"].tower.state_dict().items():
        assert torch.equal(v, sd[k]), k
    del sd["ln_final.bias"]
    torch.save(sd, tmp_path / "partial.pt")
    with pytest.raises(PretrainedError, match=r"partial\.pt.*missing from the file \(1\): "
                       "ln_final.bias"):
        load_pretrained(model, {"text": tmp_path / "partial.pt"})


def test_torchscript_and_unknown_keys_are_refused(tiny: CLERC, tmp_path: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), tmp_path / "jit.pt")
    with pytest.raises(PretrainedError, match=r"jit\.pt: is a TorchScript archive"):
        load_pretrained(tiny, {"cxr_image": tmp_path / "jit.pt"})
    with pytest.raises(PretrainedError, match="ecg_waveform"):
        load_pretrained(tiny, {"ecg_waveform": tmp_path / "jit.pt"})
