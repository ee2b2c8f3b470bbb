"""A small synthetic cohort written end to end: contract, formats, determinism, honesty."""

from __future__ import annotations

import json
import re
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import wfdb
from PIL import Image

from clerc.cli import main
from clerc.data.manifest import read_manifest
from clerc.data.readers import read_ecg, read_image, read_video
from clerc.data.validate import validate_manifest
from clerc.modalities import ECG_LEADS, MODALITY_NAMES
from clerc.synthetic.config import TESTS, SynthConfig
from clerc.synthetic.splits import split_of
from clerc.synthetic.writer import synthesize
from tests.test_synthetic_physics import cxr_ctr, ecg_rate, echo_lvef, echo_rate

ALL = {
    **{(t,): 1.0 for t in TESTS},
    **{(a, b): 1.0 for i, a in enumerate(TESTS) for b in TESTS[i + 1 :]},
}
CFG = SynthConfig(availability=ALL)
SEED = 3


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize(tmp_path_factory.mktemp("big"), 12, SEED, CFG, workers=2, progress=False)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize(tmp_path_factory.mktemp("small"), 4, SEED, CFG, workers=1, progress=False)


@pytest.fixture(scope="module")
def truth(cohort: Path) -> pd.DataFrame:
    return pd.read_parquet(cohort / "ground_truth.parquet")


def test_manifest_contract(cohort: Path) -> None:
    assert validate_manifest(cohort, deep=True) == []
    m = read_manifest(cohort)
    assert set(m.samples["modality"]) == set(MODALITY_NAMES)
    assert m.samples["sample_id"].is_unique
    assert (m.samples.groupby("patient_id")["split"].nunique() == 1).all()
    assert set(m.patients["sex"]) <= {"F", "M"} and len(m.patients) == 12
    files = m.samples[m.samples["path"].notna()]
    assert all(not Path(p).is_absolute() and (cohort / p).is_file() for p in files["path"])
    reports = m.samples[m.samples["modality"].str.endswith("_text")]
    assert reports["study_id"].is_unique and reports["text"].notna().all()
    per_study = files.groupby(["study_id", "modality"]).size()
    ranges = {
        "echo_video": (1, 3),
        "ecg_waveform": (1, 1),
        "angio_video": (2, 4),
        "cxr_image": (1, 2),
    }
    for (_, modality), n in per_study.items():
        assert ranges[modality][0] <= n <= ranges[modality][1]
    assert set(reports["study_id"]) == set(per_study.index.get_level_values(0))


def test_labels_follow_contract(cohort: Path, truth: pd.DataFrame) -> None:
    labels = read_manifest(cohort).labels
    tasks = {
        "echo_video": {"lvef", "pacemaker"},
        "ecg_waveform": {"rbbb", "lbbb", "pacemaker"},
        "angio_video": {"lad_occlusion", "rca_occlusion", "lcx_occlusion"},
        "cxr_image": {"consolidation", "edema"},
    }
    for source, group in labels.groupby("source_modality"):
        assert (group.groupby("study_id")["task"].apply(set) == tasks[source]).all()
    t = truth.set_index("study_id")
    assert (
        labels["measured_at"].to_numpy() == t.loc[labels["study_id"], "acquired_at"].to_numpy()
    ).all()
    binary = labels[labels["task"] != "lvef"]["value"]
    assert set(binary) <= {0.0, 1.0}
    lvef = labels[labels["task"] == "lvef"].set_index("study_id")["value"]
    assert np.allclose(lvef, t.loc[lvef.index, "lvef"])
    ecg_pm = labels[(labels["task"] == "pacemaker") & (labels["source_modality"] == "ecg_waveform")]
    assert np.array_equal(
        ecg_pm["value"].to_numpy(), t.loc[ecg_pm["study_id"], "paced"].astype(float)
    )


def test_file_formats(cohort: Path) -> None:
    s = read_manifest(cohort).samples
    first = {
        m: cohort / s[s["modality"] == m]["path"].iloc[0]
        for m in ("echo_video", "angio_video", "ecg_waveform", "cxr_image")
    }
    for modality, fps, lo, hi in (("echo_video", 30, 48, 48), ("angio_video", 15, 24, 32)):
        with av.open(str(first[modality])) as c:
            st = c.streams.video[0]
            assert (st.codec_context.name, st.format.name) == ("mjpeg", "yuvj420p")
            assert (st.width, st.height, float(st.average_rate)) == (112, 112, fps)
            assert lo <= len(list(c.decode(video=0))) <= hi
    head = wfdb.rdheader(str(first["ecg_waveform"].with_suffix("")))
    assert (head.sig_name, head.fs, head.sig_len) == (list(ECG_LEADS), 500, 5000)
    assert set(head.units) == {"mV"} and set(head.fmt) == {"16"}
    img = Image.open(first["cxr_image"])
    assert (img.format, img.mode, img.size) == ("PNG", "L", (256, 256))


