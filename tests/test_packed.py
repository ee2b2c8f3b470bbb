"""Packed shards: round trip equal to the readers, resume, --skip-bad, CLI exit codes."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clerc.cli import main
from clerc.data.manifest import read_manifest, write_manifest
from clerc.data.packed import PackedStore, open_store, prepare, read_prepared
from clerc.data.readers import load_sample
from clerc.data.transforms import to_native
from tests.test_readers import ecg_signal, moving_square_video, write_avi, write_wfdb


def write_cohort(root: Path) -> Path:
    """Echo AVIs (112 and 48x64), WFDB ECGs (MIMIC order, 250 Hz), PNG CXRs, text."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(3):
        size = (112, 112) if i < 2 else (48, 64)
        frames = moving_square_video(n=10 + i, h=size[0], w=size[1])
        write_avi(root / f"echo{i}.avi", frames)
        rows.append((f"p{i}", "echo_video", f"echo{i}.avi", None))
        write_wfdb(root, f"ecg{i}", ecg_signal(n=2500, fs=250) * (i + 1),
                   ["I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"],
                   fs=250)
        rows.append((f"p{i}", "ecg_waveform", f"ecg{i}", None))
        Image.fromarray(np.full((300, 260), 40 * i, np.uint8)).save(root / f"cxr{i}.png")
        rows.append((f"p{i}", "cxr_image", f"cxr{i}.png", None))
        rows.append((f"p{i}", "ecg_text", None, f"report {i}"))
    samples = pd.DataFrame([
        {"patient_id": p, "study_id": f"st{k}", "sample_id": f"s{k}", "modality": m,
         "acquired_at": "2021-05-01", "path": path, "text": text, "split": "train"}
        for k, (p, m, path, text) in enumerate(rows)])
    return write_manifest(root, samples, pd.DataFrame(), pd.DataFrame())


def test_round_trip_equals_readers(tmp_path):
    root = write_cohort(tmp_path / "m")
    report = prepare(root, shard_size=2, progress=False)
    assert report.complete and not report.failures and report.n_samples == 9
    store = open_store(root)
    man = read_manifest(root)
    assert len(store) == 9
    for _, row in man.samples.iterrows():
        if row["modality"] == "ecg_text":
            assert row["sample_id"] not in store
            continue
        got = store.load(row["sample_id"])
        want = to_native(row["modality"], load_sample(man, row))
        assert store.modality_of(row["sample_id"]) == row["modality"]
        assert got.dtype == want.dtype and got.shape == want.shape
        if row["modality"] == "ecg_waveform":
            np.testing.assert_allclose(got, want, atol=0.0005)  # stored as int16 uV
        else:
            np.testing.assert_array_equal(got, want)
    assert store.load("s1").shape == (12, 5000)
    assert store.load("s8").shape == (12, 112, 112)  # 48x64 echo: sector-cropped to 112
    assert store.load("s2").shape == (256, 256)
    with pytest.raises(KeyError, match="s3"):
        store.load("s3")  # text is never packed


def test_store_pickles_without_maps(tmp_path):
    root = write_cohort(tmp_path / "m")
    prepare(root, progress=False)
    store = PackedStore(root / "packed")
    a = store.load("s0")
    clone = pickle.loads(pickle.dumps(store))
    assert len(pickle.dumps(store)) < 10_000
    np.testing.assert_array_equal(clone.load("s0"), a)


def test_resume_skips_finished_shards(tmp_path):
    root = write_cohort(tmp_path / "m")
    first = prepare(root, shard_size=2, progress=False)
    shard = root / "packed" / "echo_video-00000.bin"
    mtime = shard.stat().st_mtime_ns
    (root / "packed" / "parts" / "cxr_image-00001.parquet").unlink()  # an interrupted shard
    second = prepare(root, shard_size=2, progress=False)
    assert second.complete and second.n_resumed == first.n_shards - 1
    assert shard.stat().st_mtime_ns == mtime
    assert len(PackedStore(root / "packed")) == 9
    write_avi(root / "echo2.avi", moving_square_video(n=5, h=112, w=112))  # a changed file
    again = prepare(root, shard_size=2, progress=False)
    assert again.n_resumed == first.n_shards - 1
    assert PackedStore(root / "packed").load("s8").shape == (5, 112, 112)
    third = prepare(root, shard_size=3, progress=False)  # a new plan redoes everything
    assert third.n_resumed == 0 and len(PackedStore(root / "packed")) == 9


