"""Tasks on planted embeddings: oracle, random, planted labels, undefined cells."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from itertools import permutations

import numpy as np
import pandas as pd
import pytest

from clerc.data.manifest import read_manifest
from clerc.evaluate.embeddings import Embeddings, normalize_rows
from clerc.evaluate.registry import TASKS, Context, load_definitions, load_tasks, task_names
from clerc.evaluate.results import CELL_FIELDS
from clerc.evaluate.tasks.common import cell_key, study_mean
from clerc.evaluate.tasks.probe import probe_cell
from clerc.evaluate.tasks.retrieval import pair_records
from clerc.evaluate.tasks.supervised import score_predictions
from clerc.evaluate.tasks.zeroshot import sample_scores, zero_shot_cell
from clerc.modalities import MODALITY_NAMES
from clerc.registry import UnknownNameError
from tests.planted_cohort import DIM, planted

DEFS = {d.name: d for d in load_definitions()}


def _ctx(tmp_path, n=40, noise=0.0, **kw) -> Context:
    emb, _ = planted(tmp_path, n, noise=noise)
    return Context(emb, read_manifest(tmp_path), n_resamples=kw.pop("n_resamples", 30), **kw)


def _by_metric(records):
    return {r.metric: r for r in records}


def test_oracle_retrieval_is_perfect(tmp_path):
    ctx = _ctx(tmp_path, noise=0.0)
    for q, g in (("echo_video", "ecg_text"), ("cxr_image", "angio_video")):
        r = _by_metric(pair_records(ctx, q, g))
        assert r["median_percentile"].value == 0.0
        assert r["mean_percentile"].value == 0.0
        assert r["recall@1"].value == 1.0
        assert r["median_percentile"].n == 12  # test patients (30% of 40)
        assert r["median_percentile"].ci_low == 0.0 == r["median_percentile"].ci_high


def test_random_retrieval_is_about_fifty(tmp_path):
    ctx = _ctx(tmp_path, n=200, noise=None, n_resamples=5)
    medians = [_by_metric(pair_records(ctx, q, g))["median_percentile"].value
               for q, g in list(permutations(MODALITY_NAMES, 2))[::4]]
    assert 42 < float(np.mean(medians)) < 58
    assert all(15 < m < 85 for m in medians)


def test_retrieval_with_too_few_patients_is_undefined(tmp_path):
    ctx = _ctx(tmp_path, n=40)
    keep = ctx.embeddings.samples["patient_id"] != "p039"
    only_one = ctx.embeddings.samples["split"].eq("test") & keep
    s = ctx.embeddings.samples.copy()
    s.loc[only_one & s["modality"].eq("angio_text"), "split"] = "train"
    emb = dataclasses.replace(ctx.embeddings, samples=s)
    recs = pair_records(dataclasses.replace(ctx, embeddings=emb), "angio_text", "cxr_text")
    assert len(recs) == 6  # median/mean percentile, recall@1/5/10, mrr
    assert all(r.value is None and "need 2" in r.note and r.n == 1 for r in recs)


def _reference_study_percentiles(samples: pd.DataFrame, vectors: np.ndarray, q: str,
                                 g: str) -> dict[str, float]:
    """Table 3 by plain loops: per patient the studies closest in time (ties to the earlier
    query, then gallery time); a study pair scores the mean cosine over its samples' pairs;
    ties count against; percentile = 100 rank / (n - 1)."""
    test = samples[samples["split"] == "test"]

    def by_patient(m: str) -> dict[str, list[tuple[pd.Timestamp, list[int]]]]:
        out: dict[str, list[tuple[pd.Timestamp, list[int]]]] = {}
        for _, grp in test[test["modality"] == m].groupby("study_id"):
            out.setdefault(grp["patient_id"].iloc[0], []).append(
                (grp["acquired_at"].min(), list(grp.index)))
        return out

    qs, gs = by_patient(q), by_patient(g)
    chosen = []
    for p in sorted(set(qs) & set(gs)):
        best = min(((abs(tq - tg), tq, tg, a, b) for tq, a in qs[p] for tg, b in gs[p]),
                   key=lambda c: c[:3])
        chosen.append((best[3], best[4]))

    def score(a: list[int], b: list[int]) -> float:
        return float(np.mean([float(vectors[i] @ vectors[j]) for i in a for j in b]))

    n = len(chosen)
    pct = []
    for i, (a, _) in enumerate(chosen):
        s = [score(a, b) for _, b in chosen]
        rank = sum(s[j] >= s[i] for j in range(n) if j != i)
        pct.append(100.0 * rank / (n - 1))
    return {"median_percentile": float(np.median(pct)), "mean_percentile": float(np.mean(pct)),
            "n": n}


def test_retrieval_scores_studies_against_a_plain_loop(tmp_path):
    """Multi-film studies score as one unit (the mean of their films), and a patient's
    second, closer study is the one paired."""
    ctx = _ctx(tmp_path, n=60, noise=0.5)
    s, v = ctx.embeddings.samples, ctx.embeddings.vectors
    rng = np.random.default_rng(3)
    extra, vecs = [], []
    for pid in s.loc[s["split"].eq("test"), "patient_id"].unique()[::2]:
        angio = s[(s["patient_id"] == pid) & (s["modality"] == "angio_video")]
        t = angio["acquired_at"].min() + pd.Timedelta(hours=1)
        for k in range(3):  # a second ECG study, three recordings, an hour after the films
            extra.append({**angio.iloc[0].to_dict(), "study_id": f"{pid}-ecg2",
                          "sample_id": f"{pid}-ecg2-{k}", "modality": "ecg_waveform",
                          "acquired_at": t + pd.Timedelta(minutes=k)})
            vecs.append(rng.normal(size=DIM))
    s2 = pd.concat([s, pd.DataFrame(extra)], ignore_index=True)
    v2 = np.vstack([v, normalize_rows(np.array(vecs))])
    emb = dataclasses.replace(ctx.embeddings, samples=s2, vectors=v2)
    ctx2 = dataclasses.replace(ctx, embeddings=emb)
    for q, g in (("ecg_waveform", "angio_video"), ("angio_video", "ecg_waveform"),
                 ("angio_video", "angio_text"), ("echo_text", "cxr_image")):
        want = _reference_study_percentiles(emb.samples, emb.vectors, q, g)
        got = _by_metric(pair_records(ctx2, q, g))
        assert got["median_percentile"].n == want["n"] == 18
        for m in ("median_percentile", "mean_percentile"):
            assert got[m].value == pytest.approx(want[m], abs=1e-9), (q, g, m)
    # the extra studies are random, so pairing them (not the first ECG study) must show
    first_only = _by_metric(pair_records(ctx, "ecg_waveform", "angio_video"))
    got = _by_metric(pair_records(ctx2, "ecg_waveform", "angio_video"))
    assert got["mean_percentile"].value > first_only["mean_percentile"].value + 5


def test_zero_shot_binary_on_planted_prompts(tmp_path):
    ctx = _ctx(tmp_path, noise=0.0)
    rec = zero_shot_cell(ctx, DEFS["rbbb"])
    assert [r.metric for r in rec] == ["auroc", "auprc"]
    assert rec[0].value == 1.0 and rec[0].modality == "ecg_waveform"
    assert rec[0].task == "rbbb" and rec[0].setting == "zero_shot"
    assert rec.predictions and rec.predictions[0]["cell"].iloc[0] == cell_key(
        {"table": "table4", "task": "rbbb", "setting": "zero_shot", "query_modality": None,
         "gallery_modality": None, "modality": "ecg_waveform", "label_modality": "ecg_waveform"})


def _angle(ef):
    return (np.asarray(ef, float) - 20.0) / 60.0 * (np.pi / 2)


def test_zero_shot_regression_recovers_planted_value(tmp_path):
    ctx = _ctx(tmp_path, n=60)
    d = DEFS["lvef"]
    emb = ctx.embeddings
    lab = ctx.manifest.labels.query("task == 'lvef'").set_index("study_id")["value"]
    ef = lab.reindex(emb.samples["study_id"]).to_numpy(float)
    is_echo = (emb.samples["modality"] == "echo_video").to_numpy()
    vec = emb.vectors.copy()
    a = _angle(ef[is_echo])
    vec[is_echo] = 0.0
    vec[is_echo, 0], vec[is_echo, 1] = np.cos(a), np.sin(a)
    prompts = emb.prompt_vectors.copy()
    for i, t in enumerate(emb.prompt_texts):
        if t in d.prompts:
            ang = _angle(d.values[d.prompts.index(t)])
            prompts[i] = np.eye(DIM)[0] * np.cos(ang) + np.eye(DIM)[1] * np.sin(ang)
    emb2 = dataclasses.replace(emb, vectors=normalize_rows(vec),
                               prompt_vectors=normalize_rows(prompts), logit_scale=400.0)
    ctx2 = dataclasses.replace(ctx, embeddings=emb2)
    rows = np.flatnonzero(is_echo)
    pred = sample_scores(ctx2, d, rows)
    assert np.abs(pred - ef[rows]).max() < 2.6  # half the sweep step
    r = _by_metric(zero_shot_cell(ctx2, d))
    assert r["r2"].value > 0.97 and r["mae"].value < 2.0


def test_probe_recovers_planted_labels(tmp_path):
    ctx = _ctx(tmp_path, n=80, noise=0.05)
    lvef = _by_metric(probe_cell(ctx, DEFS["lvef"], "table4", "echo_video"))
    assert lvef["r2"].value > 0.8
    assert lvef["r2"].ci_low <= lvef["r2"].value <= lvef["r2"].ci_high
    pace = _by_metric(probe_cell(ctx, DEFS["pacemaker_ecg"], "table4", "ecg_waveform"))
    assert pace["auroc"].value > 0.9 and pace["auroc"].n == 24
    sex = _by_metric(probe_cell(ctx, DEFS["sex"], "table5", "cxr_image"))
    assert sex["auroc"].value > 0.9 and sex["auroc"].label_modality is None
    age = _by_metric(probe_cell(ctx, DEFS["age"], "table5", "angio_video"))
    assert age["r2"].value > 0.8


def test_probe_on_random_embeddings_is_near_chance(tmp_path):
    ctx = _ctx(tmp_path, n=80, noise=None)
    r = probe_cell(ctx, DEFS["rbbb"], "table4", "ecg_waveform")[0]
    assert r.value is not None and r.value < 0.85


def test_one_class_gives_undefined_record(tmp_path):
    ctx = _ctx(tmp_path)
    lab = ctx.manifest.labels.copy()
    lab.loc[lab["task"] == "lbbb", "value"] = 0.0
    ctx = dataclasses.replace(ctx, manifest=dataclasses.replace(ctx.manifest, labels=lab))
    zs = zero_shot_cell(ctx, DEFS["lbbb"])[0]
    assert zs.value is None and zs.ci_low is None and "one class" in zs.note
    lp = probe_cell(ctx, DEFS["lbbb"], "table4", "ecg_waveform")[0]
    assert lp.value is None and "both classes" in lp.note


def test_cross_modal_gap_drops_far_labels(tmp_path):
    ctx = _ctx(tmp_path, n=40, max_gap=timedelta(hours=12))
    # echo studies are 1 day before the ECG labels: nothing within 12 hours
    r = probe_cell(ctx, DEFS["rbbb"], "table5", "echo_video")[0]
    assert r.value is None and "0 labelled train samples" in r.note
    ok = probe_cell(dataclasses.replace(ctx, max_gap=timedelta(days=2)),
                    DEFS["rbbb"], "table5", "echo_video")[0]
    assert ok.value is not None and "within 2 days; 0 of 12 test studies had none" in ok.note


def test_study_mean_averages_samples():
    rows = pd.DataFrame({"patient_id": ["a", "a", "a", "b"], "study_id": ["s1", "s1", "s2", "s3"]})
    y = pd.Series([1.0, 0.0], index=["s1", "s3"])
    out = study_mean(rows, np.array([0.2, 0.4, 0.9, 0.1]), y)
    assert out["study_id"].tolist() == ["s1", "s3"]  # s2 has no label
    assert out["y_score"].tolist() == pytest.approx([0.3, 0.1])


def test_supervised_scores_and_differences(tmp_path):
    ctx = _ctx(tmp_path, n=60, noise=0.3)
    s = ctx.manifest.samples
    lab = ctx.manifest.labels
    rows = []
    for name, modality, task in (("rbbb", "ecg_waveform", "rbbb"),
                                 ("pacemaker", "echo_video", "pacemaker")):
        y = lab[(lab["task"] == task) & (lab["source_modality"] == modality)]
        y = y.set_index("study_id")["value"]
        m = s[s["modality"] == modality]
        rows.append(pd.DataFrame({"sample_id": m["sample_id"], "task": name,
                                  "score": y.reindex(m["study_id"]).to_numpy(float)}))
    recs = score_predictions(pd.concat(rows), ctx.manifest, ctx)
    sup = {(r.task, r.modality): r for r in recs
           if r.setting == "supervised" and r.metric in ("auroc", "r2")}
    assert sup[("rbbb", "ecg_waveform")].value == 1.0
    assert sup[("pacemaker", "echo_video")].label_modality == "echo_video"
    diff = [r for r in recs if r.setting == "difference"]
    assert {r.metric for r in diff} == {"auroc", "auroc_p_holm", "auprc", "auprc_p_holm"}
    for r in diff:
        if r.metric in ("auroc", "auprc"):
            assert r.value <= 0 and r.ci_low <= r.value <= r.ci_high
        else:
            assert 0 <= r.value <= 1 and "Holm over 2" in r.note  # AUPRC apart from AUROC


def test_supervised_rejects_unknown_samples(tmp_path):
    ctx = _ctx(tmp_path)
    bad = pd.DataFrame({"sample_id": ["nope"], "task": ["rbbb"], "score": [0.5]})
    with pytest.raises(ValueError, match="not in the manifest"):
        score_predictions(bad, ctx.manifest, ctx)


def test_unknown_task_suggests_close_matches():
    load_tasks()
    with pytest.raises(UnknownNameError, match="Did you mean 'retrieval'"):
        TASKS.get("retreival")
    assert task_names() == ["retrieval", "oracle", "zero_shot", "linear_probe", "cross_modal",
                            "supervised", "subgroups", "label_efficiency"]


def test_supervised_task_needs_predictions(tmp_path):
    with pytest.raises(ValueError, match="--supervised"):
        load_tasks().get("supervised").run(_ctx(tmp_path))


def test_embeddings_reject_unnormalised(tmp_path):
    emb, _ = planted(tmp_path, 10)
    with pytest.raises(ValueError, match="L2-normalised"):
        Embeddings(emb.samples, emb.vectors * 2, emb.prompt_texts, emb.prompt_vectors, 10.0)


def test_user_definitions_extend_and_replace(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text('[[task]]\nname = "rbbb"\nlabel = "rbbb"\nkind = "binary"\n'
                 'modality = "ecg_waveform"\nlabel_modality = "ecg_waveform"\n'
                 'prompt = "RBBB."\n\n[[task]]\nname = "bnp"\nlabel = "bnp"\n'
                 'kind = "regression"\nmodality = "echo_video"\nlabel_modality = "echo_video"\n'
                 'template = "BNP is [X]."\nsweep = { placeholder = "[X]", values = [100, 500] }\n')
    defs = {d.name: d for d in load_definitions(f)}
    assert defs["rbbb"].prompts == ["RBBB."]
    assert defs["bnp"].prompts == ["BNP is 100.", "BNP is 500."]
    assert len(defs) == len(DEFS) + 1
    assert DEFS["lvef"].prompts[0] == ("The left ventricular ejection fraction is estimated to "
                                       "be 20%. LV ejection fraction is 20%.")
    assert len(DEFS["lvef"].prompts) == 13 and DEFS["pacemaker_ecg"].prompts == ["Pacemaker."]


@pytest.mark.parametrize("text, match", [
    ('name = "x"\nlabel = "x"\nkind = "ordinal"\nmodality = "echo_video"\n'
     'label_modality = "echo_video"', "kind must be one of"),
    ('name = "x"\nlabel = "x"\nkind = "binary"\nmodality = "echo"\n'
     'label_modality = "echo_video"', "modality must be one of"),
    ('name = "x"\nlabel = "x"\nkind = "binary"\nmodality = "echo_video"', "label_modality"),
    ('name = "x"\nlabel = "x"\nkind = "binary"\nmodality = "echo_video"\n'
     'label_modality = "echo_video"\npromt = "typo"', "unknown keys"),
])
def test_bad_definitions_name_the_problem(tmp_path, text, match):
    f = tmp_path / "bad.toml"
    f.write_text("[[task]]\n" + text + "\n")
    with pytest.raises(ValueError, match=match):
        load_definitions(f)


def test_table5_pacemaker_echo_cell_takes_the_echo_label():
    """Table 5: the Echo cell of Pacemaker is the echo-labelled probe (paper: 0.951, as in
    Table 4), the other columns the ECG label; one cell per (label, column)."""
    from clerc.evaluate.tasks.crossmodal import table5_cells
    from clerc.modalities import DIAGNOSTIC

    cells = table5_cells(list(DEFS.values()))
    pace = {m: d.name for d, m in cells if d.label == "pacemaker"}
    assert pace == {"echo_video": "pacemaker_echo", "ecg_waveform": "pacemaker_ecg",
                    "angio_video": "pacemaker_ecg", "cxr_image": "pacemaker_ecg"}
    keys = [(d.label, m) for d, m in cells]
    assert len(keys) == len(set(keys))
    assert {("lvef", m) for m in DIAGNOSTIC} <= set(keys) and ("rbbb", "echo_video") in keys


def test_probe_memo_is_keyed_on_everything_the_fit_reads(tmp_path):
    ctx = _ctx(tmp_path, n=40, noise=0.0)
    first = probe_cell(ctx, DEFS["rbbb"], "table4", "ecg_waveform")
    held = len(ctx.memo)  # the probe fit (and the pairing key of the manifest)
    assert first[0].value is not None
    again = probe_cell(ctx, DEFS["rbbb"], "table5", "ecg_waveform")  # Table 5's diagonal
    assert len(ctx.memo) == held and again[0].value == first[0].value
    rng = np.random.default_rng(1)
    noise = normalize_rows(rng.normal(size=ctx.embeddings.vectors.shape)).astype(np.float32)
    other = dataclasses.replace(ctx, embeddings=dataclasses.replace(ctx.embeddings,
                                                                   vectors=noise))
    random = probe_cell(other, DEFS["rbbb"], "table4", "ecg_waveform")
    assert len(ctx.memo) == held + 1 and random[0].value != first[0].value


def test_tasks_return_predictions_and_leave_the_context_alone(tmp_path):
    ctx = _ctx(tmp_path, n=40, n_resamples=0)
    before = {f.name: getattr(ctx, f.name) for f in dataclasses.fields(ctx) if f.name != "memo"}
    out = load_tasks().get("linear_probe").run(ctx)
    assert all(getattr(ctx, k) is v for k, v in before.items())
    cells = {r.key()[:len(CELL_FIELDS)] for r in out if r.value is not None}
    assert len(out.predictions) == len(cells)
