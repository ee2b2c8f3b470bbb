"""Render every patient's studies to files and write the manifest and the ground truth.

Each patient is rendered from its own seed sequence ``(seed, index, ...)``, so its files
are byte-identical whatever the cohort size and however the work is split over processes.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from clerc.synthetic import angio, cxr, ecg, echo
from clerc.synthetic.config import SynthConfig, availability_law
from clerc.synthetic.files import write_avi, write_ecg, write_png
from clerc.synthetic.latent import (
    VESSELS,
    YEAR_DAYS,
    Patient,
    StudyState,
    draw_patient,
    study_states,
)
from clerc.synthetic.reports import write_report
from clerc.synthetic.splits import repair_splits, split_of

#: task -> source modality, per test (see docs/CONTRACTS.md).
LABELS: dict[str, tuple[tuple[str, str], ...]] = {
    "echo": (("lvef", "lvef"), ("pacemaker", "pacemaker")),
    "ecg": (("rbbb", "rbbb_seen"), ("lbbb", "lbbb_seen"), ("pacemaker", "paced")),
    "angio": tuple((f"{v}_occlusion", f"{v}_occlusion") for v in VESSELS),
    "cxr": (("consolidation", "consolidation"), ("edema", "edema")),
}
SOURCE = {"echo": "echo_video", "ecg": "ecg_waveform", "angio": "angio_video", "cxr": "cxr_image"}
TEXT = {"echo": "echo_text", "ecg": "ecg_text", "angio": "angio_text", "cxr": "cxr_text"}


@dataclass
class PatientRows:
    """Table rows produced by one patient."""

    patient: dict
    samples: list[dict] = field(default_factory=list)
    labels: list[dict] = field(default_factory=list)
    truth: list[dict] = field(default_factory=list)


def _time(p: Patient, years: float, minutes: int = 0) -> pd.Timestamp:
    delta = np.timedelta64(int(round(years * YEAR_DAYS * 86400)) + 60 * minutes, "s")
    return pd.Timestamp(p.anchor_time + delta)


def _render(
    s: StudyState,
    test: str,
    k: int,
    rng: np.random.Generator,
    cfg: SynthConfig,
    out: Path,
    rel: str,
    anatomy: dict,
) -> None:
    """Render and write sample ``k`` of a study to ``out / rel``."""
    if test == "echo":
        write_avi(out / rel, echo.render_echo(s, rng, cfg.echo_frames), echo.FPS)
    elif test == "angio":
        system = "right" if k == 1 else "left"
        frames = int(rng.integers(cfg.angio_frames[0], cfg.angio_frames[1] + 1))
        occ = {v: anatomy["arcs"][v] for v in VESSELS if s.occluded(v)}
        write_avi(
            out / rel, angio.render_angio(s, rng, anatomy["tree"], system, frames, occ), angio.FPS
        )
    elif test == "ecg":
        write_ecg(out / rel, ecg.render_ecg(s, rng), ecg.FS)
    else:
        write_png(out / rel, cxr.render_cxr(s, rng))


def _anatomy(p: Patient, seed: int) -> dict:
    """Coronary tree and occlusion sites: fixed for a patient across studies."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), p.index, 3]))
    tree = angio.vessel_tree(rng, p.anchor_age)
    return {"tree": tree, "arcs": {v.name: angio.occlusion_arc(v, rng) for v in tree}}


def patient_rows(
    index: int, seed: int, cfg: SynthConfig, law: np.ndarray, out: Path
) -> PatientRows:
    """Render one patient's files and return its table rows."""
    p = draw_patient(index, seed, cfg, law)
    pid, split = p.patient_id, split_of(index, seed, cfg.split_fractions)
    rows = PatientRows(
        {
            "patient_id": pid,
            "sex": p.sex,
            "anchor_age": p.anchor_age,
            "anchor_time": pd.Timestamp(p.anchor_time),
            "race": None if p.race == "Unknown" else p.race,
        }
    )
    anatomy = _anatomy(p, seed) if "angio" in p.tests else {}
    prev: dict[str, StudyState] = {}
    for j, s in enumerate(study_states(p, seed, cfg)):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), index, 2, j]))
        _study_rows(rows, p, s, rng, cfg, out, anatomy, prev.get(s.test), split)
        prev[s.test] = s
    return rows


