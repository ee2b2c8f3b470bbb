"""The committed scoring fixture: a small planted manifest, its embeddings and supervised
predictions, and the results ``clerc benchmark --embeddings`` gives on them.

Scoring is deterministic, so this is gated tightly (``SCORING_TOLERANCE``) on any machine.
To make it so, every embedding coordinate (and every prompt's) is a multiple of 2**-11,
so the mean of a two-sample study (retrieval scores studies; the planted cohort's studies
hold one or two samples) is a multiple of 2**-12: products of two such numbers need 24
bits and their partial sums stay below 1 in magnitude (Cauchy-Schwarz), so float32
cosines are exact whatever the BLAS, thread count or summation order, and retrieval ranks
and ties cannot differ between machines.

Regenerate knowingly (after an intended change to scoring) with
``python -m tests.scoring_fixture --update``; the files land in ``tests/data/scoring/``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "data" / "scoring"
GRID = 2.0 ** -11
#: Absolute limit for every record of the scoring gate (float64 reductions in another
#: order move values by ~1e-12; iterative probe fits stop within their own tolerance).
SCORING_TOLERANCE = 1e-6
#: Per-modality noise of the planted embeddings: retrieval and probes neither perfect
#: nor at chance, so a regression moves them.
NOISE = {"echo_video": 0.35, "echo_text": 0.2, "ecg_waveform": 0.3, "ecg_text": 0.2,
         "angio_video": 0.4, "angio_text": 0.25, "cxr_image": 0.35, "cxr_text": 0.2}
BENCH_ARGS = ["--bootstrap", "200", "--seed", "0", "--no-report"]


def quantize(x: np.ndarray) -> np.ndarray:
    """Unit rows rounded to the 2**-11 grid (exact float32 dot products, also between
    the means of two such rows)."""
    x = np.asarray(x, dtype=np.float64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return (np.round(x / GRID) * GRID).astype(np.float32)


def build(root: Path, n_patients: int = 150, seed: int = 7) -> None:
    """Write ``manifest/``, ``embeddings.npz`` and ``supervised.parquet`` under ``root``."""
    from clerc.evaluate.embeddings import Embeddings
    from clerc.evaluate.registry import load_definitions
    from tests.planted_cohort import planted

    emb, latent = planted(root / "manifest", n_patients, noise=0.0, seed=seed)
    rng = np.random.default_rng(seed + 1)
    s = emb.samples
    pid = s["patient_id"].str.slice(1).astype(int).to_numpy()
    noise = s["modality"].map(NOISE).to_numpy(dtype=float)[:, None]
    vectors = latent[pid] + noise * rng.normal(size=(len(s), latent.shape[1]))
    emb = Embeddings(samples=s, vectors=quantize(vectors), prompt_texts=emb.prompt_texts,
                     prompt_vectors=quantize(emb.prompt_vectors), logit_scale=20.0,
                     header={"planted": True, "fixture": "tests/scoring_fixture.py"})
    emb.save(root / "embeddings.npz")
    labels = pd.read_parquet(root / "manifest" / "labels.parquet")
    rows = []
    for d in load_definitions():
        if d.modality is None or d.label_modality is None:
            continue
        lab = labels[(labels["task"] == d.label) & (labels["source_modality"] ==
                                                    d.label_modality)]
        value = dict(zip(lab["patient_id"], lab["value"], strict=True))
        for r in s[s["modality"] == d.modality].itertuples():
            if r.patient_id in value:
                score = value[r.patient_id] + rng.normal(scale=0.6 if d.kind == "binary"
                                                         else 12.0)
                rows.append({"sample_id": r.sample_id, "task": d.name, "score": float(score)})
    pd.DataFrame(rows).to_parquet(root / "supervised.parquet", index=False)


def benchmark(fixture: Path, out: Path, *, threads: int = 1,
              extra_env: dict[str, str] | None = None) -> Path:
    """Score the fixture with ``clerc benchmark --embeddings`` in a fresh interpreter."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": str(threads), "MPLBACKEND": "Agg", **(extra_env or {})}
    argv = [sys.executable, "-m", "clerc.cli", "benchmark", "--embeddings",
            str(fixture / "embeddings.npz"), "--data", str(fixture / "manifest"),
            "--supervised", str(fixture / "supervised.parquet"), "--out", str(out), *BENCH_ARGS]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout[-3000:] + proc.stderr[-3000:])
    return out / "results.json"


def update() -> None:
    """Rebuild the fixture and its expected results in ``tests/data/scoring/``."""
    import shutil

    if FIXTURE.exists():
        shutil.rmtree(FIXTURE)
    FIXTURE.mkdir(parents=True)
    build(FIXTURE)
    with tempfile.TemporaryDirectory() as d:
        results = benchmark(FIXTURE, Path(d) / "bench")
        doc = json.loads(results.read_text())
    doc["provenance"] = {k: doc["provenance"].get(k) for k in ("seed", "bootstrap", "tasks")}
    (FIXTURE / "results.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {FIXTURE} ({len(doc['records'])} records)")


if __name__ == "__main__":
    if "--update" not in sys.argv:
        sys.exit("usage: python -m tests.scoring_fixture --update")
    update()