def test_bad_sample_fails_unless_skip_bad(tmp_path, capsys):
    root = write_cohort(tmp_path / "m")
    data = (root / "echo1.avi").read_bytes()
    (root / "echo1.avi").write_bytes(data[: len(data) // 2])
    assert main(["prepare", str(root), "--shard-size", "2"]) == 1
    err = capsys.readouterr().err
    assert "echo1.avi" in err and "1 failed" in err
    assert open_store(root) is None  # no index until every shard is finished
    assert main(["prepare", str(root), "--shard-size", "2", "--skip-bad"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "failed.parquet" in err and "leave them out" in err  # says what happens next
    store = open_store(root)
    assert "s4" not in store and "s0" in store and len(store) == 8
    failed = pd.read_parquet(root / "packed" / "failed.parquet")
    assert failed["sample_id"].tolist() == ["s4"]
    said: list[str] = []
    every = len(read_manifest(root).samples)
    manifest, store = read_prepared(root, log=said.append)  # what train/embed/baselines see
    assert "s4" not in set(manifest.samples["sample_id"]) and len(manifest.samples) == every - 1
    assert len(said) == 1 and said[0].startswith("1 samples") and "failed.parquet" in said[0]
    write_avi(root / "echo1.avi", moving_square_video(n=11, h=112, w=112))
    report = prepare(root, shard_size=2, progress=False)  # without skip_bad: retried
    assert report.complete and not report.failures and "s4" in open_store(root)
    manifest, _ = read_prepared(root, log=said.append)
    assert "s4" in set(manifest.samples["sample_id"]) and len(said) == 1


def test_workers_and_out_dir(tmp_path):
    root = write_cohort(tmp_path / "m")
    out = tmp_path / "elsewhere"
    assert main(["prepare", str(root), "--out", str(out), "--workers", "2",
                 "--shard-size", "4"]) == 0
    store = PackedStore(out)
    assert len(store) == 9 and store.load("s5").shape == (12, 5000)


def test_frame_rates_are_kept_in_the_index_and_clips_follow_them(tmp_path):
    """A 15 fps, a 30 fps and a 50 fps video: the index keeps each rate, and loading from
    the store gives the same clips as decoding the files (time-based sampling)."""
    from clerc.train.data import SampleSpec, load_input, make_view

    root = tmp_path / "m"
    root.mkdir()
    rows = []
    for k, fps in enumerate((15, 30, 50)):
        write_avi(root / f"v{k}.avi", moving_square_video(n=60, h=112, w=112), fps=fps)
        rows.append({"patient_id": f"p{k}", "study_id": f"st{k}", "sample_id": f"s{k}",
                     "modality": "echo_video", "acquired_at": "2021-05-01",
                     "path": f"v{k}.avi", "text": None, "split": "train"})
    write_manifest(root, pd.DataFrame(rows), pd.DataFrame(), pd.DataFrame())
    man = read_manifest(root)
    before = [load_input(man, r, None) for r in man.samples.to_dict("records")]
    prepare(root, progress=False)
    store = open_store(root)
    assert [store.fps(f"s{k}") for k in range(3)] == [15.0, 30.0, 50.0]
    assert pd.read_parquet(root / "packed/index.parquet")["fps"].tolist() == [15.0, 30.0, 50.0]
    spec = SampleSpec(video_frames=16, video_size=112, ecg_length=2500, image_size=224,
                      context_length=77)
    for r, raw in zip(man.samples.to_dict("records"), before, strict=True):
        packed = load_input(man, r, store)
        assert packed.fps == raw.fps
        np.testing.assert_array_equal(make_view("echo_video", packed, spec, train=False, rng=None),
                                      make_view("echo_video", raw, spec, train=False, rng=None))


def test_an_index_without_frame_rates_asks_for_prepare(tmp_path):
    root = write_cohort(tmp_path / "m")
    prepare(root, progress=False)
    index = pd.read_parquet(root / "packed/index.parquet").drop(columns="fps")
    index.to_parquet(root / "packed/index.parquet", index=False)
    with pytest.raises(ValueError, match="without frame rates; run `clerc prepare` again"):
        PackedStore(root / "packed")
    for part in (root / "packed/parts").glob("*.parquet"):  # an old run's parts
        pd.read_parquet(part).drop(columns="fps").to_parquet(part, index=False)
    assert prepare(root, progress=False).n_resumed == 0  # re-decoded, not resumed
    assert PackedStore(root / "packed").fps("s0") == 30.0
