"""Transforms: shapes, dtypes, frame indices and crop ranges."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from clerc.data.transforms import (
    clip_offsets,
    clip_span,
    clip_starts,
    crop_sector_square,
    ecg_crop,
    image_crop,
    image_to_base,
    keep_sentences,
    sector_box,
    split_sentences,
    to_native,
    video_clip,
    video_clips_covering,
)


def numbered_video(n: int, size: int = 112) -> np.ndarray:
    """Frame t is filled with the value t (so a clip's frame indices can be read back)."""
    return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None], (n, size, size)).copy()


def test_eval_clip_is_centred_every_other_frame():
    clip = video_clip(numbered_video(60), fps=30, train=False)
    assert clip.shape == (16, 112, 112) and clip.dtype == np.uint8
    start = (60 - 31) // 2
    np.testing.assert_array_equal(clip[:, 0, 0], start + 2 * np.arange(16))


def test_explicit_start_and_short_video_loops():
    clip = video_clip(numbered_video(10), fps=30, train=False, start=0)
    np.testing.assert_array_equal(clip[:, 50, 50], (2 * np.arange(16)) % 10)


def test_train_clip_random_start_and_pad_crop_range():
    rng = np.random.default_rng(0)
    frames = np.full((40, 112, 112), 200, np.uint8)
    starts, shifts = set(), set()
    for _ in range(200):
        clip = video_clip(frames, fps=30, train=True, rng=rng)
        assert clip.shape == (16, 112, 112) and clip.dtype == np.uint8
        black_rows = np.flatnonzero(clip[0, :, 56] == 0)
        black_cols = np.flatnonzero(clip[0, 56, :] == 0)
        assert len(black_rows) <= 12 and len(black_cols) <= 12  # at most the 12 px pad
        shifts.add((len(black_rows), len(black_cols)))
    numbered = numbered_video(40)
    for _ in range(100):
        starts.add(int(video_clip(numbered, fps=30, train=True, rng=rng, pad=0)[0, 0, 0]))
    assert starts <= set(range(0, 40 - 31 + 1)) and len(starts) > 5
    assert (0, 0) in shifts and max(r for r, _ in shifts) == 12


def test_train_pad_crop_shifts_content():
    frames = np.zeros((16, 112, 112), np.uint8)
    frames[:, 50, 60] = 255
    clip = video_clip(frames, fps=15, train=True, rng=np.random.default_rng(3))
    r, c = np.argwhere(clip[0] == 255)[0]
    assert abs(r - 50) <= 12 and abs(c - 60) <= 12
    assert (clip == 255).sum() == 16


def test_clip_resizes_to_config_size_and_frames():
    clip = video_clip(numbered_video(30, size=112), fps=30, frames_out=8, size=64,
                      train=False)
    assert clip.shape == (8, 64, 64)


def test_train_needs_rng():
    with pytest.raises(ValueError, match="needs an rng"):
        video_clip(numbered_video(20), fps=30, train=True)


def test_clips_covering_whole_video():
    starts = clip_starts(100, fps=30)
    assert starts[0] == 0 and starts[-1] == 100 - 31
    assert np.all(np.diff(starts) <= 32)
    clips = video_clips_covering(numbered_video(100), fps=30)
    assert clips.shape == (len(starts), 16, 112, 112) and clips.dtype == np.uint8
    np.testing.assert_array_equal(clips[:, 0, 0, 0], starts)
    assert video_clips_covering(numbered_video(20), fps=30).shape[0] == 1
    assert clip_starts(1000, fps=30, max_clips=3).tolist() == [0, 484, 969]


def test_clip_offsets_sample_by_time():
    """16 frames at 15 frames/s: the frame nearest k / 15 s at any native rate."""
    np.testing.assert_array_equal(clip_offsets(16, 30.0), 2 * np.arange(16))  # the paper's rule
    np.testing.assert_array_equal(clip_offsets(16, 15.0), np.arange(16))
    np.testing.assert_array_equal(clip_offsets(4, 7.5), [0, 1, 1, 2])
    fifty = clip_offsets(16, 50.0)
    np.testing.assert_array_equal(fifty[:5], [0, 3, 7, 10, 13])
    # slow reference in exact arithmetic: the frame whose time is nearest k / 15 s (a tie
    # goes to the later frame)
    for fps in (7.5, 12.5, 15.0, 24.0, 29.97, 30.0, 50.0, 60.0, 73.0):
        f = Fraction(str(fps))
        want = [min(range(400), key=lambda i, k=k: (abs(i / f - Fraction(k, 15)), -i))
                for k in range(16)]
        np.testing.assert_array_equal(clip_offsets(16, fps), want, err_msg=f"fps={fps}")
    for fps in (15.0, 30.0, 50.0, 7.5):  # the clip covers the same 15/15 s at every rate
        assert abs((clip_span(16, fps) - 1) / fps - 1.0) <= 0.5 / fps


