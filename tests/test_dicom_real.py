"""The DICOM pipeline on real files written by others (the ``pydicom-data`` package, MIT).

Each expected image is computed here from the file's own tags with the DICOM standard's
formulas (PS3.3 C.11) or Pillow's luma, never with the reader's code. Files come from the
installed wheel: ``get_testdata_file(download=False)`` never fetches anything.
"""

from __future__ import annotations

import warnings

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_color_lut, pixel_array

from clerc.data.readers import NoFrameRateWarning, read_image, read_video


def real_file(name: str) -> str:
    path = get_testdata_file(name, download=False)
    assert path is not None, f"{name} is not in the installed pydicom-data wheel"
    return path


def luma(rgb: np.ndarray) -> np.ndarray:
    """Pillow's RGB -> L (ITU-R 601), an independent reference for the reader's luma."""
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(f)).convert("L"))
                     for f in rgb.reshape(-1, *rgb.shape[-3:])])


def window(x: np.ndarray, center: float, width: float, y_min: float, y_max: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 LINEAR windowing, then the output range mapped to 0-255."""
    c, w = center - 0.5, width - 1
    y = ((x - c) / w + 0.5) * (y_max - y_min) + y_min
    y = np.where(x <= c - w / 2, y_min, np.where(x > c + w / 2, y_max, y))
    return (y - y_min) * 255.0 / (y_max - y_min)


def close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    assert np.abs(got.astype(float) - want).max() <= 1.0  # rounding only


def test_palette_colour_ultrasound_is_shown_through_its_colour_table():
    """A 2-frame PALETTE COLOR ultrasound without timing tags: colours, not indices."""
    path = real_file("OBXXXX1A_2frame.dcm")
    with pytest.warns(NoFrameRateWarning, match="assuming 30 fps"):
        frames, fps = read_video(path)
    ds = pydicom.dcmread(path)
    rgb16 = apply_color_lut(ds.pixel_array, ds)  # 16-bit palette entries
    want = luma(np.rint(rgb16 / 257.0).astype(np.uint8))
    assert frames.shape == (2, 600, 800) and fps == 30.0
    close(frames, want.astype(float))
    assert abs(frames.mean() - 25.8) < 0.05  # the raw indices averaged 127.5


def test_cr_chest_film_monochrome1_window_and_jpeg2000():
    """A CR chest film (MONOCHROME1, 15 bits, window 15000/30000), uncompressed and JPEG 2000."""
    ds = pydicom.dcmread(real_file("RG1_UNCR.dcm"))
    x = ds.pixel_array.astype(float)
    want = 255.0 - window(x, 15000, 30000, 0.0, 2**15 - 1)
    plain = read_image(real_file("RG1_UNCR.dcm"))
    close(plain, want)
    np.testing.assert_array_equal(read_image(real_file("RG1_J2KR.dcm")), plain)  # lossless


def test_rescale_then_window_mr_and_jpeg2000():
    """MR with RescaleSlope 3.77 and window 1000/2000: the window applies to rescaled values."""
    ds = pydicom.dcmread(real_file("MR2_UNCR.dcm"))
    slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    x = ds.pixel_array * slope + intercept
    want = window(x, 1000, 2000, intercept, (2**12 - 1) * slope + intercept)
    got = read_image(real_file("MR2_UNCR.dcm"))
    close(got, want)
    np.testing.assert_array_equal(read_image(real_file("MR2_J2KR.dcm")), got)
    assert got.mean() > 30  # linear scaling of the stored values gave a near-black 4.65


def test_narrow_ct_window_on_hounsfield_units():
    ds = pydicom.dcmread(real_file("693_UNCR.dcm"))
    x = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    want = window(x, 40, 100, -(2**13) - 1024.0, 2**13 - 1 - 1024.0)
    close(read_image(real_file("693_UNCR.dcm")), want)


def test_voi_lut_and_modality_lut_sequences():
    ds = pydicom.dcmread(real_file("vlut_04.dcm"))
    item = ds.VOILUTSequence[0]
    n, first, depth = (int(v) for v in item.LUTDescriptor)
    lut = np.asarray(item.LUTData, dtype=float)
    want = lut[np.clip(ds.pixel_array.astype(int) - first, 0, n - 1)] * 255.0 / (2**depth - 1)
    close(read_image(real_file("vlut_04.dcm")), want)
    ds = pydicom.dcmread(real_file("mlut_18.dcm"))
    item = ds.ModalityLUTSequence[0]
    n, first, depth = (int(v) for v in item.LUTDescriptor)
    lut = np.asarray(item.LUTData, dtype=float)
    want = lut[np.clip(ds.pixel_array.astype(int) - first, 0, n - 1)] * 255.0 / (2**depth - 1)
    close(read_image(real_file("mlut_18.dcm")), want)


def test_jpeg2000_ybr_ultrasound_equals_its_uncompressed_rgb():
    got = read_image(real_file("US1_J2KR.dcm"))  # YBR_RCT, JPEG 2000 lossless
    np.testing.assert_array_equal(got, read_image(real_file("US1_UNCR.dcm")))
    rgb = pydicom.dcmread(real_file("US1_UNCR.dcm")).pixel_array
    close(got, luma(rgb)[0].astype(float))


def test_jpeg_baseline_ultrasound_cine_and_its_frame_rate():
    """120 frames of YBR_FULL_422 JPEG baseline at FrameTime 33.333 ms."""
    path = real_file("color3d_jpeg_baseline.dcm")
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoFrameRateWarning)  # the file gives its rate
        frames, fps = read_video(path)
    assert frames.shape == (120, 480, 640) and abs(fps - 30.0) < 1e-3
    for i in (0, 119):  # pydicom decodes one frame on its own; YBR -> RGB by pydicom
        close(frames[i], luma(pixel_array(path, index=i))[0].astype(float))
