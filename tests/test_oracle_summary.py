"""The synthetic cohort's oracle ceiling (Table 3) and the overview page's summary."""

from __future__ import annotations

import numpy as np
import pytest

from clerc.evaluate.tasks.oracle import VISIBLE, fit_predictor, oracle_ranks
from clerc.modalities import MODALITY_NAMES
from clerc.report.summary import MIN_RELIABLE_N, summary, warnings
from tests.fixtures_results import make_results


def _brute_ranks(pred: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Expected rank of gallery row i for query i: other rows strictly closer, plus half
    the other rows exactly as close."""
    out = []
    for i, p in enumerate(pred):
        d = ((gallery - p) ** 2).sum(axis=1)
        closer = int((d < d[i]).sum())
        tied = int((d == d[i]).sum()) - 1
        out.append(closer + tied / 2)
    return np.array(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("chunk", [1024, 7])
def test_oracle_ranks_equal_brute_force_euclidean_with_ties_halved(seed, chunk):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 3, size=(40, 3)).astype(float)  # many exact ties
    pred = g + rng.normal(scale=0.5, size=g.shape) * (seed > 0)
    got = oracle_ranks(pred, g, chunk=chunk)
    assert np.array_equal(got, _brute_ranks(pred, g))
    if seed == 0:  # a perfect prediction of a gallery full of ties: half of each tie group
        sizes = np.array([(g == row).all(axis=1).sum() for row in g])
        assert np.array_equal(got, (sizes - 1) / 2)


def test_fit_predictor_recovers_a_linear_map_and_floors_the_spread():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 3))
    y = np.column_stack([2 * x[:, 0] - x[:, 1], x[:, 2] + rng.normal(scale=0.5, size=500)])
    w, spread = fit_predictor(x, y)
    assert w[0, 0] == pytest.approx(2, abs=0.05) and w[1, 0] == pytest.approx(-1, abs=0.05)
    assert spread[0] == pytest.approx(0.05)  # exact column: floored
    assert spread[1] == pytest.approx(0.5, abs=0.05)


def test_every_modality_shows_some_latent_variable():
    assert set(VISIBLE) == set(MODALITY_NAMES)
    assert all(VISIBLE[m] for m in MODALITY_NAMES)


def test_oracle_task_scores_a_synthetic_cohort_and_skips_a_real_one(tmp_path):
    from clerc.data.manifest import read_manifest
    from clerc.evaluate.embeddings import Embeddings
    from clerc.evaluate.registry import Context
    from clerc.evaluate.tasks.oracle import oracle
    from clerc.synthetic.config import SynthConfig
    from clerc.synthetic.writer import synthesize
    from tests.planted_cohort import planted

    emb, _ = planted(tmp_path / "planted", 30)
    assert oracle(Context(emb, read_manifest(tmp_path / "planted"), n_resamples=0)) == []

    root = synthesize(tmp_path / "syn", 80, 0, SynthConfig.preset("demo"), workers=1,
                      progress=False)
    manifest = read_manifest(root)
    s = manifest.samples
    rng = np.random.default_rng(0)
    vec = rng.normal(size=(len(s), 8))
    emb = Embeddings(samples=s, vectors=vec / np.linalg.norm(vec, axis=1, keepdims=True),
                     prompt_texts=[], prompt_vectors=np.zeros((0, 8)), logit_scale=10.0)
    recs = oracle(Context(emb, manifest, n_resamples=50))
    assert len(recs) == 56 and {r.setting for r in recs} == {"oracle"}
    scored = [r for r in recs if r.value is not None]
    assert len(scored) >= 40
    own = {(r.query_modality, r.gallery_modality): r.value for r in scored}
    # a test and its own report share their variables exactly: the oracle finds the match
    assert own[("ecg_waveform", "ecg_text")] == 0.0
    _check_grades_follow_the_reports(manifest)


def _check_grades_follow_the_reports(manifest) -> None:
    """The oracle's graded variables are what the reports state: every X-ray report's
    heart sentence and every echo report's LV-size sentence names the grade the oracle
    gives its study."""
    import pandas as pd

    from clerc.evaluate.tasks.oracle import GRADED, VISIBLE

    assert "ctr_grade" in VISIBLE["cxr_text"] and "ctr" not in VISIBLE["cxr_text"]
    assert "lvedd_grade" in VISIBLE["echo_text"] and "lvedd_cm" not in VISIBLE["echo_text"]
    truth = pd.read_parquet(manifest.root / "ground_truth.parquet").set_index("study_id")
    phrases = {
        ("cxr_text", "ctr_grade"): ("normal in size", "Mild cardiomegaly", "Moderate to severe"),
        ("echo_text", "lvedd_grade"): ("normal in size", "mildly dilated", "severely dilated"),
    }
    for (modality, name), words in phrases.items():
        latent, edges = GRADED[name]
        reports = manifest.samples[manifest.samples["modality"] == modality]
        grades = np.digitize(truth.loc[reports["study_id"], latent].to_numpy(float), edges)
        assert len(set(grades)) == 3, f"{modality}: the cohort should show every grade"
        for text, grade in zip(reports["text"], grades, strict=True):
            assert words[grade] in text, (modality, grade, text)


def test_summary_headlines_and_thin_table_warnings():
    doc = make_results(0)
    s = summary(doc)
    labels = [h.label for h in s["headlines"]]
    assert any("median of the median-percentile cells" in x for x in labels)
    assert any("zero-shot AUROC" in x for x in labels)
    assert any("linear-probe LVEF" in x for x in labels)
    for r in doc["records"]:
        r["n"] = MIN_RELIABLE_N + 5
    assert warnings(doc["records"]) == []
    doc["records"][0]["n"] = 7
    (w,) = warnings(doc["records"])
    assert w.startswith("Table 3: 1 of 56 cells are scored on fewer than 30 patients")


def test_summary_leaves_subgroup_and_label_efficiency_records_out():
    doc = make_results(0)
    for r in doc["records"]:
        r["n"] = MIN_RELIABLE_N + 5
    extra = [{**r, "subgroup": "sex=F", "n": 3} for r in doc["records"]]
    extra += [{**r, "train_fraction": 0.01, "value": 0.0} for r in doc["records"]]
    assert summary({**doc, "records": doc["records"] + extra}) == summary(doc)
