"""Any model in: the protocol, the two examples (random weights), the cache key of the model
path, and cells a model cannot serve reported as not applicable."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from clerc.cli import main
from clerc.evaluate.embed import cache_key, embed_cached
from clerc.evaluate.results import Record
from clerc.models.applicable import is_not_applicable, mark_not_applicable
from clerc.models.protocol import InputSpec, ProtocolAdapter, check_model
from clerc.models.source import ModelSource, parse_model_args
from tests.test_embeddings import _tiny_cohort

ECHO = ModelSource("clerc.models.echoclip:build", (("arch", "tiny"),))
ECG = ModelSource("clerc.models.ecg_encoder:build", (("width", "8"),))


def test_echoclip_example_averages_frame_embeddings():
    model = ECHO.model
    mods, spec = check_model(model, "echo")
    assert mods == ("echo_video", "echo_text") and spec.embed_dim == 64
    clips = torch.randint(0, 256, (2, 5, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        z = model.encode("echo_video", clips)
        one = model.encode("echo_video", clips[:1, 2:3])  # a clip of one frame
        frame = torch.nn.functional.normalize(model.clip.encode_image(
            (clips[0, 2].float().div(255).expand(1, 3, 64, 64) - model.mean) / model.std), dim=-1)
        text = model.encode_text(["Pacemaker.", "Normal echo."])
    assert z.shape == (2, 64) and text.shape == (2, 64)
    torch.testing.assert_close(one, frame, rtol=1e-4, atol=1e-5)
    assert model.logit_scale == pytest.approx(1 / 0.07, rel=1e-4)
    with pytest.raises(ValueError, match="encodes echo_video"):
        model.encode("ecg_waveform", torch.zeros(1, 12, 10))


def test_ecg_example_is_single_modality_without_text():
    mods, spec = check_model(ECG.model, "ecg")
    assert mods == ("ecg_waveform",) and not ECG.has_text and spec.ecg_length == 2500
    z = ProtocolAdapter(ECG.model, "ecg").encode("ecg_waveform", torch.randn(3, 12, 2500))
    assert z.shape == (3, 128)
    np.testing.assert_allclose(z.norm(dim=1).detach().numpy(), 1.0, rtol=1e-5)


class _Fake:
    embed_dim = 4
    modalities = ("cxr_image",)

    def encode(self, modality, batch):
        return torch.ones(len(batch), 3)  # wrong width


def test_protocol_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown modalities"):
        check_model(type("M", (_Fake,), {"modalities": ("xray",)})(), "m")
    with pytest.raises(ValueError, match="no `encode_text"):
        check_model(type("M", (_Fake,), {"modalities": ("cxr_text",)})(), "m")
    with pytest.raises(ValueError, match="`embed_dim` must be"):
        check_model(type("M", (_Fake,), {"embed_dim": 0})(), "m")
    with pytest.raises(ValueError, match="logit_scale"):
        check_model(type("M", (_Fake,), {"encode_text": lambda self, t: None})(), "m")
    with pytest.raises(ValueError, match=r"returned shape \(2, 3\), expected \(2, 4\)"):
        ProtocolAdapter(_Fake(), "m").encode("cxr_image", torch.zeros(2, 8, 8))
    for spec, msg in (("nocolon", "package.module:factory"),
                      ("no_such_module_x:f", "cannot import"),
                      ("clerc.models.echoclip:nope", "no callable 'nope'")):
        with pytest.raises(ValueError, match=msg):
            _ = ModelSource(spec).model
    with pytest.raises(ValueError, match="rejected the arguments"):
        _ = ModelSource("clerc.models.ecg_encoder:build", (("colour", "red"),)).model
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_model_args(["weights"])
    with pytest.raises(ValueError, match="positive integer"):
        InputSpec(video_frames=0)


def test_model_path_embeds_only_its_modalities_and_caches(tmp_path):
    root = tmp_path / "data"
    _tiny_cohort(root)
    logs: list[str] = []
    emb, path = embed_cached(ECG, root, ["Pacemaker."], log=logs.append)
    assert set(emb.samples["modality"]) == {"ecg_waveform"} and emb.dim == 128
    assert emb.prompt_texts == []  # no text side: prompts are not embedded
    assert emb.header["model"] == ECG.spec and emb.header["text_side"] is False
    assert emb.header["modalities"] == ["ecg_waveform"]
    again, path2 = embed_cached(ModelSource(ECG.spec, ECG.args), root, ["Pacemaker."],
                                log=logs.append)
    assert path2 == path and "cached" in logs[-1]
    np.testing.assert_array_equal(again.vectors, emb.vectors)
    echo, _ = embed_cached(ECHO, root, ["Pacemaker."], log=logs.append)
    assert set(echo.samples["modality"]) == {"echo_video", "echo_text"}
    assert echo.prompt_texts == ["Pacemaker."] and echo.logit_scale == pytest.approx(1 / 0.07,
                                                                                    rel=1e-4)


def test_cache_key_follows_code_weights_arguments_and_prompts(tmp_path, monkeypatch):
    from clerc.data.manifest import read_manifest

    root = tmp_path / "data"
    _tiny_cohort(root)
    m = read_manifest(root)
    mod = tmp_path / "my_encoder.py"
    mod.write_text("from clerc.models.ecg_encoder import build as _b\n"
                   "def build(**kw):\n    return _b(width='8', **kw)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    src = ModelSource("my_encoder:build")
    k0 = cache_key(src, m, [])
    assert cache_key(ModelSource("my_encoder:build"), m, []) == k0
    assert cache_key(ModelSource("my_encoder:build"), m, ["x"]) != k0  # prompts
    assert cache_key(ModelSource("my_encoder:build", (("seed", "1"),)), m, []) != k0  # weights
    weights = tmp_path / "w.pt"
    torch.save(ModelSource("my_encoder:build", (("seed", "2"),)).model.state_dict(), weights)
    k_w = cache_key(ModelSource("my_encoder:build", (("weights", str(weights)),)), m, [])
    assert k_w != k0
    mod.write_text(mod.read_text() + "# a change to the model's code\n")  # code
    assert cache_key(ModelSource("my_encoder:build"), m, []) != k0
    sys.modules.pop("my_encoder", None)


def _rec(setting: str, **kw) -> Record:
    base = {"table": "table4", "task": "rbbb", "setting": setting, "query_modality": None,
            "gallery_modality": None, "modality": "ecg_waveform",
            "label_modality": "ecg_waveform", "metric": "auroc", "value": 0.8, "ci_low": 0.7,
            "ci_high": 0.9, "n": 10, "n_undefined": 0, "note": None}
    return Record(**{**base, **kw})


def test_mark_not_applicable():
    header = {"model": "m:f", "modalities": ["ecg_waveform"], "text_side": False}
    recs = [_rec("zero_shot"), _rec("linear_probe"), _rec("supervised", modality="cxr_image"),
            _rec("linear_probe", modality="cxr_image"),
            _rec("retrieval", table="table3", modality=None, query_modality="ecg_waveform",
                 gallery_modality="ecg_text", task="retrieval", label_modality=None)]
    out = mark_not_applicable(recs, header)
    assert [is_not_applicable(r) for r in out] == [True, False, False, True, True]
    assert out[0].note == "not applicable: m:f has no text side to embed the prompt"
    assert out[3].note == "not applicable: m:f does not encode cxr_image"
    assert mark_not_applicable(recs, {}) == recs  # a CLERC checkpoint serves everything


def test_benchmark_with_a_model_reports_not_applicable_cells(tmp_path, capsys):
    root = tmp_path / "data"
    _tiny_cohort(root)
    out = tmp_path / "bench"
    assert main(["benchmark", "--model", ECG.spec, "--model-arg", "width=8", "--data",
                 str(root), "--out", str(out), "--bootstrap", "5", "--device", "cpu"]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["provenance"]["model"] == ECG.spec
    assert doc["provenance"]["modalities_encoded"] == ["ecg_waveform"]
    recs = doc["records"]
    zs = [r for r in recs if r["setting"] == "zero_shot"]
    assert zs and all(is_not_applicable(r) for r in zs)
    t3 = [r for r in recs if r["table"] == "table3"]
    assert len(t3) == 56 * 6 and all(is_not_applicable(r) for r in t3)
    ecg = [r for r in recs if r["setting"] == "linear_probe" and r["modality"] == "ecg_waveform"]
    assert ecg and not any(is_not_applicable(r) for r in ecg)
    html = (out / "table4.html").read_text()
    assert ">n/a<" in html and "has no text side" in html
    assert main(["embed", "--checkpoint", "x.pt", "--model", ECG.spec, "--data",
                 str(root)]) == 2
    assert "either --checkpoint or --model" in capsys.readouterr().err
