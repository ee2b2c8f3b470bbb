"""A realistic ``results.json`` (and ``predictions.parquet``) for report and gate tests.

``make_results(seed)`` returns the dict that ``clerc benchmark`` writes (see CONTRACTS.md,
"Results"): all 56 retrieval cells x 5 metrics (Table 3), the standard-modality tasks in
zero-shot, linear-probe and supervised settings with paired differences (Table 4), and the
4 x 11 cross-modal probe matrix plus MAE rows for age and LVEF (Table 5). A few cells
are null with a note.
``make_predictions(seed)`` returns matching per-cell predictions (no patient ids).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from clerc.modalities import DIAGNOSTIC, MODALITY_NAMES, get_modality

RETRIEVAL_METRICS = ("median_percentile", "mean_percentile", "recall@1", "recall@5", "recall@10")
#: (modality, task, metrics) rows of Table 4, in the paper's order.
TABLE4_ROWS = (
    ("echo_video", "lvef", ("r2", "mae")),
    ("echo_video", "pacemaker", ("auroc",)),
    ("ecg_waveform", "rbbb", ("auroc",)),
    ("ecg_waveform", "lbbb", ("auroc",)),
    ("ecg_waveform", "pacemaker", ("auroc",)),
    ("angio_video", "lad_occlusion", ("auroc",)),
    ("angio_video", "rca_occlusion", ("auroc",)),
    ("angio_video", "lcx_occlusion", ("auroc",)),
    ("cxr_image", "consolidation", ("auroc",)),
    ("cxr_image", "edema", ("auroc",)),
)
#: Table 5 tasks -> (label source modality or None for patient-table labels, metric);
#: regression tasks get an ``mae`` row too, as the benchmark writes.
TABLE5_TASKS = {
    "age": (None, "r2"),
    "sex": (None, "auroc"),
    "lvef": ("echo_video", "r2"),
    "pacemaker": ("ecg_waveform", "auroc"),
    "rbbb": ("ecg_waveform", "auroc"),
    "lbbb": ("ecg_waveform", "auroc"),
    "lad_occlusion": ("angio_video", "auroc"),
    "rca_occlusion": ("angio_video", "auroc"),
    "lcx_occlusion": ("angio_video", "auroc"),
    "consolidation": ("cxr_image", "auroc"),
    "edema": ("cxr_image", "auroc"),
}
SPLITS = ("total", "train", "val", "test")
RACES = ("Non-Hispanic White", "Black", "Hispanic", "Asian", "Other", "Unknown")


def record(table: str, task: str, setting: str, metric: str, value: float | None, *,
           query: str | None = None, gallery: str | None = None, modality: str | None = None,
           label: str | None = None, half_width: float = 0.0, n: int = 120,
           n_undefined: int = 0, note: str | None = None) -> dict:
    """One results record with every key of the contract."""
    ci = (None, None) if value is None else (value - half_width, value + half_width)
    return {
        "table": table, "task": task, "setting": setting, "query_modality": query,
        "gallery_modality": gallery, "modality": modality, "label_modality": label,
        "metric": metric, "value": value, "ci_low": ci[0], "ci_high": ci[1],
        "n": n, "n_undefined": n_undefined, "note": note,
    }


def cell_key(rec: dict) -> str:
    """The ``predictions.parquet`` cell key of a record: key fields joined by ``|``."""
    fields = ("table", "task", "setting", "query_modality", "gallery_modality", "modality",
              "label_modality")
    return "|".join(rec[f] or "" for f in fields)


def _retrieval_records(rng: np.random.Generator) -> list[dict]:
    out = []
    for q in MODALITY_NAMES:
        for g in MODALITY_NAMES:
            if q == g:
                continue
            paired = get_modality(q).test == get_modality(g).test
            both_text = get_modality(q).is_text and get_modality(g).is_text
            median = float(rng.uniform(1.5, 4.5) if paired else rng.uniform(5, 30 if both_text
                                                                             else 15))
            n = int(rng.integers(60, 200))
            for metric in RETRIEVAL_METRICS:
                if metric == "median_percentile":
                    value, hw = median, 0.15 * median
                elif metric == "mean_percentile":
                    value, hw = median * 1.6, 0.1 * median
                else:
                    k = int(metric.split("@")[1])
                    value, hw = min(1.0, (k + 1) / (median + 2)) * 0.6, 0.04
                note = None
                if (q, g, metric) == ("angio_text", "cxr_text", "recall@1"):
                    value, note = None, "recall@1 undefined: fewer than 10 queries"
                out.append(record("table3", "retrieval", "retrieval", metric, value, query=q,
                                  gallery=g, half_width=hw, n=n, note=note))
    return out


def _table4_records(rng: np.random.Generator) -> list[dict]:
    out = []
    for modality, task, metrics in TABLE4_ROWS:
        has_supervised = modality != "angio_video"
        for metric in metrics:
            base = {"r2": 0.7, "mae": 5.0, "auroc": 0.85}[metric]
            values = {}
            for setting, shift in (("zero_shot", -0.05), ("linear_probe", 0.0),
                                   ("supervised", 0.02)):
                if setting == "supervised" and not has_supervised:
                    continue
                bump = -shift * 40 if metric == "mae" else shift
                value = float(base + bump + rng.normal(0, 0.02))
                note = None
                if (modality, task, setting) == ("cxr_image", "edema", "supervised"):
                    value, note = None, "no supervised baseline checkpoint for edema"
                values[setting] = value
                hw = 0.6 if metric == "mae" else 0.03
                out.append(record("table4", task, setting, metric, value, modality=modality,
                                  label=modality, half_width=hw, note=note,
                                  n_undefined=3 if task == "lcx_occlusion" else 0))
            clerc, sup = values.get("linear_probe"), values.get("supervised", "absent")
            if sup == "absent":
                continue
            diff = None if sup is None else clerc - sup
            note = None if sup is not None else "no supervised value to compare"
            hw = 0.5 if metric == "mae" else 0.025
            out.append(record("table4", task, "difference", metric, diff, modality=modality,
                              label=modality, half_width=hw, note=note))
            p = None if diff is None else float(min(1.0, rng.uniform(0.0002, 0.3) * 3))
            p_rec = record("table4", task, "difference", f"{metric}_p_holm", p,
                           modality=modality, label=modality, note=note)
            p_rec["ci_low"] = p_rec["ci_high"] = None
            out.append(p_rec)
    return out


def _table5_records(rng: np.random.Generator) -> list[dict]:
    out = []
    for task, (label, metric) in TABLE5_TASKS.items():
        for modality in DIAGNOSTIC:
            own = label == modality
            value = float(rng.uniform(0.75, 0.95) if own else rng.uniform(0.55, 0.8))
            if metric == "r2":
                value -= 0.2
            note = None
            if (task, modality) == ("lvef", "angio_video"):
                value, note = None, "no test patients with both angio_video and an LVEF label"
            n = int(rng.integers(40, 150))
            out.append(record("table5", task, "linear_probe", metric, value, modality=modality,
                              label=label, half_width=0.04, n=n, note=note))
            if metric == "r2":
                mae = None if value is None else float(rng.uniform(5, 12))
                out.append(record("table5", task, "linear_probe", "mae", mae, modality=modality,
                                  label=label, half_width=1.0, n=n, note=note))
    return out


def _count(rng: np.random.Generator, total: int) -> dict[str, int]:
    train = int(total * 0.8)
    val = int(total * 0.1)
    return {"total": total, "train": train, "val": val, "test": total - train - val}


def _cohort(rng: np.random.Generator) -> dict:
    patients = {m: int(rng.integers(150, 400)) for m in MODALITY_NAMES}
    pairs = {}
    for i, a in enumerate(MODALITY_NAMES):
        for b in MODALITY_NAMES[:i]:
            pairs[f"{b}|{a}"] = int(min(patients[a], patients[b]) * rng.uniform(0.3, 0.9))
    total = 500
    split_n = _count(rng, total)

    def pct_cells(frac: float) -> dict:
        return {s: {"n": round(split_n[s] * frac), "pct": round(100 * frac, 1)} for s in SPLITS}

    fracs = rng.dirichlet(np.ones(len(RACES)))
    return {
        "table1": {"patients": patients, "pairs": pairs},
        "table2": {
            "splits": list(SPLITS),
            "rows": {
                "patients": split_n,
                "age": {s: {"mean": round(float(rng.normal(64, 1)), 1),
                            "std": round(float(rng.normal(18, 0.5)), 1)} for s in SPLITS},
                "female": pct_cells(0.503),
                "race": {r: pct_cells(float(f)) for r, f in zip(RACES, fracs, strict=True)},
                "patients_with_modality": {m: _count(rng, patients[m]) for m in DIAGNOSTIC},
                "studies": {m: _count(rng, patients[m] * 2) for m in DIAGNOSTIC},
                "samples": {m: _count(rng, patients[m] * 5) for m in DIAGNOSTIC},
            },
        },
    }


def make_results(seed: int = 0) -> dict:
    """A complete results document, deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    return {
        "provenance": {
            "code_revision": "0123abc", "config_hash": "cfg-9f8e", "manifest_hash": "man-7a6b",
            "seed": seed, "checkpoint": "runs/demo/checkpoint.pt",
            "versions": {"python": "3.11", "torch": "2.14.1", "numpy": "2.1"},
        },
        "cohort": _cohort(rng),
        "records": _retrieval_records(rng) + _table4_records(rng) + _table5_records(rng),
    }


