"""``clerc benchmark`` end to end on saved planted embeddings: every table cell present."""

from __future__ import annotations

import json
import re
from itertools import permutations

import pandas as pd
import pytest

from clerc.cli import main
from clerc.evaluate import benchmark
from clerc.modalities import DIAGNOSTIC, MODALITY_NAMES
from tests.planted_cohort import planted

RETRIEVAL = ("median_percentile", "mean_percentile", "recall@1", "recall@5", "recall@10")
TABLE4 = (("echo_video", "lvef"), ("echo_video", "pacemaker"), ("ecg_waveform", "rbbb"),
          ("ecg_waveform", "lbbb"), ("ecg_waveform", "pacemaker"),
          ("angio_video", "lad_occlusion"), ("angio_video", "rca_occlusion"),
          ("angio_video", "lcx_occlusion"), ("cxr_image", "consolidation"),
          ("cxr_image", "edema"))
TABLE5 = ("age", "sex", "lvef", "pacemaker", "rbbb", "lbbb", "lad_occlusion", "rca_occlusion",
          "lcx_occlusion", "consolidation", "edema")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    emb, _ = planted(root / "data", 40, noise=0.3)
    emb.save(root / "emb.npz")
    s = emb.samples
    pred = s[s["modality"] == "ecg_waveform"][["sample_id"]].assign(task="rbbb", score=0.5)
    pred["score"] = range(len(pred))
    pred.to_parquet(root / "sup.parquet")
    code = main(["benchmark", "--embeddings", str(root / "emb.npz"), "--data",
                 str(root / "data"), "--out", str(root / "out"), "--bootstrap", "10",
                 "--supervised", str(root / "sup.parquet"), "--no-report", "--knn"])
    assert code == 0
    return root


def test_every_cell_is_present(run_dir):
    doc = json.loads((run_dir / "out/results.json").read_text())
    recs = doc["records"]
    keys = {(r["table"], r["task"], r["setting"], r["query_modality"], r["gallery_modality"],
             r["modality"], r["label_modality"], r["metric"]) for r in recs
            if r["subgroup"] is None and r["train_fraction"] is None}
    full = {(*k, r["subgroup"], r["train_fraction"]) for k, r in zip(
        [(r["table"], r["task"], r["setting"], r["query_modality"], r["gallery_modality"],
          r["modality"], r["label_modality"], r["metric"]) for r in recs], recs, strict=True)}
    assert len(full) == len(recs), "duplicate record keys"
    assert any(r["subgroup"] == "sex=F" for r in recs)
    assert any(r["train_fraction"] == 0.1 and r["setting"] == "knn_probe" for r in recs)
    for q, g in permutations(MODALITY_NAMES, 2):
        for m in RETRIEVAL:
            assert ("table3", "retrieval", "retrieval", q, g, None, None, m) in keys
    for modality, task in TABLE4:
        metric = "r2" if task == "lvef" else "auroc"
        for setting in ("zero_shot", "linear_probe"):
            assert ("table4", task, setting, None, None, modality, modality, metric) in keys
    for task in TABLE5:
        for modality in DIAGNOSTIC:
            assert any(k[0] == "table5" and k[1] == task and k[5] == modality
                       and k[7] in ("r2", "auroc") for k in keys), (task, modality)
    assert sum(r["table"] == "table3" for r in recs) == 56 * 6
    assert {r["setting"] for r in recs} == {"retrieval", "zero_shot", "linear_probe",
                                            "supervised", "difference", "knn_probe"}
    for r in recs:
        assert set(r) >= {"value", "ci_low", "ci_high", "n", "n_undefined", "note"}
        assert r["value"] is not None or r["note"]


def test_results_carry_provenance_and_cohort(run_dir):
    doc = json.loads((run_dir / "out/results.json").read_text())
    prov = doc["provenance"]
    assert prov["seed"] == 0 and prov["bootstrap"] == 10 and prov["manifest_hash"]
    assert "task retrieval" in prov["stage_seconds"]
    assert doc["cohort"]["table1"]["patients"]["echo_video"] == 40
    assert doc["cohort"]["table2"]["rows"]["patients"]["test"] == 12


