"""Subgroups and label efficiency: against direct loops, gate keys, report pages."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest

from clerc import gate
from clerc.data.manifest import read_manifest
from clerc.evaluate import bootstrap, metrics
from clerc.evaluate.knn import LabelEfficiencyConfig, fit_knn, neighbour_labels
from clerc.evaluate.registry import Context, load_definitions
from clerc.evaluate.results import Record, provenance, write_results
from clerc.evaluate.subgroups import SubgroupConfig, age_band, assign, group_tables
from clerc.evaluate.tasks.label_efficiency import cell_records
from clerc.evaluate.tasks.probe import probe_cell, probe_predictions
from clerc.evaluate.tasks.subgroups import subgroup_records
from clerc.evaluate.tasks.zeroshot import zero_shot_key, zero_shot_predictions
from tests.planted_cohort import planted

DEFS = {d.name: d for d in load_definitions()}


def _ctx(tmp_path, n=120, noise=0.8, **kw) -> Context:
    emb, _ = planted(tmp_path, n, noise=noise)
    return Context(emb, read_manifest(tmp_path), n_resamples=kw.pop("n_resamples", 40), **kw)


def test_age_bands() -> None:
    ages = np.array([59.9, 60.0, 69.99, 70.0, np.nan, 8.0])
    assert age_band(ages).tolist() == ["50-59", "60-69", "60-69", "70-79", "unknown", "0-9"]
    assert age_band(ages, (40.0, 65.0)).tolist() == [
        "40-65", "40-65", ">=65", ">=65", "unknown", "<40"]
    with pytest.raises(ValueError, match="increasing"):
        SubgroupConfig(age_edges=(65, 40))


def _direct(frame: pd.DataFrame, groups: np.ndarray, metric: str) -> dict[str, float | None]:
    """Each group's metric by a plain loop over the groups' rows."""
    fn = {"auroc": metrics.auroc, "auprc": metrics.auprc, "brier": metrics.brier,
          "ece": metrics.ece, "r2": metrics.r2, "mae": metrics.mae}[metric]
    out = {}
    for g in sorted(set(groups)):
        rows = frame[groups == g]
        try:
            out[g] = fn(rows["y_true"].to_numpy(float), rows["y_score"].to_numpy(float))
        except ValueError:
            out[g] = None
    return out


@pytest.mark.parametrize("name, probe", [("rbbb", True), ("lvef", True), ("edema", False)])
def test_subgroup_records_match_a_direct_loop(tmp_path, name: str, probe: bool) -> None:
    ctx = _ctx(tmp_path, subgroups=SubgroupConfig(min_patients=4))
    d = DEFS[name]
    if probe:
        from clerc.evaluate.tasks.common import base

        sp = probe_predictions(ctx, d, d.modality)
        b = base("table4", d.label, "linear_probe", modality=d.modality,
                 label_modality=d.label_modality)
    else:
        sp, b = zero_shot_predictions(ctx, d), zero_shot_key(d)
    tables = group_tables(ctx.manifest, ctx.subgroups)
    recs = subgroup_records(ctx, b, sp, probe, tables)
    assert recs == subgroup_records(ctx, b, sp, probe)  # tables = a shortcut, same groups
    by = {(r.subgroup, r.metric): r for r in recs}
    for family in ("sex", "age", "race"):
        groups = assign(ctx.manifest, sp.frame, family, ctx.subgroups)
        assert (groups == assign(ctx.manifest, sp.frame, family, ctx.subgroups,
                                 tables=tables)).all()
        for metric in {r.metric for r in recs if not r.metric.endswith("_gap")}:
            direct = _direct(sp.frame, groups, metric)
            scored, ns = {}, {}
            for g, want in direct.items():
                rec = by[(f"{family}={g}", metric)]
                n = sp.frame.loc[groups == g, "patient_id"].nunique()
                assert rec.n == n and rec.key()[-2] == f"{family}={g}"
                if n < 4:
                    assert rec.value is None and "too small" in rec.note
                elif want is None:
                    assert rec.value is None
                else:
                    assert rec.value == pytest.approx(want, abs=1e-9)
                    assert rec.ci_low <= rec.ci_high
                    scored[g] = want
                    ns[g] = n
            gap = by[(family, f"{metric}_gap")]
            if len(scored) >= 2:
                assert gap.value == pytest.approx(max(scored.values()) - min(scored.values()))
                assert gap.ci_low is not None
                assert gap.n == sum(ns.values())  # every scored group, not the extremes
            else:
                assert gap.value is None


def test_joint_replicates_of_a_subgroup_equal_materialised_resamples() -> None:
    rng = np.random.default_rng(0)
    pid = np.array([f"p{i % 20}" for i in range(60)], dtype=object)
    y = (rng.random(60) < 0.4).astype(float)
    s = rng.random(60)
    rows = np.flatnonzero(np.isin(pid, [f"p{i}" for i in range(0, 20, 2)]))
    parts = [bootstrap.Part("auroc", y[rows], s[rows], rows), bootstrap.Part("auroc", y, s)]
    points, ok, values, defined = bootstrap.joint_replicates(pid, parts, n_resamples=25, seed=2)
    counts = bootstrap.resample_counts(20, 25, 2)
    order = list(dict.fromkeys(pid))
    for r in range(25):
        sub = [i for i in rows for _ in range(counts[r, order.index(pid[i])])]
        try:
            want = metrics.auroc(y[sub], s[sub])
        except ValueError:
            assert not defined[0, r]
            continue
        assert defined[0, r] and values[0, r] == pytest.approx(want, abs=1e-12)
    assert points[1] == pytest.approx(metrics.auroc(y, s))
    # the whole-data part draws exactly what patient_bootstrap draws
    stats, _ = bootstrap.bootstrap_replicates("auroc", pid, y, s, n_resamples=25, seed=2)
    np.testing.assert_allclose(values[1][defined[1]], stats)


def test_gate_indexes_subgroup_records_distinctly() -> None:
    base = dict(table="table4", task="rbbb", setting="linear_probe", query_modality=None,
                gallery_modality=None, modality="ecg_waveform", label_modality="ecg_waveform",
                metric="auroc", value=0.8, ci_low=0.7, ci_high=0.9, n=40, n_undefined=0,
                note=None)
    recs = [Record(**base).to_dict(), Record(**base, subgroup="sex=F").to_dict(),
            Record(**base, subgroup="sex=M").to_dict(),
            Record(**base, train_fraction=0.1).to_dict()]
    index = gate.index_records({"records": recs}, "results")
    assert len(index) == 4
    old = {k: v for k, v in recs[0].items() if k not in ("subgroup", "train_fraction")}
    assert list(gate.index_records({"records": [old]}, "baseline")) == [next(iter(index))]
    moved = [dict(r) for r in recs]
    moved[1]["value"] = 0.5  # only the F group drifts
    drifts = gate.compare({"records": recs}, {"records": moved})
    failed = [d.key for d in drifts if d.failed]
    assert len(failed) == 1 and "sex=F" in failed[0]
    missing = gate.compare({"records": recs}, {"records": recs[:2] + recs[3:]})
    assert [d.reason for d in missing if d.failed] == ["missing in results"]
    assert gate.direction("auroc_gap") == -1 and gate.metric_kind("mae_gap") == "mae"


def test_knn_matches_a_brute_force_loop() -> None:
    rng = np.random.default_rng(1)
    train = rng.normal(size=(30, 4))
    train /= np.linalg.norm(train, axis=1, keepdims=True)
    q = rng.normal(size=(7, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    y = rng.random(30)
    got = neighbour_labels(train, y, q, 5)
    for i in range(7):
        sims = [float(q[i] @ t) for t in train]
        best = sorted(range(30), key=lambda j: -sims[j])[:5]
        np.testing.assert_allclose(got[i], y[best])
    yb = (y > 0.5).astype(float)
    probe = fit_knn("binary", train, yb, q, (rng.random(7) > 0.5).astype(float), ks=(3, 5))
    assert probe.k in (3, 5)
    np.testing.assert_allclose(probe.predict(q), neighbour_labels(train, yb, q, probe.k).mean(1))


def test_label_efficiency_records(tmp_path) -> None:
    ctx = _ctx(tmp_path, n=160, label_efficiency=LabelEfficiencyConfig(
        fractions=(0.1, 1.0), draws=3, ks=(3, 5), knn=True))
    d = DEFS["rbbb"]
    recs = cell_records(ctx, d)
    by = {(r.setting, r.train_fraction, r.metric): r for r in recs}
    full = {r.metric: r for r in probe_cell(ctx, d, "table4", d.modality)}
    assert by[("linear_probe", 1.0, "auroc")].value == pytest.approx(full["auroc"].value)
    assert by[("linear_probe", 1.0, "train_patients")].value == 80
    assert by[("linear_probe", 0.1, "train_patients")].value == 8
    small = by[("linear_probe", 0.1, "auroc")]
    assert "3 seeded draws" in small.note and small.ci_low <= small.value <= small.ci_high
    assert by[("linear_probe", 0.1, "auroc_sd")].value >= 0
    assert by[("knn_probe", 1.0, "auroc")].value is not None
    assert all(r.table == "table4" and r.subgroup is None for r in recs)


def test_report_has_subgroup_and_label_efficiency_pages(tmp_path) -> None:
    from clerc.evaluate.tasks import label_efficiency, subgroups
    from clerc.evaluate.tasks.probe import linear_probe
    from clerc.evaluate.tasks.zeroshot import zero_shot
    from clerc.report.html import render

    ctx = _ctx(tmp_path / "c", n=100, n_resamples=10, subgroups=SubgroupConfig(min_patients=3),
               label_efficiency=LabelEfficiencyConfig(fractions=(0.2, 1.0), draws=2, ks=(3,),
                                                      knn=True))
    defs = tuple(d for d in ctx.definitions if d.name in ("rbbb", "lvef"))
    import dataclasses

    ctx = dataclasses.replace(ctx, definitions=defs)
    recs = zero_shot(ctx) + linear_probe(ctx) + subgroups.subgroups(ctx) \
        + label_efficiency.label_efficiency(ctx)
    cohort = {"table1": {"patients": {}, "pairs": {}},
              "table2": {"splits": ["total"], "rows": {}}}
    path = write_results(tmp_path / "run" / "results.json", recs,
                         provenance(checkpoint_hash=None, manifest_hash=None, seed=0), cohort)
    names = [p.name for p in render(path, tmp_path / "out")]
    for page in ("subgroups_sex.html", "subgroups_age.html", "subgroups_race.html",
                 "label_efficiency.html"):
        assert page in names
    sex = (tmp_path / "out" / "subgroups_sex.html").read_text()
    assert "Largest gap" in sex and ">F<" in sex and ">M<" in sex
    le = (tmp_path / "out" / "label_efficiency.html").read_text()
    assert "<svg" in le and "k-NN probe" in le
    assert re.search(r">50<sup", le) and ">10<sup" in le and "50.000" not in le  # counts
    t4 = (tmp_path / "out" / "table4.html").read_text()
    assert "AUPRC" in t4 and "Brier score" in t4 and "ECE" in t4
    assert "zero-shot scores are not probabilities" in t4  # not "not in results"
    doc = json.loads(path.read_text())
    assert {r["subgroup"] for r in doc["records"]} >= {None, "sex=F", "sex", "race=Asian"}


def test_label_efficiency_plot_marks_a_cell_without_scores() -> None:
    from clerc.report.plots import label_efficiency as le_plot

    def rec(task, setting, metric, value, fraction):
        return {"table": "table4", "task": task, "modality": "ecg_waveform",
                "setting": setting, "metric": metric, "value": value, "subgroup": None,
                "train_fraction": fraction}

    recs = [rec("rbbb", "linear_probe", "auroc", 0.7, 0.1),
            rec("rbbb", "linear_probe", "train_patients", 10.0, 0.1),
            rec("rbbb", "linear_probe", "auroc", 0.8, 1.0),
            rec("rbbb", "linear_probe", "train_patients", 100.0, 1.0),
            rec("lbbb", "linear_probe", "auroc", None, 1.0)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "no artists with labels" legend warning
        plot = le_plot(recs)
    assert plot is not None and "no fraction could be scored" in plot.svg
