"""A small cohort with planted structure, for scoring tests that need no model.

Each patient has a latent unit vector ``u``; every sample's embedding is ``u`` plus
``noise`` (``noise=None`` gives independent random embeddings). Labels are planted on
axes of ``u``: LVEF = 50 + 60 u[0] clipped to [20, 80], age from u[1], sex F when
u[2] > 0, binary labels ``u[k] > 0`` on the axes in ``BINARY_AXES``. Binary prompts
embed as the unit vector of their axis, so zero-shot AUROC is 1 on noiseless embeddings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from clerc.data.manifest import read_manifest, write_manifest
from clerc.evaluate.embeddings import Embeddings, normalize_rows
from clerc.evaluate.registry import all_prompts, load_definitions
from clerc.modalities import MODALITY_NAMES, get_modality

DIM = 16
#: (label task, source modality) -> latent axis.
BINARY_AXES: dict[tuple[str, str], int] = {
    ("pacemaker", "echo_video"): 3, ("pacemaker", "ecg_waveform"): 3,
    ("rbbb", "ecg_waveform"): 4, ("lbbb", "ecg_waveform"): 5,
    ("lad_occlusion", "angio_video"): 6, ("rca_occlusion", "angio_video"): 7,
    ("lcx_occlusion", "angio_video"): 8, ("consolidation", "cxr_image"): 9,
    ("edema", "cxr_image"): 10,
}
TEST_DAY = {"echo": 0, "ecg": 1, "angio": 2, "cxr": 3}
T0 = pd.Timestamp("2020-01-01")


def _split(i: int, n: int) -> str:
    f = i / n
    return "train" if f < 0.5 else ("val" if f < 0.7 else "test")


def _tables(latent: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    n = len(latent)
    samples, labels, patients = [], [], []
    for i, u in enumerate(latent):
        pid, base_t = f"p{i:03d}", T0 + pd.Timedelta(days=10 * i)
        patients.append({"patient_id": pid, "sex": "F" if u[2] > 0 else "M",
                         "anchor_age": 60 + 40 * u[1], "anchor_time": base_t,
                         "race": ["White", "Black", "Asian"][i % 3]})
        for m in MODALITY_NAMES:
            mod = get_modality(m)
            t = base_t + pd.Timedelta(days=TEST_DAY[mod.test])
            study = f"{pid}-{mod.test}"
            for k in range(1 if mod.is_text else 2):
                samples.append({"patient_id": pid, "study_id": study,
                                "sample_id": f"{pid}-{m}-{k}", "modality": m,
                                "acquired_at": t + pd.Timedelta(minutes=k),
                                "path": pd.NA if mod.is_text else f"media/{pid}-{m}-{k}.npy",
                                "text": f"report {pid}" if mod.is_text else pd.NA,
                                "split": _split(i, n)})
        t_echo = base_t + pd.Timedelta(days=TEST_DAY["echo"])
        labels.append({"patient_id": pid, "study_id": f"{pid}-echo", "task": "lvef",
                       "value": float(np.clip(50 + 60 * u[0], 20, 80)), "measured_at": t_echo,
                       "source_modality": "echo_video"})
        for (task, src), axis in BINARY_AXES.items():
            test = get_modality(src).test
            labels.append({"patient_id": pid, "study_id": f"{pid}-{test}", "task": task,
                           "value": float(u[axis] > 0),
                           "measured_at": base_t + pd.Timedelta(days=TEST_DAY[test]),
                           "source_modality": src})
    return pd.DataFrame(samples), pd.DataFrame(labels), pd.DataFrame(patients)


def prompt_vectors(texts: list[str], seed: int = 1) -> np.ndarray:
    """Binary prompts on their label's axis; other prompts (the LVEF sweep) random."""
    rng = np.random.default_rng(seed)
    axis = {}
    for d in load_definitions():
        if d.prompt and d.label_modality:
            axis[d.prompt] = BINARY_AXES[(d.label, d.label_modality)]
    out = rng.normal(size=(len(texts), DIM))
    for i, t in enumerate(texts):
        if t in axis:
            out[i] = np.eye(DIM)[axis[t]]
    return normalize_rows(out)


def planted(root: Path, n_patients: int = 60, noise: float | None = 0.0,
            seed: int = 0) -> tuple[Embeddings, np.ndarray]:
    """Write the manifest to ``root``; return its embeddings and the latent vectors."""
    rng = np.random.default_rng(seed)
    latent = normalize_rows(rng.normal(size=(n_patients, DIM)))
    s, lab, pat = _tables(latent)
    write_manifest(root, s, lab, pat)
    manifest = read_manifest(root)
    idx = manifest.samples["patient_id"].str.slice(1).astype(int).to_numpy()
    if noise is None:
        vec = rng.normal(size=(len(idx), DIM))
    else:
        vec = latent[idx] + noise * rng.normal(size=(len(idx), DIM))
    texts = all_prompts(load_definitions())
    emb = Embeddings(samples=manifest.samples, vectors=normalize_rows(vec), prompt_texts=texts,
                     prompt_vectors=prompt_vectors(texts), logit_scale=100.0,
                     header={"planted": True})
    return emb, latent
