"""Readers round-trip fixtures written in the true formats; broken files name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clerc.data.manifest import write_manifest
from clerc.data.readers import (
    DEFAULT_FPS,
    NoFrameRateWarning,
    ReaderError,
    is_flat,
    load_sample,
    read_ecg,
    read_image,
    read_text,
    read_video,
)
from clerc.modalities import ECG_LEADS

MIMIC_ORDER = ["I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"]


# --------------------------------------------------------------------------- writers
def moving_square_video(n: int = 20, h: int = 48, w: int = 64) -> np.ndarray:
    """uint8 (n, h, w): a bright square moving over a dark ramp (compresses well)."""
    frames = np.tile(np.linspace(0, 60, w, dtype=np.uint8), (n, h, 1))
    for t in range(n):
        frames[t, 8:24, 2 + 2 * t: 18 + 2 * t] = 220
    return frames


def write_avi(path: Path, frames: np.ndarray, fps: int = 30, codec: str = "mjpeg") -> Path:
    """Write grayscale frames with PyAV (MJPG AVI by default)."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.height, s.width = frames.shape[1:]
        s.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="gray")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def write_dicom(path: Path, arr: np.ndarray, *, rgb: bool = False, **tags: object) -> Path:
    """An uncompressed Explicit VR Little Endian DICOM (multi-frame when arr has frames)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1"  # US multi-frame
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = arr.shape[-3:-1] if rgb else arr.shape[-2:]
    ds.SamplesPerPixel = 3 if rgb else 1
    ds.PhotometricInterpretation = "RGB" if rgb else "MONOCHROME2"
    if rgb:
        ds.PlanarConfiguration = 0
    bits = 8 * arr.dtype.itemsize
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    if arr.ndim == (4 if rgb else 3):
        ds.NumberOfFrames = arr.shape[0]
    for k, v in tags.items():
        setattr(ds, k, v)
    ds.PixelData = arr.tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return path


def ecg_signal(n: int = 5000, fs: float = 500.0) -> np.ndarray:
    """(12, n) mV: lead k is a sine of frequency 1 + k/4 Hz and amplitude 0.1 (k + 1)."""
    t = np.arange(n) / fs
    return np.stack([0.1 * (k + 1) * np.sin(2 * np.pi * (1 + k / 4) * t) for k in range(12)])


def write_wfdb(directory: Path, name: str, sig_mv: np.ndarray, names: list[str], *,
               fs: float = 500, gain: float = 200.0, units: str = "mV") -> Path:
    """Write ``sig_mv`` (12, n, lead order = ECG_LEADS) in the order ``names`` with wfdb."""
    import wfdb

    order = [[lead.lower() for lead in ECG_LEADS].index(n.lower()) for n in names]
    factor = {"mV": 1.0, "uV": 1000.0}[units]
    wfdb.wrsamp(name, fs=fs, units=[units] * 12, sig_name=names,
                p_signal=(sig_mv[order] * factor).T, fmt=["16"] * 12, adc_gain=[gain] * 12,
                baseline=[0] * 12, write_dir=str(directory))
    return directory / f"{name}.hea"


def truncate(path: Path, fraction: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


# --------------------------------------------------------------------------- video
def test_avi_round_trip(tmp_path):
    frames = moving_square_video()
    got, fps = read_video(write_avi(tmp_path / "v.avi", frames, fps=25))
    assert got.dtype == np.uint8 and got.shape == frames.shape
    assert fps == pytest.approx(25.0)
    assert np.abs(got.astype(int) - frames).mean() < 4  # lossy MJPG


def test_mp4_round_trip(tmp_path):
    frames = moving_square_video(n=12, h=48, w=64)
    got, fps = read_video(write_avi(tmp_path / "v.mp4", frames, fps=30, codec="mpeg4"))
    assert got.shape == frames.shape and fps == pytest.approx(30.0)


def test_truncated_and_corrupt_avi(tmp_path):
    path = truncate(write_avi(tmp_path / "t.avi", moving_square_video(n=30)))
    with pytest.raises(ReaderError, match=r"t\.avi.*truncated"):
        read_video(path)
    (tmp_path / "c.avi").write_bytes(b"RIFF" + bytes(range(256)) * 20)
    with pytest.raises(ReaderError, match=r"c\.avi"):
        read_video(tmp_path / "c.avi")


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(ReaderError, match=r"nope\.avi: file not found"):
        read_video(tmp_path / "nope.avi")
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(ReaderError, match=r"e\.png: file is empty"):
        read_image(tmp_path / "e.png")
    with pytest.raises(ReaderError, match=r"v\.gif.*unsupported"):
        read_video(tmp_path / "v.gif")


def test_dicom_cine_frame_time_rgb(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (6, 20, 24, 3), dtype=np.uint8)
    got, fps = read_video(write_dicom(tmp_path / "c.dcm", rgb, rgb=True, FrameTime=20.0))
    assert got.shape == (6, 20, 24) and got.dtype == np.uint8 and fps == pytest.approx(50.0)
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    assert np.abs(got - luma).max() <= 1


def test_dicom_cine_rate_and_16_bit(tmp_path):
    gray = (np.arange(4 * 8 * 8, dtype=np.uint16).reshape(4, 8, 8) * 255)
    got, fps = read_video(write_dicom(tmp_path / "c.dcm", gray, CineRate=30))
    assert fps == pytest.approx(30.0)
    np.testing.assert_array_equal(got, np.rint(gray / 257.0).astype(np.uint8))


def test_dicom_still_and_missing_timing(tmp_path):
    still = np.full((10, 12), 77, dtype=np.uint8)
    frames, fps = read_video(write_dicom(tmp_path / "s.dcm", still))
    assert frames.shape == (1, 10, 12) and fps == 0.0
    np.testing.assert_array_equal(read_image(tmp_path / "s.dcm"), still)
    write_dicom(tmp_path / "m.dcm", np.zeros((3, 4, 4), np.uint8))
    with pytest.warns(NoFrameRateWarning, match=r"m\.dcm: multi-frame DICOM without FrameTime"
                      r".*assuming 30 fps"):
        assert read_video(tmp_path / "m.dcm")[1] == DEFAULT_FPS == 30.0


def test_default_fps_is_overridable(tmp_path, monkeypatch):
    write_dicom(tmp_path / "m.dcm", np.zeros((3, 4, 4), np.uint8))
    np.save(tmp_path / "v.npy", np.zeros((3, 4, 4), np.uint8))
    monkeypatch.setenv("CLERC_DEFAULT_FPS", "50")
    with pytest.warns(NoFrameRateWarning, match="assuming 50 fps"):
        assert read_video(tmp_path / "m.dcm")[1] == 50.0
    with pytest.warns(NoFrameRateWarning, match=r"\.npy videos carry no frame rate"):
        assert read_video(tmp_path / "v.npy")[1] == 50.0
    monkeypatch.setenv("CLERC_DEFAULT_FPS", "fast")
    with pytest.raises(ReaderError, match="CLERC_DEFAULT_FPS='fast'"):
        read_video(tmp_path / "m.dcm")


def test_corrupt_and_truncated_dicom(tmp_path):
    path = write_dicom(tmp_path / "t.dcm", np.ones((5, 16, 16), np.uint8), FrameTime=33.3)
    with pytest.raises(ReaderError, match=r"t\.dcm: cannot decode DICOM"):
        read_video(truncate(path))
    (tmp_path / "c.dcm").write_bytes(b"not a dicom file at all")
    with pytest.raises(ReaderError, match=r"c\.dcm: cannot decode DICOM"):
        read_video(tmp_path / "c.dcm")


def test_npy_video(tmp_path):
    frames = moving_square_video(n=5)
    np.save(tmp_path / "v.npy", frames)
    got, fps = read_video(tmp_path / "v.npy")
    np.testing.assert_array_equal(got, frames)
    assert fps == 30.0
    np.save(tmp_path / "bad.npy", frames.astype(np.float32))
    with pytest.raises(ReaderError, match=r"bad\.npy: expected a uint8 video"):
        read_video(tmp_path / "bad.npy")
    truncate(tmp_path / "v.npy")
    with pytest.raises(ReaderError, match=r"v\.npy: not a readable \.npy"):
        read_video(tmp_path / "v.npy")


# --------------------------------------------------------------------------- ECG
def test_wfdb_mimic_lead_order(tmp_path):
    sig = ecg_signal()
    got = read_ecg(write_wfdb(tmp_path, "mimic", sig, MIMIC_ORDER))
    assert got.shape == (12, 5000) and got.dtype == np.float32
    np.testing.assert_allclose(got, sig, atol=0.003)  # 1/200 mV quantisation
    got_rec = read_ecg(tmp_path / "mimic")  # the record path without suffix
    np.testing.assert_array_equal(got, got_rec)


@pytest.mark.parametrize(("gain", "units"), [(1000.0, "mV"), (200.0, "mV"), (1.0, "uV")])
def test_wfdb_ptbxl_upper_case_gain_units(tmp_path, gain, units):
    sig = ecg_signal()
    names = [n.upper() for n in ECG_LEADS]  # PTB-XL writes AVR, AVL, AVF
    got = read_ecg(write_wfdb(tmp_path, "ptb", sig, names, gain=gain, units=units))
    np.testing.assert_allclose(got, sig, atol=0.003)


def test_wfdb_resampled_to_500_hz_and_padded(tmp_path):
    sig100 = ecg_signal(n=1000, fs=100)  # 10 s at 100 Hz (PTB-XL lr)
    got = read_ecg(write_wfdb(tmp_path, "lr", sig100, list(ECG_LEADS), fs=100, gain=1000))
    ref = ecg_signal(n=5000, fs=500)
    np.testing.assert_allclose(got[:, 200:4800], ref[:, 200:4800], atol=0.02)
    short = read_ecg(write_wfdb(tmp_path, "short", ecg_signal(n=2000), list(ECG_LEADS)))
    assert np.all(short[:, 2000:] == 0) and not is_flat(short)
    long = read_ecg(write_wfdb(tmp_path, "long", ecg_signal(n=6000), list(ECG_LEADS)))
    np.testing.assert_allclose(long, ecg_signal(n=5000), atol=0.003)


def test_wfdb_errors_name_the_file(tmp_path):
    import wfdb

    wfdb.wrsamp("nine", fs=500, units=["mV"] * 12, sig_name=[*ECG_LEADS[:9], "X", "Y", "Z"],
                p_signal=ecg_signal().T, fmt=["16"] * 12, adc_gain=[200.0] * 12,
                baseline=[0] * 12, write_dir=str(tmp_path))
    with pytest.raises(ReaderError, match=r"nine\.hea: leads V4, V5, V6 not found"):
        read_ecg(tmp_path / "nine.hea")
    truncate(tmp_path / write_wfdb(tmp_path, "trunc", ecg_signal(), list(ECG_LEADS))
             .with_suffix(".dat"))
    with pytest.raises(ReaderError, match=r"trunc\.hea: cannot read WFDB"):
        read_ecg(tmp_path / "trunc.hea")
    (tmp_path / "bad.hea").write_text("this is not a header\n")
    with pytest.raises(ReaderError, match=r"bad\.hea: cannot read WFDB"):
        read_ecg(tmp_path / "bad.hea")
    write_wfdb(tmp_path, "nodat", ecg_signal(), list(ECG_LEADS)).with_suffix(".dat").unlink()
    with pytest.raises(ReaderError, match=r"nodat\.hea: a file of the record is missing"):
        read_ecg(tmp_path / "nodat.hea")
    with pytest.raises(ReaderError, match=r"absent\.hea: file not found"):
        read_ecg(tmp_path / "absent")


def test_wfdb_nan_becomes_zero_and_flat(tmp_path):
    import wfdb

    sig = ecg_signal()
    write_wfdb(tmp_path, "nan", sig, list(ECG_LEADS))
    rec = wfdb.rdrecord(str(tmp_path / "nan"), physical=False)
    rec.d_signal[100:200, 3] = -32768  # WFDB's invalid-sample marker for format 16
    rec.wrsamp(write_dir=str(tmp_path))
    got = read_ecg(tmp_path / "nan.hea")
    assert np.all(got[3, 100:200] == 0) and np.isfinite(got).all()
    assert is_flat(np.zeros((12, 5000))) and is_flat(np.full((12, 10), np.nan))
    assert not is_flat(got)


def test_npy_ecg(tmp_path):
    np.save(tmp_path / "e.npy", ecg_signal(n=4000).astype(np.float64))
    got = read_ecg(tmp_path / "e.npy")
    assert got.shape == (12, 5000) and got.dtype == np.float32
    np.save(tmp_path / "t.npy", ecg_signal().T)
    with pytest.raises(ReaderError, match=r"t\.npy: expected an ECG array of shape \(12, L\)"):
        read_ecg(tmp_path / "t.npy")


# --------------------------------------------------------------------------- image, text
@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_image_round_trip(tmp_path, suffix):
    from PIL import Image

    img = np.tile(np.arange(0, 240, 4, dtype=np.uint8), (40, 1))
    Image.fromarray(np.stack([img] * 3, axis=-1)).save(tmp_path / f"i{suffix}")
    got = read_image(tmp_path / f"i{suffix}")
    assert got.shape == (40, 60) and got.dtype == np.uint8
    assert np.abs(got.astype(int) - img).max() <= (0 if suffix == ".png" else 8)


def test_16_bit_png_and_corrupt_images(tmp_path):
    from PIL import Image

    img16 = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    Image.fromarray(img16).save(tmp_path / "d.png")
    np.testing.assert_array_equal(read_image(tmp_path / "d.png"),
                                  np.rint(img16 / 257).astype(np.uint8))
    Image.fromarray(np.full((64, 64), 9, np.uint8)).save(tmp_path / "t.jpg")
    with pytest.raises(ReaderError, match=r"t\.jpg: cannot decode image"):
        read_image(truncate(tmp_path / "t.jpg", 0.3))
    (tmp_path / "c.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(ReaderError, match=r"c\.png: cannot decode image"):
        read_image(tmp_path / "c.png")


def test_text(tmp_path):
    (tmp_path / "r.txt").write_text("  Normal sinus rhythm.\n", encoding="utf-8")
    assert read_text(tmp_path / "r.txt") == "Normal sinus rhythm."
    (tmp_path / "b.txt").write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(ReaderError, match=r"b\.txt: not UTF-8"):
        read_text(tmp_path / "b.txt")
    (tmp_path / "w.txt").write_text("  \n")
    with pytest.raises(ReaderError, match=r"w\.txt: report is blank"):
        read_text(tmp_path / "w.txt")


# --------------------------------------------------------------------------- dispatch
def test_load_sample_dispatches_on_kind(tmp_path):
    from PIL import Image

    from clerc.data.manifest import read_manifest

    write_avi(tmp_path / "v.avi", moving_square_video(n=8))
    write_wfdb(tmp_path, "e", ecg_signal(), MIMIC_ORDER)
    Image.fromarray(np.full((30, 30), 5, np.uint8)).save(tmp_path / "x.png")
    (tmp_path / "r.txt").write_text("report from file")
    rows = [("echo_video", "v.avi", None), ("ecg_waveform", "e", None),
            ("cxr_image", "x.png", None), ("ecg_text", "r.txt", None),
            ("echo_text", None, "inline report")]
    samples = pd.DataFrame([
        {"patient_id": "p", "study_id": f"s{i}", "sample_id": f"x{i}", "modality": m,
         "acquired_at": "2020-01-01", "path": p, "text": t, "split": "train"}
        for i, (m, p, t) in enumerate(rows)])
    man = read_manifest(write_manifest(tmp_path, samples, pd.DataFrame(), pd.DataFrame()))
    got = [load_sample(man, r) for _, r in man.samples.iterrows()]
    assert got[0].shape == (8, 48, 64) and got[1].shape == (12, 5000)
    assert got[2].shape == (30, 30)
    assert got[3:] == ["report from file", "inline report"]
    with pytest.raises(ReaderError, match="has no path"):
        load_sample(man, {"sample_id": "z", "modality": "echo_video", "path": pd.NA})


def _fixture(tmp_path: Path, suffix: str) -> tuple[Path, object]:
    """A valid file of the format and the reader for it."""
    from PIL import Image

    path = tmp_path / f"f{suffix}"
    if suffix in (".avi", ".mp4"):
        write_avi(path, moving_square_video(n=30), codec="mjpeg" if suffix == ".avi" else "mpeg4")
        return path, read_video
    if suffix == ".dcm":
        return write_dicom(path, np.ones((5, 32, 32), np.uint8), FrameTime=33.3), read_video
    if suffix == ".npy":
        np.save(path, moving_square_video(n=5))
        return path, read_video
    if suffix == ".hea":
        return write_wfdb(tmp_path, "f", ecg_signal(), list(ECG_LEADS)), read_ecg
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8)).save(path)
    return path, read_image


@pytest.mark.parametrize("suffix", [".avi", ".mp4", ".dcm", ".npy", ".hea", ".png", ".jpg"])
def test_every_format_truncated_or_corrupt_names_the_file(tmp_path, suffix):
    path, reader = _fixture(tmp_path, suffix)
    reader(path)  # the intact file reads
    target = path.with_suffix(".dat") if suffix == ".hea" else path
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 3])
    with pytest.raises(ReaderError, match=path.name.replace(".", r"\.")):
        reader(path)
    rng = np.random.default_rng(1)
    target.write_bytes(data[:16] + rng.integers(0, 256, 200, np.uint8).tobytes())
    with pytest.raises(ReaderError, match=path.name.replace(".", r"\.")):
        reader(path)