def test_clip_at_50_fps_covers_the_30_fps_span():
    """A 50 fps re-encode gives a clip of the same moments as the 30 fps original."""
    t30, t50 = np.arange(90) / 30.0, np.arange(150) / 50.0
    v30 = np.broadcast_to(np.rint(t30 * 60).astype(np.uint8)[:, None, None], (90, 8, 8)).copy()
    v50 = np.broadcast_to(np.rint(t50 * 60).astype(np.uint8)[:, None, None], (150, 8, 8)).copy()
    a = video_clip(v30, fps=30, train=False, start=0, size=8)[:, 0, 0].astype(int)
    b = video_clip(v50, fps=50, train=False, start=0, size=8)[:, 0, 0].astype(int)
    assert np.abs(a - b).max() <= 1  # times in 1/60 s units: within one 50 fps frame
    assert clip_starts(150, fps=50)[-1] == 150 - clip_span(16, 50)


def test_clip_rejects_bad_rates():
    with pytest.raises(ValueError, match="positive frame rates"):
        video_clip(numbered_video(20), fps=0.0, train=False)


def test_crop_sector_square():
    frames = np.zeros((4, 300, 400), np.uint8)
    frames[:, 50:250, 120:280] = 90  # a 200 x 160 sector
    out = crop_sector_square(frames)
    assert out.shape == (4, 112, 112) and out.dtype == np.uint8
    assert sector_box(frames) == (50, 250, 120, 280)
    # square side = 200 rows -> columns 160/200 of the square are bright, centred
    bright_cols = np.flatnonzero(out[0, 56] > 45)
    assert 85 <= len(bright_cols) <= 95
    assert abs((bright_cols[0] + bright_cols[-1]) / 2 - 55.5) <= 1.5
    assert np.all(out[0, :, 56] > 45)


def test_crop_sector_at_frame_edge_and_dark_video():
    frames = np.zeros((2, 100, 100), np.uint8)
    frames[:, 0:20, 0:80] = 100  # wide sector touching the top edge: padded with black
    out = crop_sector_square(frames, size=40)
    assert out.shape == (2, 40, 40)
    assert np.all(out[0, :5] == 0) and out[0, 20, 20] == 100
    assert crop_sector_square(np.zeros((2, 50, 70), np.uint8)).shape == (2, 112, 112)


def test_ecg_crop():
    sig = np.arange(5000, dtype=np.float32)[None].repeat(12, 0)
    centre = ecg_crop(sig, train=False)
    assert centre.shape == (12, 2500) and centre.dtype == np.float32 and centre[0, 0] == 1250
    rng = np.random.default_rng(0)
    firsts = {int(ecg_crop(sig, train=True, rng=rng)[0, 0]) for _ in range(50)}
    assert min(firsts) >= 0 and max(firsts) <= 2500 and len(firsts) > 40
    short = ecg_crop(sig[:, :100], length=200, train=False)
    assert short.shape == (12, 200) and np.all(short[:, 100:] == 0)


def test_image_crop():
    img = np.arange(256 * 256, dtype=np.int64).reshape(256, 256).astype(np.uint8)
    centre = image_crop(img, train=False)
    assert centre.shape == (224, 224) and centre.dtype == np.uint8
    np.testing.assert_array_equal(centre, img[16:240, 16:240])
    rng = np.random.default_rng(0)
    for _ in range(20):
        crop = image_crop(img, train=True, rng=rng)
        found = [(i, j) for i in range(33) for j in range(33)
                 if np.array_equal(img[i:i + 224, j:j + 224], crop)]
        assert found
    big = np.full((600, 400), 7, np.uint8)
    assert image_to_base(big).shape == (256, 256)
    assert image_crop(big, size=64, train=False, base=96).shape == (64, 64)


