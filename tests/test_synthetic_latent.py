"""The latent cohort: Table 1 and 2 proportions, prevalences, correlations, drift, splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clerc.synthetic.config import (
    PATTERNS,
    TESTS,
    SynthConfig,
    availability_law,
    table1_fractions,
)
from clerc.synthetic.latent import draw_patient, study_states
from clerc.synthetic.splits import repair_splits, split_of
from clerc.synthetic.writer import LABELS, SOURCE

N = 2500


def _cohort(cfg: SynthConfig, n: int = N) -> tuple[pd.DataFrame, pd.DataFrame]:
    law = availability_law(cfg)
    pats = [draw_patient(i, 0, cfg, law) for i in range(n)]
    p = pd.DataFrame(
        [
            {"sex": x.sex, "age": x.anchor_age, "race": x.race, **{t: t in x.tests for t in TESTS}}
            for x in pats
        ]
    )
    s = pd.DataFrame([st.as_row() for x in pats for st in study_states(x, 0, cfg)])
    return p, s


@pytest.fixture(scope="module")
def default() -> tuple[pd.DataFrame, pd.DataFrame]:
    return _cohort(SynthConfig())


@pytest.fixture(scope="module")
def oversampled() -> tuple[pd.DataFrame, pd.DataFrame]:
    return _cohort(SynthConfig(angio_fraction=0.3))


@pytest.mark.parametrize("angio", [None, 0.3])
def test_availability_law_fits_table1(angio: float | None) -> None:
    cfg = SynthConfig(angio_fraction=angio)
    law = availability_law(cfg)
    pats = np.array(PATTERNS)
    assert law.sum() == pytest.approx(1.0) and (law >= 0).all()
    for key, target in cfg.targets().items():
        got = law[pats[:, [TESTS.index(t) for t in key]].all(axis=1)].sum()
        assert got == pytest.approx(target, abs=0.01), key
    if angio:
        assert law[pats[:, TESTS.index("angio")]].sum() == pytest.approx(0.3, abs=0.005)


def test_demographics_and_availability(default: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    p, _ = default
    assert p["age"].mean() == pytest.approx(64.6, abs=1.5)
    assert p["age"].std() == pytest.approx(17.9, abs=1.5)
    assert (p["sex"] == "F").mean() == pytest.approx(0.503, abs=0.03)
    assert (p["race"] == "Non-Hispanic White").mean() == pytest.approx(0.561, abs=0.03)
    assert p[list(TESTS)].any(axis=1).all()
    for key, frac in table1_fractions().items():
        assert p[list(key)].all(axis=1).mean() == pytest.approx(frac, abs=0.025), key


def test_prevalences_make_every_task_learnable(
    oversampled: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    _, s = oversampled
    by = {t: s[s["test"] == t] for t in TESTS}
    ecg = by["ecg"]
    assert 0.06 <= ecg["paced"].mean() <= 0.16
    assert 0.06 <= (ecg["rbbb"] & ~ecg["paced"]).mean() <= 0.14
    assert 0.06 <= (ecg["lbbb"] & ~ecg["paced"]).mean() <= 0.14
    assert 0.07 <= by["echo"]["pacemaker"].mean() <= 0.2
    for v in ("lad", "rca", "lcx"):
        assert 0.2 <= by["angio"][f"{v}_occlusion"].mean() <= 0.4, v
    for finding in ("consolidation", "edema"):
        assert 0.12 <= by["cxr"][finding].mean() <= 0.3, finding
    assert 8 <= by["echo"]["lvef"].std() <= 16


def test_physiology_is_correlated(default: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    _, s = default
    ef = s.groupby("lad_occlusion")["lvef"].mean()
    assert ef[True] < ef[False] - 10
    assert s.groupby("lbbb")["lvef"].mean().diff().iloc[-1] < -5
    assert s.groupby("paced")["lvef"].mean().diff().iloc[-1] < -5
    assert s.groupby(s["lvef"] < 40)["edema"].mean().diff().iloc[-1] > 0.2
    assert (
        s.groupby("paced")["qrs_ms"].min()[True] > s.groupby("paced")["qrs_ms"].mean()[False] + 40
    )
    assert s.groupby(s["age"] > 70)["pacemaker"].mean().diff().iloc[-1] > 0.03
    assert np.corrcoef(s["lvedd_cm"], s["ctr"])[0, 1] > 0.6


def test_state_drifts_across_studies(default: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    _, s = default
    per = s.groupby("patient_id")
    assert (per.size() >= 3).mean() > 0.3
    assert (per["years"].agg(np.ptp) > 1.0).mean() > 0.2
    echo = s[s["test"] == "echo"].groupby("patient_id")["lvef"].agg(["size", np.ptp])
    assert (echo[echo["size"] >= 2]["ptp"] > 3).mean() > 0.4
    implanted = per["pacemaker"].agg(lambda x: x.iloc[0] < x.iloc[-1])
    assert implanted.sum() >= 5
    edema_changes = s[s["test"] == "cxr"].groupby("patient_id")["edema"].nunique()
    assert (edema_changes == 2).sum() >= 10


def test_patient_is_independent_of_cohort_and_law() -> None:
    cfg = SynthConfig()
    law = availability_law(cfg)
    a = study_states(draw_patient(17, 5, cfg, law), 5, cfg)
    b = study_states(draw_patient(17, 5, cfg, law), 5, cfg)
    c = study_states(draw_patient(17, 6, cfg, law), 6, cfg)
    assert a == b and a != c


def test_splits_exact_per_block_and_stable() -> None:
    splits = [split_of(i, 0, (0.8, 0.1, 0.1)) for i in range(300)]
    counts = pd.Series(splits).value_counts()
    assert (counts["train"], counts["val"], counts["test"]) == (240, 30, 30)
    assert splits[:100] == [split_of(i, 0, (0.8, 0.1, 0.1)) for i in range(100)]


@pytest.mark.parametrize("seed", [2, 3])
def test_repair_gives_every_binary_task_positives_in_val_and_test(seed: int) -> None:
    cfg = SynthConfig(angio_fraction=0.3)
    law = availability_law(cfg)
    samples, labels = [], []
    for i in range(300):
        p = draw_patient(i, seed, cfg, law)
        samples.append(
            {"patient_id": p.patient_id, "split": split_of(i, seed, cfg.split_fractions)}
        )
        for s in study_states(p, seed, cfg):
            for task, attr in LABELS[s.test]:
                value = getattr(s, attr.removesuffix("_seen")) and not (
                    attr.endswith("_seen") and s.paced
                )
                labels.append(
                    {
                        "patient_id": p.patient_id,
                        "task": task,
                        "value": float(value),
                        "source_modality": SOURCE[s.test],
                    }
                )
    samples, labels = pd.DataFrame(samples), pd.DataFrame(labels)
    before = samples["split"].copy()
    swaps = repair_splits(samples, labels)
    assert swaps, "these seeds leave a task without test/val positives before the repair"
    assert (samples["split"] != before).sum() == 2 * len(swaps)
    assert samples["split"].value_counts().to_dict() == {"train": 240, "val": 30, "test": 30}
    labels["split"] = labels["patient_id"].map(samples.set_index("patient_id")["split"])
    binary = labels[labels["task"] != "lvef"]
    positives = binary.groupby(["split", "source_modality", "task"])["value"].sum().unstack(0)
    assert (positives[["val", "test"]] >= 1).all().all(), positives


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"angio_fraction": 1.5}, "angio_fraction"),
        ({"availability": {("echo", "xray"): 0.2}}, "availability key"),
        ({"echo_frames": 10}, "echo_frames"),
        (
            {"samples_range": {"echo": (2, 1), "ecg": (1, 1), "angio": (2, 4), "cxr": (1, 2)}},
            "samples_range['echo']",
        ),
        ({"split_fractions": (0.5, 0.1, 0.1)}, "split_fractions"),
    ],
)
def test_config_errors_name_the_field(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        SynthConfig(**kwargs)