def test_predictions_have_no_patient_ids(run_dir):
    p = pd.read_parquet(run_dir / "out/predictions.parquet")
    assert list(p.columns) == ["cell", "kind", "y_true", "y_score", "pair_patient", "pair_unit"]
    assert set(p["kind"]) == {"binary", "regression", "retrieval"}
    assert not p["cell"].str.contains("p0").any()
    # pairing columns hold pseudonyms: no patient, study or sample id of the manifest
    from clerc.data.manifest import read_manifest

    s = read_manifest(run_dir / "data").samples
    ids = set(s["patient_id"].astype(str)) | set(s["study_id"].dropna().astype(str)) \
        | set(s["sample_id"].astype(str))
    values = set(p["pair_patient"]) | set(p["pair_unit"])
    assert values.isdisjoint(ids) and all(len(v) == 16 for v in values)
    text = (run_dir / "out/predictions.parquet").read_bytes()
    assert not any(i.encode() in text for i in ids if len(i) > 3)


def test_unknown_task_names_close_matches(capsys):
    with pytest.raises(SystemExit):
        main(["benchmark", "--tasks", "retreival"])
    assert "Did you mean 'retrieval'" in capsys.readouterr().err


def test_embeddings_without_the_prompts_are_refused(run_dir, tmp_path, capsys):
    extra = tmp_path / "extra.toml"
    extra.write_text('[[task]]\nname = "af"\nlabel = "af"\nkind = "binary"\n'
                     'modality = "ecg_waveform"\nlabel_modality = "ecg_waveform"\n'
                     'prompt = "Atrial fibrillation."\n')
    code = main(["benchmark", "--embeddings", str(run_dir / "emb.npz"), "--data",
                 str(run_dir / "data"), "--tasks-file", str(extra), "--out",
                 str(tmp_path / "o"), "--tasks", "zero_shot"])
    assert code == 2 and "Atrial fibrillation." in capsys.readouterr().err


def test_bad_inputs_fail_before_any_stage(run_dir, tmp_path, capsys):
    common = ["benchmark", "--embeddings", str(run_dir / "emb.npz"), "--data",
              str(run_dir / "data"), "--bootstrap", "0", "--no-report"]
    assert main([*common, "--supervised", str(tmp_path / "none.parquet"),
                 "--out", str(tmp_path / "o")]) == 2
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "--supervised" in err and "none.parquet" in err.replace(" ", "")
    assert "stage" not in err
    (tmp_path / "file").write_text("")
    assert main([*common, "--out", str(tmp_path / "file" / "out")]) == 2
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "cannot create the output directory" in err and "stage" not in err
    with pytest.raises(SystemExit):
        main([*common, "--bootstrap", "-1"])
    assert "--bootstrap: expected a number >= 0, got '-1'" in capsys.readouterr().err


def test_default_cohort_is_synthesised_once(tmp_path, monkeypatch):
    calls = []

    def fake(out, patients, seed, cfg, **kw):
        calls.append((patients, seed, cfg.angio_fraction))
        planted(out, 6)
        return out

    monkeypatch.setattr("clerc.synthetic.writer.synthesize", fake)
    path = tmp_path / "synthetic-default"
    assert benchmark.ensure_default_cohort(path) == path
    assert benchmark.ensure_default_cohort(path) == path
    assert calls == [(300, 0, 0.4)]


def test_benchmark_refuses_a_patient_in_two_splits(tmp_path, capsys):
    import pandas as pd

    from clerc.cli import main
    from tests.test_trainer import make_cohort

    leaky = make_cohort(tmp_path / "leaky")
    samples = pd.read_parquet(leaky / "samples.parquet")
    samples.loc[samples.index[samples["patient_id"] == "p020"][0], "split"] = "train"
    samples.to_parquet(leaky / "samples.parquet", index=False)
    (tmp_path / "e.npz").write_bytes(b"")  # never read: the manifest is refused first
    code = main(["benchmark", "--embeddings", str(tmp_path / "e.npz"), "--data", str(leaky),
                 "--out", str(tmp_path / "out"), "--no-report"])
    err = capsys.readouterr().err
    assert code == 2 and re.search(r"p020:\s+train,\s+val", err)  # rich wraps lines
    assert re.search(r"splits\s+must\s+be\s+by\s+patient", err)
