"""Embeddings save/load and the embedding cache key."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from clerc.cli import main
from clerc.data.manifest import read_manifest
from clerc.evaluate.embed import cache_key
from clerc.evaluate.embeddings import Embeddings
from tests.planted_cohort import planted


def test_save_load_round_trip(tmp_path):
    emb, _ = planted(tmp_path / "m", 12, noise=0.1)
    s = emb.samples.copy()
    s.loc[0, "study_id"] = pd.NA
    emb = Embeddings(s, emb.vectors, emb.prompt_texts, emb.prompt_vectors, 12.5,
                     {"a": [1, 2], "b": "x"})
    path = emb.save(tmp_path / "e.npz")
    with np.load(path, allow_pickle=False) as z:  # no pickled objects inside
        assert z["vectors"].dtype == np.float32
    back = Embeddings.load(path)
    pd.testing.assert_frame_equal(back.samples, emb.samples)
    assert back.samples["study_id"].isna().iloc[0]
    np.testing.assert_array_equal(back.vectors, emb.vectors)
    np.testing.assert_array_equal(back.prompt_vectors, emb.prompt_vectors)
    assert back.prompt_texts == emb.prompt_texts and back.logit_scale == 12.5
    assert back.header == {"a": [1, 2], "b": "x"}
    assert back.prompt_vector(emb.prompt_texts[3]) @ emb.prompt_vectors[3] == pytest.approx(1)


def test_embeddings_validate_shapes(tmp_path):
    emb, _ = planted(tmp_path, 6)
    with pytest.raises(ValueError, match="vectors for"):
        Embeddings(emb.samples.iloc[:-1], emb.vectors, emb.prompt_texts, emb.prompt_vectors, 1.0)
    with pytest.raises(KeyError, match="not embedded"):
        emb.prompt_vector("no such prompt")


def test_load_names_a_file_that_is_not_embeddings(tmp_path):
    parquet = tmp_path / "samples.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(parquet)
    np.save(tmp_path / "one.npy", np.zeros(3))
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    for f in (parquet, tmp_path / "one.npy", tmp_path / "other.npz"):
        with pytest.raises(ValueError, match=rf"{f.name}: not an embeddings file"):
            Embeddings.load(f)


def _media(root, m):
    for p in m.samples["path"].dropna():
        f = root / p
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x")


def test_cache_key_changes_with_inputs(tmp_path):
    planted(tmp_path / "m", 6)
    root = tmp_path / "m"
    m = read_manifest(root)
    _media(root, m)
    ckpt = tmp_path / "ckpt.pt"
    ckpt.write_bytes(b"weights")
    prompts = ["a", "b"]
    k0 = cache_key(ckpt, m, prompts)
    assert cache_key(ckpt, m, prompts) == k0
    media = root / m.samples["path"].dropna().iloc[0]
    st = media.stat()
    os.utime(media, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    k1 = cache_key(ckpt, m, prompts)
    assert k1 != k0
    assert cache_key(ckpt, m, ["a", "c"]) != k1
    ckpt.write_bytes(b"weights2")
    assert cache_key(ckpt, m, prompts) != k1
    (root / "samples.parquet").write_bytes((root / "samples.parquet").read_bytes() + b" ")
    assert cache_key(tmp_path / "ckpt.pt", m, prompts) != k1


def _tiny_cohort(root):
    """Two patients, every modality, .npy media (short videos, a 10 s ECG, a CXR)."""
    from clerc.data.manifest import write_manifest
    from clerc.modalities import MODALITY_NAMES, get_modality

    rng = np.random.default_rng(0)
    (root / "media").mkdir(parents=True)
    rows = []
    for p in range(2):
        for m in MODALITY_NAMES:
            kind = get_modality(m).kind
            sid = f"p{p}-{m}"
            path = pd.NA
            if kind == "video":
                arr = rng.integers(0, 255, (40, 64, 64), dtype=np.uint8)
            elif kind == "waveform":
                arr = rng.normal(0, 0.5, (12, 5000)).astype(np.float32)
            elif kind == "image":
                arr = rng.integers(0, 255, (300, 280), dtype=np.uint8)
            if kind != "text":
                path = f"media/{sid}.npy"
                np.save(root / path, arr)
            rows.append({"patient_id": f"p{p}", "study_id": f"p{p}-{get_modality(m).test}",
                         "sample_id": sid, "modality": m,
                         "acquired_at": pd.Timestamp("2021-01-01") + pd.Timedelta(days=p),
                         "path": path, "text": f"report {p} {m}" if kind == "text" else pd.NA,
                         "split": "test"})
    pat = pd.DataFrame({"patient_id": ["p0", "p1"], "sex": ["F", "M"], "anchor_age": [50.0, 60],
                        "anchor_time": pd.Timestamp("2021-01-01"), "race": pd.NA})
    write_manifest(root, pd.DataFrame(rows), pd.DataFrame(columns=["patient_id"]), pat)


def test_embed_with_a_tiny_model_and_cache(tmp_path):
    import torch

    from clerc.evaluate.embed import cache_path, ecg_views, embed_cached
    from clerc.model.clerc import CLERC
    from clerc.model.config import ModelConfig
    from clerc.train.checkpoint import make_header, save_checkpoint

    torch.manual_seed(0)
    cfg = ModelConfig.tiny()
    model = CLERC(cfg).eval()
    ckpt = save_checkpoint(tmp_path / "ckpt.pt", {"model": model.state_dict()},
                           make_header({"model": cfg.to_dict()}, "m", 0))
    root = tmp_path / "data"
    _tiny_cohort(root)
    logs = []
    emb, path = embed_cached(ckpt, root, ["Pacemaker.", "Left bundle branch block."],
                             batch_size=3, log=logs.append)
    assert path == cache_path(root, emb.header["cache_key"]) and path.is_file()
    assert emb.vectors.shape == (16, cfg.embed_dim)
    assert emb.prompt_vectors.shape == (2, cfg.embed_dim)
    assert emb.logit_scale == pytest.approx(1 / 0.07, rel=1e-4)
    # a sample's embedding does not depend on the batch it was in
    row = emb.samples.index[emb.samples["sample_id"] == "p1-ecg_waveform"][0]
    sig = np.load(root / "media/p1-ecg_waveform.npy")
    v = ecg_views(sig, cfg.ecg_length)
    assert v.shape == (4, 12, cfg.ecg_length)
    with torch.no_grad():
        z = model.encode("ecg_waveform", torch.from_numpy(v)).numpy().mean(0)
    np.testing.assert_allclose(emb.vectors[row], z / np.linalg.norm(z), atol=1e-4)
    again, _ = embed_cached(ckpt, root, ["Pacemaker.", "Left bundle branch block."],
                            log=logs.append)
    assert "cached" in logs[-1]
    np.testing.assert_array_equal(again.vectors, emb.vectors)
    path.write_bytes(path.read_bytes()[:100])  # a cache cut short is recomputed, not fatal
    again, _ = embed_cached(ckpt, root, ["Pacemaker.", "Left bundle branch block."],
                            log=logs.append)
    assert "unreadable cache" in logs[-2] and "wrote" in logs[-1]
    np.testing.assert_allclose(again.vectors, emb.vectors, atol=1e-6)
    assert Embeddings.load(path).header["cache_key"] == emb.header["cache_key"]
    extra = tmp_path / "t.toml"  # the CLI embeds the packaged prompts too: another key
    extra.write_text("")
    assert main(["embed", "--checkpoint", str(ckpt), "--data", str(root), "--out",
                 str(tmp_path / "e.npz"), "--device", "cpu", "--tasks-file", str(extra),
                 "--workers", "1"]) == 0
    cli = Embeddings.load(tmp_path / "e.npz")
    np.testing.assert_allclose(cli.vectors, emb.vectors, atol=1e-5)
    assert len(cli.prompt_texts) == 22 and cli.header["cache_key"] != emb.header["cache_key"]
    media = root / "media/p0-cxr_image.npy"
    os.utime(media, ns=(media.stat().st_atime_ns, media.stat().st_mtime_ns + 10**9))
    _, path2 = embed_cached(ckpt, root, ["Pacemaker.", "Left bundle branch block."],
                            log=logs.append)
    assert path2 != path and "wrote" in logs[-1]
