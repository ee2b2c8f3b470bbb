"""``clerc compare``: runs side by side, paired differences by patient, rankings, privacy."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clerc.cli import main
from clerc.compare.paired import paired_differences
from clerc.compare.ranking import rank_runs
from clerc.compare.runs import load_run
from clerc.data.manifest import read_manifest, write_manifest
from clerc.evaluate.bootstrap import paired_bootstrap
from clerc.evaluate.embeddings import Embeddings
from tests.planted_cohort import planted

ID_PREFIX = "MRN77"


def _cohort(root: Path, n: int, seed: int) -> Embeddings:
    """A planted cohort whose patient, study and sample ids all start with ``MRN77``."""
    emb, _ = planted(root, n, noise=0.3, seed=seed)
    m = read_manifest(root)

    def rename(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        for c in ("patient_id", "study_id", "sample_id"):
            if c in df.columns:
                df[c] = df[c].astype("string").str.replace(r"^p", ID_PREFIX, regex=True)
        return df

    write_manifest(root, rename(m.samples), rename(m.labels), rename(m.patients))
    return Embeddings(rename(emb.samples), emb.vectors, emb.prompt_texts, emb.prompt_vectors,
                      emb.logit_scale, {})


def _noisier(emb: Embeddings, scale: float, seed: int) -> Embeddings:
    v = emb.vectors + np.random.default_rng(seed).normal(0, scale, emb.vectors.shape)
    v = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    return Embeddings(emb.samples, v, emb.prompt_texts, emb.prompt_vectors, emb.logit_scale, {})


def _bench(emb: Embeddings, data: Path, out: Path) -> None:
    emb.save(out.with_suffix(".npz"))
    assert main(["benchmark", "--embeddings", str(out.with_suffix(".npz")), "--data", str(data),
                 "--out", str(out), "--bootstrap", "20", "--no-report"]) == 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("compare")
    emb = _cohort(root / "data", 40, seed=0)
    _bench(emb, root / "data", root / "a")
    _bench(_noisier(emb, 0.4, 1), root / "data", root / "b")
    other = _cohort(root / "other", 36, seed=5)
    _bench(other, root / "other", root / "c")
    return root


def test_paired_difference_equals_value_difference_and_pairs_by_patient(runs):
    a, b = load_run(runs / "a", "a"), load_run(runs / "b", "b")
    keys = sorted(set(a.values()) & set(b.values()))
    diffs = paired_differences(b, a, keys, n_resamples=50)
    paired = {k: p for k, p in diffs.items() if p.ci_low is not None}
    tables = {k[0] for k in paired}
    assert tables == {"table3", "table4", "table5"}
    metrics = {k[-1] for k in paired}
    assert {"median_percentile", "recall@1", "auroc", "r2", "mae"} <= metrics
    for key, p in diffs.items():
        va, vb = a.values()[key]["value"], b.values()[key]["value"]
        if va is None or vb is None:
            assert p.value is None
            continue
        assert p.value == pytest.approx(vb - va, abs=1e-9), key
        if p.ci_low is not None:
            assert p.ci_low <= p.ci_high and p.n == a.values()[key]["n"]
    # rows are matched by pseudonym, not position: shuffling one run's rows changes nothing
    shuffled = b.predictions.sample(frac=1.0, random_state=3).reset_index(drop=True)
    b2 = type(b)(b.name, b.path, b.records, b.provenance, shuffled)
    again = paired_differences(b2, a, keys, n_resamples=50)
    assert {k: (p.value, p.ci_low, p.ci_high) for k, p in again.items()} == \
        {k: (p.value, p.ci_low, p.ci_high) for k, p in diffs.items()}


def test_paired_interval_is_the_paired_bootstrap_of_the_two_runs(runs):
    """One AUROC cell against a direct paired_bootstrap on ids from the manifest."""
    a, b = load_run(runs / "a", "a"), load_run(runs / "b", "b")
    key = next(k for k in a.values() if k[0] == "table4" and k[2] == "zero_shot"
               and k[5] == "ecg_waveform" and k[1] == "rbbb")
    cell = "|".join(v or "" for v in key[:7])
    pa = a.predictions[a.predictions["cell"] == cell].set_index("pair_unit").sort_index()
    pb = b.predictions[b.predictions["cell"] == cell].set_index("pair_unit").loc[pa.index]
    import zlib

    seed = (0 * 1_000_003 + zlib.crc32(f"{cell}|auroc".encode())) % 2**32
    ref = paired_bootstrap("auroc", pa["pair_patient"].to_numpy(), pa["y_true"].to_numpy(),
                           pb["y_score"].to_numpy(), pa["y_score"].to_numpy(),
                           n_resamples=200, seed=seed)
    got = paired_differences(b, a, [key], n_resamples=200)[key]
    assert (got.value, got.ci_low, got.ci_high) == pytest.approx(
        (ref.value, ref.ci_low, ref.ci_high))


def test_pages_side_by_side_paired_and_unpaired(runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", str(runs / "a"), str(runs / "b"), str(runs / "c"), "--names",
                 "CLERC", "Noisy", "Elsewhere", "--out", str(out), "--bootstrap", "50"]) == 0
    pages = {p.stem: p.read_text() for p in out.glob("*.html")}
    assert set(pages) == {"index", "table3", "table4", "table5"}
    index = pages["index"]
    assert "Noisy vs CLERC: paired." in index
    assert "Elsewhere vs CLERC: side by side only, no paired" in index
    assert "different manifests" in index
    for name in ("table3", "table4", "table5"):
        html = pages[name]
        assert "<svg" in html and "<script" not in html
        assert "Δ Noisy − CLERC" in html and "Δ Elsewhere − CLERC" in html
        assert re.search(r'<span class="ci">\([−\d.]+(–| to )[−\d.]+\)</span>', html)
        assert 'id="paper-toggle"' in html and "Ranking" in html
    assert '<td class="num paper">0.744</td>' in pages["table4"]  # the paper's echo LVEF
    assert "Mean rank" in index and index.count("<h3>") == 3


def test_no_patient_identifiers_in_pages_or_shipped_files(runs, tmp_path):
    out = tmp_path / "cmp"
    assert main(["compare", str(runs / "a"), str(runs / "b"), "--out", str(out),
                 "--bootstrap", "20"]) == 0
    shipped = [*out.iterdir(), runs / "a/results.json", runs / "a/predictions.parquet"]
    ids = set()
    for d in ("data", "other"):
        s = read_manifest(runs / d).samples
        ids |= set(s["patient_id"]) | set(s["study_id"].dropna()) | set(s["sample_id"])
    assert all(i.startswith(ID_PREFIX) for i in ids)
    for f in shipped:
        data = f.read_bytes()
        assert ID_PREFIX.encode() not in data, f
        assert b"report MRN" not in data, f


def test_reference_and_run_errors(runs, tmp_path, capsys):
    code = main(["compare", str(runs / "a"), str(runs / "b"), "--names", "x", "y",
                 "--reference", "yy", "--out", str(tmp_path / "o")])
    assert code == 2 and "did you mean 'y'" in capsys.readouterr().err
    assert main(["compare", str(runs / "a"), "--out", str(tmp_path / "o")]) == 2
    assert "at least two runs" in capsys.readouterr().err
    assert main(["compare", str(runs / "a"), str(tmp_path / "nope"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_ranking_follows_the_metric_direction():
    k_auc = ("table4", "rbbb", "linear_probe", None, None, "ecg_waveform", "ecg_waveform",
             "auroc")
    k_pct = ("table3", "retrieval", "retrieval", "echo_video", "ecg_waveform", None, None,
             "median_percentile")
    vals = [{k_auc: {"value": 0.9}, k_pct: {"value": 10.0}},
            {k_auc: {"value": 0.7}, k_pct: {"value": 2.0}}]
    t4 = rank_runs(["a", "b"], vals, [k_auc, k_pct], "table4")
    assert [s.name for s in t4] == ["a", "b"] and t4[0].mean_rank == 1 and t4[0].best == 1
    t3 = rank_runs(["a", "b"], vals, [k_auc, k_pct], "table3")
    assert [s.name for s in t3] == ["b", "a"] and t3[0].cells == 1