def make_predictions(results: dict, seed: int = 0, n: int = 80) -> pd.DataFrame:
    """Per-cell predictions for the binary and regression cells of Table 4 and for retrieval."""
    rng = np.random.default_rng(seed + 1)
    frames = []
    for rec in results["records"]:
        if rec["value"] is None or rec["setting"] == "difference":
            continue
        if rec["table"] == "table4" and rec["metric"] == "auroc":
            y = rng.integers(0, 2, n).astype(float)
            score = y * 1.2 + rng.normal(0, 1, n)
            kind = "binary"
        elif rec["table"] == "table4" and rec["metric"] == "r2":
            y = rng.uniform(20, 75, n)
            score = y + rng.normal(0, 6, n)
            kind = "regression"
        elif rec["table"] == "table3" and rec["metric"] == "median_percentile":
            y = np.ones(n)
            score = rng.exponential(rec["value"], n).clip(0, 100)
            kind = "retrieval"
        else:
            continue
        frames.append(pd.DataFrame({"cell": cell_key(rec), "kind": kind, "y_true": y,
                                    "y_score": score}))
    return pd.concat(frames, ignore_index=True)


def write_fixture(directory: Path, seed: int = 0, predictions: bool = True) -> Path:
    """Write ``results.json`` (and ``predictions.parquet``) into ``directory``; return the json."""
    directory.mkdir(parents=True, exist_ok=True)
    results = make_results(seed)
    path = directory / "results.json"
    path.write_text(json.dumps(results, indent=1))
    if predictions:
        make_predictions(results, seed).to_parquet(directory / "predictions.parquet")
    return path