def _study_rows(
    rows: PatientRows,
    p: Patient,
    s: StudyState,
    rng: np.random.Generator,
    cfg: SynthConfig,
    out: Path,
    anatomy: dict,
    prev: StudyState | None,
    split: str,
) -> None:
    """Render one study's samples and append its samples, report, labels and truth rows."""
    test, when = s.test, _time(p, s.years)
    lo, hi = cfg.samples_range[test]
    n = int(rng.integers(lo, hi + 1))
    base = {"patient_id": p.patient_id, "study_id": s.study_id, "split": split}
    ext = {"echo": "avi", "angio": "avi", "ecg": "hea", "cxr": "png"}[test]
    for k in range(n):
        rel = f"{test}/{p.patient_id}/{s.study_id}-{k}.{ext}"
        _render(s, test, k, rng, cfg, out, rel, anatomy)
        rows.samples.append(
            {
                **base,
                "sample_id": f"{s.study_id}-{k}",
                "modality": SOURCE[test],
                "acquired_at": _time(p, s.years, k),
                "path": rel,
                "text": None,
            }
        )
    text, error = write_report(s, rng, cfg.report_error_rate, prev)
    rows.samples.append(
        {
            **base,
            "sample_id": f"{s.study_id}-report",
            "modality": TEXT[test],
            "acquired_at": _time(p, s.years, n),
            "path": None,
            "text": text,
        }
    )
    seen = {"rbbb_seen": s.rbbb and not s.paced, "lbbb_seen": s.lbbb and not s.paced}
    for task, attr in LABELS[test]:
        value = seen[attr] if attr in seen else getattr(s, attr)
        rows.labels.append(
            {
                "patient_id": p.patient_id,
                "study_id": s.study_id,
                "task": task,
                "value": float(value),
                "measured_at": when,
                "source_modality": SOURCE[test],
            }
        )
    rows.truth.append(
        {
            **asdict(s),
            "acquired_at": when,
            "split": split,
            "race": p.race,
            "n_samples": n,
            "report_error": error,
        }
    )


def synthesize(
    out: str | Path,
    patients: int,
    seed: int = 0,
    config: SynthConfig | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Write a synthetic cohort of ``patients`` patients into ``out``; return ``out``."""
    from clerc.data.manifest import write_manifest

    if patients < 1:
        raise ValueError(f"patients = {patients}: expected at least 1")
    cfg = config or SynthConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    law = availability_law(cfg)
    job = partial(patient_rows, seed=seed, cfg=cfg, law=law, out=out)
    results = _run(job, patients, workers or min(os.cpu_count() or 1, 8), progress)
    tables = {
        name: pd.DataFrame([r for res in results for r in getattr(res, name)])
        for name in ("samples", "labels", "truth")
    }
    swaps = repair_splits(tables["samples"], tables["labels"])
    final = tables["samples"].drop_duplicates("patient_id").set_index("patient_id")["split"]
    tables["truth"]["split"] = tables["truth"]["patient_id"].map(final)
    write_manifest(
        out, tables["samples"], tables["labels"], pd.DataFrame([r.patient for r in results])
    )
    tables["truth"].to_parquet(out / "ground_truth.parquet", index=False)
    meta = {
        "generator": "clerc.synthetic",
        "patients": patients,
        "seed": seed,
        "split_swaps": swaps,
        "config": {k: (str(v) if isinstance(v, dict) else v) for k, v in asdict(cfg).items()},
    }
    (out / "synth.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return out


def _run(job: partial, patients: int, workers: int, progress: bool) -> list[PatientRows]:
    """Map ``job`` over patient indices (in order), in processes, with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    columns = (
        *Progress.get_default_columns()[:1],
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("synthesizing patients", total=patients)
        if workers <= 1:
            out = []
            for i in range(patients):
                out.append(job(i))
                bar.advance(task)
            return out
        import multiprocessing as mp

        with mp.get_context("fork").Pool(workers) as pool:
            out = []
            for res in pool.imap(job, range(patients), chunksize=4):
                out.append(res)
                bar.advance(task)
            return out
