"""A new modality of a new kind touches only its own records: a toy kind through embed and
a task, registered with ``register_kind`` and ``register_modality`` and nothing else."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from clerc import kinds, modalities
from clerc.data.manifest import read_manifest, write_manifest
from clerc.evaluate.embed import embed_cached
from clerc.evaluate.registry import Context, TaskDef, load_tasks
from clerc.kinds import Kind, register_kind
from clerc.modalities import DIAGNOSTIC, ENCODERS, MODALITY_NAMES, Modality, register_modality
from clerc.model.clerc import CLERC
from clerc.model.config import ModelConfig
from clerc.train.checkpoint import make_header, save_checkpoint

WIDTH = 8


class ToyEncoder(nn.Module):
    """A linear map of the toy vector to the embedding."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(WIDTH, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.float())


TOY_KIND = Kind(
    "vector",
    read=lambda path: np.load(path),
    native=lambda modality, x: np.asarray(x, dtype=np.float32),
    view=lambda x, spec, train, rng: x,
    eval_views=lambda x, spec: x[None],
    build_encoder=lambda cfg, modality: ToyEncoder(cfg.embed_dim),
    example_input=lambda cfg, batch, device: torch.zeros((batch, WIDTH), device=device),
    packed_dtype=np.float32,
)
TOY = Modality("toy_vector", "vector", (WIDTH,), "toy", None, "toy_vector", "Toy vector")


@pytest.fixture
def toy(monkeypatch):
    """Register the toy kind and modality; the registries are restored afterwards."""
    monkeypatch.setattr(kinds.KINDS, "_items", dict(kinds.KINDS._items))
    monkeypatch.setattr(modalities.MODALITIES, "_items", dict(modalities.MODALITIES._items))
    register_kind(TOY_KIND)
    register_modality(TOY)
    yield TOY
    assert "toy_vector" in MODALITY_NAMES  # still registered until the fixture ends


def _cohort(root, n=36):
    rng = np.random.default_rng(0)
    (root / "media").mkdir(parents=True)
    samples, labels, patients = [], [], []
    t0 = pd.Timestamp("2021-01-01")
    for i in range(n):
        pid, x = f"p{i:02d}", rng.normal(size=WIDTH).astype(np.float32)
        split = "train" if i < n // 2 else "val" if i < 3 * n // 4 else "test"
        patients.append({"patient_id": pid, "sex": "F", "anchor_age": 60.0, "anchor_time": t0})
        np.save(root / "media" / f"{pid}.npy", x)
        samples.append({"patient_id": pid, "study_id": f"{pid}-toy", "sample_id": f"{pid}-v",
                        "modality": "toy_vector", "acquired_at": t0, "split": split,
                        "path": f"media/{pid}.npy", "text": pd.NA})
        labels.append({"patient_id": pid, "study_id": f"{pid}-toy", "task": "toy_flag",
                       "value": float(x[0] > 0), "measured_at": t0,
                       "source_modality": "toy_vector"})
    return write_manifest(root, pd.DataFrame(samples), pd.DataFrame(labels),
                          pd.DataFrame(patients))


def test_a_toy_kind_runs_through_embed_and_a_task(toy, tmp_path):
    assert "toy_vector" in DIAGNOSTIC and "toy_vector" in ENCODERS  # every stage sees it
    root = _cohort(tmp_path / "m")
    torch.manual_seed(0)
    cfg = ModelConfig.tiny()
    model = CLERC(cfg)
    assert isinstance(model.encoders["toy_vector"], ToyEncoder)
    ckpt = save_checkpoint(tmp_path / "ckpt.pt", {"model": model.state_dict()},
                           make_header({"model": cfg.to_dict()}, "m", 0, best_epoch=0))
    emb, _ = embed_cached(ckpt, root, ["a toy prompt"], log=lambda _: None)
    assert emb is not None and emb.vectors.shape == (36, cfg.embed_dim)
    assert set(emb.samples["modality"]) == {"toy_vector"}
    flag = TaskDef("toy_flag", "toy_flag", "binary", modality="toy_vector",
                   label_modality="toy_vector", table5=False)
    ctx = Context(emb, read_manifest(root), (flag,), n_resamples=20)
    out = load_tasks().get("linear_probe").run(ctx)
    recs = {r.metric: r for r in out}  # AUROC, AUPRC and (probabilities) Brier and ECE
    assert set(recs) == {"auroc", "auprc", "brier", "ece"}
    rec = recs["auroc"]
    assert rec.modality == "toy_vector" and rec.metric == "auroc" and rec.n == 9
    assert rec.value is not None and rec.value > 0.9  # the planted sign is linear


def test_the_toy_is_gone_after_the_test():
    assert "toy_vector" not in MODALITY_NAMES and "vector" not in kinds.KINDS