def test_to_native():
    assert to_native("echo_video", numbered_video(3)).shape == (3, 112, 112)
    wide = np.full((3, 200, 300), 50, np.uint8)
    assert to_native("echo_video", wide).shape == (3, 112, 112)
    assert to_native("angio_video", wide).shape == (3, 112, 112)
    assert to_native("cxr_image", wide[0]).shape == (256, 256)
    with pytest.raises(ValueError, match="not a diagnostic modality"):
        to_native("echo_text", wide)


def test_the_synthetic_30_fps_echo_gives_the_same_clips_as_every_other_frame(tmp_path):
    """The demo's echoes are written at 30 fps: time-based sampling changes none of their
    clips (the old rule: a random start, then every other frame)."""
    from clerc.data.readers import read_video
    from clerc.data.transforms import _pad_random_crop, resize_frames
    from clerc.synthetic import echo
    from clerc.synthetic.files import write_avi
    from clerc.train.config import TrainConfig
    from clerc.train.data import Video, make_view, sample_spec

    write_avi(tmp_path / "e.avi", numbered_video(48), echo.FPS)
    frames, fps = read_video(tmp_path / "e.avi")
    assert fps == 30.0
    spec = sample_spec(TrainConfig.tiny().model)
    pad = round(12 * spec.video_size / 112)
    for seed in range(5):
        got = make_view("echo_video", Video(frames, fps), spec, train=True,
                        rng=np.random.default_rng(seed))
        rng = np.random.default_rng(seed)  # the old rule, drawn from the same generator
        n, f = len(frames), spec.video_frames
        start = int(rng.integers(0, n - (2 * (f - 1) + 1) + 1))
        old = resize_frames(frames[(start + 2 * np.arange(f)) % n], spec.video_size,
                            spec.video_size)
        np.testing.assert_array_equal(got, _pad_random_crop(old, pad, spec.video_size, rng))


REPORT = ("Pacemaker.\nAbnormal ECG.\nVent. rate 60 BPM. PR interval 159 ms. "
          "Conclusion: 1. LAD had an occlusion. QRS axis -78.")


def test_split_sentences_keeps_abbreviations_and_line_breaks():
    assert split_sentences(REPORT) == [
        "Pacemaker.", "Abnormal ECG.", "Vent. rate 60 BPM.", "PR interval 159 ms.",
        "Conclusion: 1.", "LAD had an occlusion.", "QRS axis -78."]
    assert split_sentences("  One sentence only  ") == ["One sentence only"]
    assert split_sentences("") == []


def test_keep_sentences_keeps_order_about_keep_of_them_and_never_none():
    rng = np.random.default_rng(0)
    whole = split_sentences(REPORT)
    kept = []
    for _ in range(2000):
        out = split_sentences(keep_sentences(REPORT, 0.3, rng))
        assert out and all(s in whole for s in out)
        assert [whole.index(s) for s in out] == sorted(whole.index(s) for s in out)
        kept.append(len(out))
    # each of 7 sentences kept with p 0.3; an empty draw keeps one (p 0.7**7 = 0.082)
    assert np.mean(kept) == pytest.approx(7 * 0.3 + 0.7**7, abs=0.1)
    assert keep_sentences(REPORT, 1.0, rng) == REPORT
    assert keep_sentences("Pacemaker.", 0.01, rng) == "Pacemaker."
    with pytest.raises(ValueError, match="keep must be in"):
        keep_sentences(REPORT, 0.0, rng)


def test_text_keep_reaches_training_views_only():
    from clerc.data.inputs import make_view, sample_spec
    from clerc.model.config import ModelConfig

    spec = sample_spec(ModelConfig.tiny())._replace(text_keep=0.3)
    rng = np.random.default_rng(1)
    full = make_view("ecg_text", REPORT, spec, train=False, rng=rng)
    trained = [make_view("ecg_text", REPORT, spec, train=True, rng=rng) for _ in range(5)]
    assert any(not np.array_equal(v, full) for v in trained)
    assert all((v != 0).sum() < (full != 0).sum() for v in trained
               if not np.array_equal(v, full))
    plain = sample_spec(ModelConfig.tiny())
    assert np.array_equal(make_view("ecg_text", REPORT, plain, train=True, rng=rng), full)
