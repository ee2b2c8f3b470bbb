"""Supervised baselines: heads, losses, labels, training on a planted signal, predictions,
checkpoints, and scoring through the supervised evaluation task."""

from __future__ import annotations

import dataclasses
import json
import shutil
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from baselines.data import EpochBatches
from baselines.model import BaselineModel, masked_loss, to_scores
from baselines.predict import COLUMNS, load_baseline
from baselines.tasks import HeadSpec, TargetStats, baseline_heads, sample_labels, target_stats
from baselines.train import build_model, head_metrics, selection_score
from clerc.cli import main
from clerc.data.manifest import read_manifest, write_manifest
from clerc.evaluate.metrics import auroc
from clerc.model.clerc import example_input
from clerc.model.config import ModelConfig
from clerc.train.checkpoint import CheckpointError, save_checkpoint
from clerc.train.config import TrainConfig

torch.set_num_threads(1)
T0 = pd.Timestamp("2021-01-01")
N_PATIENTS = 60


def _split(i: int) -> str:
    return "train" if i < 0.6 * N_PATIENTS else ("val" if i < 0.8 * N_PATIENTS else "test")


def _media(root: Path, pid: str, i: int, rng: np.random.Generator) -> tuple[int, int]:
    """Planted signals: an 8 Hz sine of 1.5 mV on lead V1 <=> rbbb; a bright CXR <=> edema."""
    rbbb, edema = i % 2, (i // 2) % 2
    sig = rng.normal(0, 0.1, (12, 5000)).astype(np.float32)
    sig[6] += np.float32(1.5 * rbbb) * np.sin(2 * np.pi * 8 * np.arange(5000) / 500).astype(
        np.float32)
    np.save(root / "media" / f"{pid}-ecg.npy", sig)
    img = rng.integers(0, 60, (256, 256)) + (120 if edema else 30)
    np.save(root / "media" / f"{pid}-cxr.npy", img.astype(np.uint8))
    return rbbb, edema


def build_cohort(root: Path) -> Path:
    """60 patients (36 train, 12 val, 12 test), one ECG and one CXR each; lbbb labels come
    without a study, 3 days after the ECG; p000's lbbb is two years off (never matched).
    Sex cycles F, M, unknown."""
    rng = np.random.default_rng(0)
    (root / "media").mkdir(parents=True)
    samples, labels, patients = [], [], []
    for i in range(N_PATIENTS):
        pid, t = f"p{i:03d}", T0 + pd.Timedelta(days=7 * i)
        patients.append({"patient_id": pid, "sex": ["F", "M", pd.NA][i % 3],
                         "anchor_age": 40.0 + i % 37, "anchor_time": T0, "race": "x"})
        rbbb, edema = _media(root, pid, i, rng)
        for m, test, task, value in (("ecg_waveform", "ecg", "rbbb", rbbb),
                                     ("cxr_image", "cxr", "edema", edema)):
            samples.append({"patient_id": pid, "study_id": f"{pid}-{test}",
                            "sample_id": f"{pid}-{test}", "modality": m, "acquired_at": t,
                            "path": f"media/{pid}-{test}.npy", "text": pd.NA,
                            "split": _split(i)})
            labels.append({"patient_id": pid, "study_id": f"{pid}-{test}", "task": task,
                           "value": float(value), "measured_at": t, "source_modality": m})
        gap = pd.Timedelta(days=730 if i == 0 else 3)
        labels.append({"patient_id": pid, "study_id": pd.NA, "task": "lbbb",
                       "value": float(rng.random() < 0.3), "measured_at": t + gap,
                       "source_modality": "ecg_waveform"})
    return write_manifest(root, pd.DataFrame(samples), pd.DataFrame(labels),
                          pd.DataFrame(patients))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The cohort and a run of `clerc baselines train` on it (tiny, 4 epochs, batch 8)."""
    base = tmp_path_factory.mktemp("baselines")
    data, runs = build_cohort(base / "data"), base / "runs"
    cfg = dataclasses.replace(TrainConfig.tiny(), epochs=4, batch_size=8)
    (base / "cfg.toml").write_text(cfg.to_toml())
    rc = main(["baselines", "train", "--data", str(data), "--config", str(base / "cfg.toml"),
               "--out", str(runs), "--device", "cpu", "--no-progress"])
    assert rc == 0
    return data, runs


def test_heads_follow_the_task_definitions() -> None:
    names = {m: [(h.name, h.kind) for h in baseline_heads(m)]
             for m in ("echo_video", "ecg_waveform", "angio_video", "cxr_image")}
    demo = [("age", "regression"), ("sex", "binary")]
    assert names["echo_video"] == [("lvef", "regression"), ("pacemaker_echo", "binary"), *demo]
    assert names["ecg_waveform"] == [("rbbb", "binary"), ("lbbb", "binary"),
                                     ("pacemaker_ecg", "binary"), *demo]
    assert [n for n, _ in names["angio_video"]][:3] == ["lad_occlusion", "rca_occlusion",
                                                        "lcx_occlusion"]
    assert names["cxr_image"] == [("consolidation", "binary"), ("edema", "binary"), *demo]
    with pytest.raises(ValueError, match="echo_text"):
        baseline_heads("echo_text")


@pytest.mark.parametrize("modality", ["echo_video", "ecg_waveform", "angio_video", "cxr_image"])
def test_model_outputs_one_column_per_head(modality: str) -> None:
    torch.manual_seed(0)
    heads = baseline_heads(modality)
    model = BaselineModel(modality, ModelConfig.tiny(), heads).eval()
    with torch.no_grad():
        out = model(example_input(modality, model.cfg, batch=2))
    assert out.shape == (2, len(heads))
    assert list(model.heads) == [h.name for h in heads]


def test_masked_loss_is_bce_for_binary_and_mse_for_standardised_regression() -> None:
    specs = (HeadSpec("rbbb", "rbbb", "binary", "ecg_waveform"),
             HeadSpec("age", "age", "regression"),
             HeadSpec("lbbb", "lbbb", "binary", "ecg_waveform"))
    stats = TargetStats(mean=(0.0, 60.0, 0.0), std=(1.0, 10.0, 1.0), pos_weight=(3.0, 1.0, 1.0))
    out = torch.tensor([[0.5, 1.0, 9.0], [-1.0, -0.5, 9.0], [2.0, 0.2, 9.0]])
    y = torch.tensor([[1.0, 70.0, np.nan], [0.0, np.nan, np.nan], [np.nan, 58.0, np.nan]])
    loss, per_head = masked_loss(out, y, specs, stats)
    bce = F.binary_cross_entropy_with_logits(torch.tensor([0.5, -1.0]), torch.tensor([1.0, 0.0]),
                                             pos_weight=torch.tensor(3.0))
    mse = F.mse_loss(torch.tensor([1.0, 0.2]), torch.tensor([1.0, -0.2]))
    assert set(per_head) == {"rbbb", "age"}  # lbbb has no label in the batch
    assert per_head["rbbb"] == pytest.approx(float(bce))
    assert per_head["age"] == pytest.approx(float(mse))
    assert float(loss) == pytest.approx((float(bce) + float(mse)) / 2)
    scores = to_scores(out, specs, stats)
    assert scores[0, 1] == pytest.approx(70.0)
    assert scores[0, 0] == pytest.approx(1 / (1 + np.exp(-0.5)))
    with pytest.raises(ValueError, match="must both be"):
        masked_loss(out[:, :2], y, specs, stats)


def test_target_stats_from_train_labels() -> None:
    specs = (HeadSpec("a", "rbbb", "binary", "ecg_waveform"), HeadSpec("age", "age", "regression"),
             HeadSpec("b", "lbbb", "binary", "ecg_waveform"))
    y = np.array([[1, 50, 0], [0, 70, 0], [0, np.nan, 0], [0, 60, np.nan]], dtype=float)
    s = target_stats(y, specs)
    assert s.pos_weight == (3.0, 1.0, 1.0)  # b has no positive: unweighted
    assert s.mean[1] == pytest.approx(60.0) and s.std[1] == pytest.approx(np.std([50, 70, 60]))
    assert TargetStats.from_dict(s.to_dict()) == s


def test_sample_labels_by_study_then_nearest_in_time(tmp_path: Path) -> None:
    m = read_manifest(build_cohort(tmp_path / "d"))
    s = m.samples[m.samples["modality"] == "ecg_waveform"].reset_index(drop=True)
    heads = baseline_heads("ecg_waveform")
    y = sample_labels(m, s, heads, timedelta(days=365))
    k = {h.name: j for j, h in enumerate(heads)}
    assert np.array_equal(y[:, k["rbbb"]], np.arange(N_PATIENTS) % 2)  # same study
    lab = m.labels[m.labels["task"] == "lbbb"].set_index("patient_id")["value"]
    assert np.isnan(y[0, k["lbbb"]])  # two years away
    assert np.array_equal(y[1:, k["lbbb"]], lab.reindex(s["patient_id"][1:]).to_numpy())
    assert np.isnan(y[:, k["pacemaker_ecg"]]).all()
    sex = y[:, k["sex"]]
    assert np.array_equal(sex, np.tile([1.0, 0.0, np.nan], N_PATIENTS // 3), equal_nan=True)
    age = 40.0 + np.arange(N_PATIENTS) % 37 + 7 * np.arange(N_PATIENTS) / 365.25
    assert np.allclose(y[:, k["age"]], age)


def test_epoch_batches_shuffle_per_epoch_and_cap() -> None:
    b = EpochBatches(10, 4, seed=1, shuffle=True, drop_last=True, max_batches=None)
    first = b.batches()
    assert len(first) == 2 and all(e == 0 for batch in first for e, _ in batch)
    b.set_epoch(1)
    assert [i for _, i in b.batches()[0]] != [i for _, i in first[0]]
    assert len(EpochBatches(10, 4, seed=1, shuffle=False, drop_last=False).batches()) == 3
    assert len(EpochBatches(10, 4, seed=1, shuffle=True, drop_last=True, max_batches=1)) == 1


def test_selection_score_means_defined_heads() -> None:
    specs = (HeadSpec("a", "rbbb", "binary", "ecg_waveform"), HeadSpec("age", "age", "regression"))
    stats = TargetStats((0.0, 50.0), (1.0, 10.0), (1.0, 1.0))
    labels = np.array([[1, 40], [0, 60], [1, 50]], dtype=float)
    m = head_metrics(np.array([[2.0, -1.0], [-2.0, 1.0], [1.0, 0.0]]), labels, specs, stats)
    assert m == {"a": 1.0, "age": pytest.approx(1.0)}
    one_class = head_metrics(np.zeros((2, 2)), np.array([[1, np.nan], [1, np.nan]]), specs, stats)
    assert one_class == {}
    assert selection_score({"a": 1.0, "age": 0.5}, 9.0) == 0.75
    assert selection_score({}, 2.0) == -2.0


def test_pretrained_init_through_clerc_init(tmp_path: Path) -> None:
    cfg = dataclasses.replace(TrainConfig.tiny(), seed=3)
    heads = baseline_heads("echo_video")
    donor = BaselineModel("echo_video", cfg.model, heads)
    torch.save(donor.encoder.net.state_dict(), tmp_path / "kinetics.pth")
    model = build_model("echo_video", cfg, heads, {"echo_video": str(tmp_path / "kinetics.pth")},
                        torch.device("cpu"))
    assert torch.equal(model.encoder.net.stem[0].weight, donor.encoder.net.stem[0].weight)


def _labels_of(data: Path, task: str, modality: str, sample_ids: pd.Series) -> np.ndarray:
    """The label of each sample's study."""
    m = read_manifest(data)
    lab = m.labels[(m.labels["task"] == task) & (m.labels["source_modality"] == modality)]
    study = m.samples.set_index("sample_id")["study_id"].reindex(sample_ids)
    return lab.set_index("study_id")["value"].reindex(study).to_numpy(float)


def test_training_learns_planted_signals(trained: tuple[Path, Path]) -> None:
    data, runs = trained
    pred = pd.read_parquet(runs / "predictions.parquet")
    for task, modality in (("rbbb", "ecg_waveform"), ("edema", "cxr_image")):
        p = pred[(pred["task"] == task) & (pred["modality"] == modality)]
        y = _labels_of(data, task, modality, p["sample_id"])
        assert len(p) == 12 and auroc(y, p["score"].to_numpy()) > 0.9, task


def test_predictions_table_holds_test_samples_of_trained_heads(trained: tuple[Path, Path]) -> None:
    data, runs = trained
    pred = pd.read_parquet(runs / "predictions.parquet")
    assert tuple(pred.columns) == COLUMNS
    split = read_manifest(data).samples.set_index("sample_id")["split"]
    assert set(split.reindex(pred["sample_id"])) == {"test"}
    tasks = pred.groupby("modality")["task"].unique().map(sorted).to_dict()
    assert tasks == {"ecg_waveform": ["age", "lbbb", "rbbb", "sex"],  # no pacemaker labels
                     "cxr_image": ["age", "edema", "sex"]}
    binary = pred[pred["task"] != "age"]["score"]
    assert binary.between(0, 1).all()
    assert pred[pred["task"] == "age"]["score"].between(20, 100).all()
    assert not (runs / "echo_video").exists()


def test_checkpoint_loads_weights_only_with_a_baseline_header(trained: tuple[Path, Path]) -> None:
    _, runs = trained
    obj = torch.load(runs / "ecg_waveform" / "ckpt.pt", map_location="cpu", weights_only=True)
    assert "heads.rbbb.weight" in obj["state"]["model"]
    model, stats, header = load_baseline(runs / "ecg_waveform" / "ckpt.pt")
    assert header["kind"] == "baseline" and header["modality"] == "ecg_waveform"
    assert header["tasks"] == ["rbbb", "lbbb", "age", "sex"]
    log = [json.loads(line) for line in
           (runs / "ecg_waveform" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 4
    assert header["best_epoch"] == int(np.argmax([r["val_score"] for r in log]))
    assert stats.pos_weight[0] == pytest.approx(1.0)  # rbbb is balanced in train


def test_load_baseline_refuses_other_checkpoints(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "clerc.pt", {"model": {}}, {"config": {}})
    with pytest.raises(CheckpointError, match="not a baseline checkpoint"):
        load_baseline(tmp_path / "clerc.pt")


def test_predict_command_recreates_predictions(trained: tuple[Path, Path],
                                               tmp_path: Path) -> None:
    data, runs = trained
    before = pd.read_parquet(runs / "predictions.parquet")
    copy = tmp_path / "runs"
    (copy / "cxr_image").mkdir(parents=True)
    (copy / "cxr_image" / "ckpt.pt").write_bytes((runs / "cxr_image" / "ckpt.pt").read_bytes())
    assert main(["baselines", "predict", "--runs", str(copy), "--data", str(data),
                 "--no-progress", "--device", "cpu"]) == 0
    after = pd.read_parquet(copy / "predictions.parquet")
    expected = before[before["modality"] == "cxr_image"].reset_index(drop=True)
    pd.testing.assert_frame_equal(after, expected, check_exact=False, atol=1e-5)


def test_training_one_modality_keeps_the_others_predictions(trained: tuple[Path, Path],
                                                            tmp_path: Path) -> None:
    data, runs = trained
    shutil.copytree(runs, tmp_path / "runs")
    assert main(["baselines", "train", "--data", str(data), "--out", str(tmp_path / "runs"),
                 "--config", "tiny", "--epochs", "1", "--modalities", "cxr_image",
                 "--no-progress", "--device", "cpu"]) == 0
    pred = pd.read_parquet(tmp_path / "runs" / "predictions.parquet")
    assert set(pred["modality"]) == {"ecg_waveform", "cxr_image"}
    ecg = pd.read_parquet(runs / "predictions.parquet").query("modality == 'ecg_waveform'")
    assert np.allclose(pred.query("modality == 'ecg_waveform'")["score"], ecg["score"])


def test_named_modality_without_labels_fails(trained: tuple[Path, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    data, _ = trained
    rc = main(["baselines", "train", "--data", str(data), "--out", str(tmp_path / "r"),
               "--modalities", "echo_video", "--no-progress", "--device", "cpu"])
    assert rc == 2 and "echo_video" in capsys.readouterr().err


def test_scored_by_the_supervised_task(trained: tuple[Path, Path]) -> None:
    from clerc.evaluate.embeddings import Embeddings, normalize_rows
    from clerc.evaluate.registry import Context, load_tasks

    data, runs = trained
    manifest = read_manifest(data)
    vectors = normalize_rows(np.random.default_rng(0).normal(size=(len(manifest.samples), 8)))
    emb = Embeddings(manifest.samples, vectors, [], np.zeros((0, 8), np.float32), 1.0)
    ctx = Context(emb, manifest, n_resamples=50,
                  supervised=pd.read_parquet(runs / "predictions.parquet"))
    records = load_tasks().get("supervised").run(ctx)
    sup = {(r.table, r.task, r.modality, r.metric): r for r in records
           if r.setting == "supervised"}
    assert sup[("table4", "rbbb", "ecg_waveform", "auroc")].value > 0.9
    assert sup[("table4", "edema", "cxr_image", "auroc")].value > 0.9
    assert sup[("table5", "age", "cxr_image", "r2")].n == 12
    assert {r.setting for r in records} == {"supervised", "difference"}
