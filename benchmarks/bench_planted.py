"""Wall time of the scoring path (`clerc benchmark --embeddings`) on a planted cohort.

    python -m benchmarks.bench_planted --patients 40000 [--tasks ...] [--bootstrap 1000]

Writes a planted cohort (`tests.planted_cohort`: every patient has all eight modalities,
labels planted on latent axes, embeddings = latent + noise) and its embeddings file under
``--work`` (reused when present), then runs `clerc benchmark --embeddings` in a fresh
process and prints its total wall time and its per-stage times (from results.json).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import ROOT


def planted_tables(latent: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """`tests.planted_cohort`'s tables built column-wise (patients 1 hour apart, so 40,000
    of them fit in pandas' time range), for any number of patients."""
    from clerc.modalities import MODALITY_NAMES, get_modality
    from tests.planted_cohort import BINARY_AXES, T0, TEST_DAY

    n = len(latent)
    i = np.arange(n)
    pid = np.char.add("p", i.astype(str)).astype(object)
    base_t = T0 + pd.to_timedelta(i, unit="h")
    split = np.where(i / n < 0.5, "train", np.where(i / n < 0.7, "val", "test"))
    patients = pd.DataFrame({"patient_id": pid, "sex": np.where(latent[:, 2] > 0, "F", "M"),
                             "anchor_age": 60 + 40 * latent[:, 1], "anchor_time": base_t,
                             "race": np.array(["White", "Black", "Asian"])[i % 3]})
    samples, labels = [], []
    for m in MODALITY_NAMES:
        mod = get_modality(m)
        t = base_t + pd.Timedelta(days=TEST_DAY[mod.test])
        study = pid + f"-{mod.test}"
        for k in range(1 if mod.is_text else 2):
            sid = pid + f"-{m}-{k}"
            samples.append(pd.DataFrame({
                "patient_id": pid, "study_id": study, "sample_id": sid, "modality": m,
                "acquired_at": t + pd.Timedelta(minutes=k),
                "path": pd.NA if mod.is_text else "media/" + sid + ".npy",
                "text": ("report " + pid) if mod.is_text else pd.NA, "split": split}))
    t_echo = base_t + pd.Timedelta(days=TEST_DAY["echo"])
    labels.append(pd.DataFrame({"patient_id": pid, "study_id": pid + "-echo", "task": "lvef",
                                "value": np.clip(50 + 60 * latent[:, 0], 20, 80),
                                "measured_at": t_echo, "source_modality": "echo_video"}))
    for (task, src), axis in BINARY_AXES.items():
        test = get_modality(src).test
        labels.append(pd.DataFrame({
            "patient_id": pid, "study_id": pid + f"-{test}", "task": task,
            "value": (latent[:, axis] > 0).astype(float),
            "measured_at": base_t + pd.Timedelta(days=TEST_DAY[test]), "source_modality": src}))
    return (pd.concat(samples, ignore_index=True), pd.concat(labels, ignore_index=True),
            patients)


def make_cohort(work: Path, patients: int, noise: float) -> tuple[Path, Path]:
    """The manifest directory and embeddings file of a planted cohort (cached in ``work``)."""
    from clerc.data.manifest import read_manifest, write_manifest
    from clerc.evaluate.embeddings import Embeddings, normalize_rows
    from clerc.evaluate.registry import all_prompts, load_definitions
    from tests.planted_cohort import DIM, prompt_vectors

    data, emb_path = work / "data", work / "embeddings.npz"
    if emb_path.exists():
        return data, emb_path
    rng = np.random.default_rng(0)
    latent = normalize_rows(rng.normal(size=(patients, DIM)))
    write_manifest(data, *planted_tables(latent))
    manifest = read_manifest(data)
    idx = manifest.samples["patient_id"].str.slice(1).astype(int).to_numpy()
    vec = latent[idx] + noise * rng.normal(size=(len(idx), DIM))
    texts = all_prompts(load_definitions())
    Embeddings(samples=manifest.samples, vectors=normalize_rows(vec), prompt_texts=texts,
               prompt_vectors=prompt_vectors(texts), logit_scale=100.0,
               header={"planted": True}).save(emb_path)
    return data, emb_path


def run_benchmark(data: Path, emb: Path, out: Path, extra: list[str]) -> tuple[float, dict]:
    """Seconds of one `clerc benchmark --embeddings` process and its stage times."""
    cmd = [sys.executable, "-m", "clerc.cli", "benchmark", "--embeddings", str(emb),
           "--data", str(data), "--out", str(out), *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    prov = json.loads((out / "results.json").read_text())["provenance"]
    return seconds, prov.get("stage_seconds", {})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--patients", type=int, default=40_000)
    p.add_argument("--noise", type=float, default=0.6)
    p.add_argument("--work", type=Path, default=None, help="cohort cache (default /tmp/...)")
    p.add_argument("--out", type=Path, default=None)
    args, extra = p.parse_known_args(argv)
    work = args.work or Path(f"/tmp/clerc-planted-{args.patients}")
    data, emb = make_cohort(work, args.patients, args.noise)
    seconds, stages = run_benchmark(data, emb, args.out or work / "bench", extra)
    print(json.dumps({"patients": args.patients, "seconds": round(seconds, 1),
                      "stages": stages}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