def test_deterministic_and_stable_when_cohort_grows(cohort: Path, small: Path) -> None:
    """4-patient run (1 process) == the first 4 patients of the 12-patient run (2 processes)."""
    files = sorted(
        p.relative_to(small)
        for p in small.rglob("*")
        if p.is_file() and p.suffix in {".avi", ".hea", ".dat", ".png"}
    )
    assert len(files) > 20
    for rel in files:
        assert (small / rel).read_bytes() == (cohort / rel).read_bytes(), rel
    a, b = read_manifest(small), read_manifest(cohort)
    keep = b.samples["patient_id"].isin(a.patients["patient_id"])
    pd.testing.assert_frame_equal(
        a.samples.drop(columns="split"),
        b.samples[keep].reset_index(drop=True).drop(columns="split"),
    )
    # splits differ only where a run swapped patients to give val/test positives
    for root, m in ((small, a), (cohort, b)):
        swapped = {
            x
            for s in json.loads((root / "synth.json").read_text())["split_swaps"]
            for x in (s["patient_id"], s["back_to_train"])
        }
        for pid, split in m.patient_split().items():
            if pid not in swapped:
                assert split == split_of(int(pid[1:]), SEED, CFG.split_fractions), pid


def test_reports_carry_no_identifiers(cohort: Path) -> None:
    s = read_manifest(cohort).samples
    texts = s[s["text"].notna()]["text"]
    assert not texts.str.contains(r"P\d{6}|echo\d|ecg\d|cxr\d|angio\d", regex=True).any()


def test_reports_state_the_findings(cohort: Path, truth: pd.DataFrame) -> None:
    s = read_manifest(cohort).samples
    text = s[s["text"].notna()].set_index("study_id")["text"]
    t = truth.set_index("study_id")
    echo_ok = [
        abs(int(re.search(r"(\d+)%", text[k]).group(1)) - t.loc[k, "lvef"]) <= 3
        for k in t.index[t["test"] == "echo"]
        if re.search(r"(\d+)%", text[k])
    ]
    assert np.mean(echo_ok) >= 0.8
    ecg = t[t["test"] == "ecg"]
    rate = [int(re.search(r"rate (\d+) BPM", text[k]).group(1)) for k in ecg.index]
    assert np.allclose(rate, ecg["hr"], atol=1)
    angio = t[t["test"] == "angio"]
    says = [
        ("LAD had an occlusion" in text[k]) == bool(angio.loc[k, "lad_occlusion"])
        for k in angio.index
    ]
    assert np.mean(says) >= 0.8


def test_files_encode_the_state(cohort: Path, truth: pd.DataFrame) -> None:
    s = read_manifest(cohort).samples
    t = truth.set_index("study_id")
    first = s[s["path"].notna()].drop_duplicates("study_id").set_index("study_id")
    ef_err, echo_hr, ecg_hr = [], {}, {}
    for study in t.index[t["test"] == "echo"]:
        frames, fps = read_video(cohort / first.loc[study, "path"])
        ef_err.append(abs(echo_lvef(frames) - t.loc[study, "lvef"]))
        echo_hr[study] = echo_rate(frames, fps)
    assert np.mean(ef_err) < 7.0, ef_err
    for study in t.index[t["test"] == "ecg"]:
        ecg_hr[study] = ecg_rate(read_ecg(cohort / first.loc[study, "path"]))
        assert ecg_hr[study] == pytest.approx(t.loc[study, "hr"], rel=0.06)
    close = [abs(echo_hr[k] / t.loc[k, "hr"] - 1) < 0.15 for k in echo_hr]
    assert np.mean(close) >= 0.8, (echo_hr, t.loc[list(echo_hr), "hr"])
    # the same encounter's echo and ECG agree on the rate, measured from the files alone
    pairs = [
        (e, g)
        for e in echo_hr
        for g in ecg_hr
        if t.loc[e, "patient_id"] == t.loc[g, "patient_id"]
        and abs(t.loc[e, "years"] - t.loc[g, "years"]) < 4 / 365
    ]
    assert pairs and np.mean([abs(echo_hr[e] / ecg_hr[g] - 1) < 0.15 for e, g in pairs]) >= 0.8
    cxr = t[t["test"] == "cxr"]
    measured = np.array([cxr_ctr(read_image(cohort / first.loc[k, "path"])) for k in cxr.index])
    assert np.corrcoef(measured, cxr["ctr"])[0, 1] > 0.6
    # edema haze and consolidation blur the heart border for a threshold measurement
    clear = ~(cxr["edema"] | cxr["consolidation"]).to_numpy()
    assert clear.sum() >= 5 and np.corrcoef(measured[clear], cxr["ctr"][clear])[0, 1] > 0.9


def test_cli_preview(cohort: Path) -> None:
    assert main(["synth", "--preview", str(cohort)]) == 0
    for name in ("echo", "ecg", "angio", "cxr"):
        img = Image.open(cohort / "preview" / f"{name}.png")
        assert img.size[0] > 500 and img.size[1] > 300


def test_cli_writes_cohort(tmp_path: Path) -> None:
    assert (
        main(
            [
                "synth",
                "--out",
                str(tmp_path),
                "--patients",
                "2",
                "--seed",
                "1",
                "--workers",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    assert validate_manifest(tmp_path) == []
    with pytest.raises(SystemExit) as refused:  # the parser refuses it, exit status 2
        main(["synth", "--out", str(tmp_path), "--patients", "0", "--quiet"])
    assert refused.value.code == 2
