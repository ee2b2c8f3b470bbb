"""Each synthetic modality honestly encodes its latent state, measured from written files.

The measurements are deliberately simple signal processing (thresholds, peaks,
components), so passing means the signal is plainly there. The helpers are reused by
``test_synthetic_cohort.py`` on a whole cohort.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage, signal

from clerc.data.readers import read_ecg, read_image, read_video
from clerc.synthetic import angio, cxr, ecg, echo
from clerc.synthetic.config import SynthConfig, availability_law
from clerc.synthetic.files import write_avi, write_ecg, write_png
from clerc.synthetic.latent import StudyState, draw_patient, study_states

# ---------------------------------------------------------------- measurements


def echo_lv_areas(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(area, long-axis length) of the LV cavity per frame: the dark blob nearest the LV site."""
    fan = ndimage.binary_erosion(frames.max(axis=0) > 0, iterations=3)
    smooth = ndimage.gaussian_filter(frames.astype(float), (0, 1.0, 1.0))
    blood, tissue = np.percentile(smooth[:, fan], [5, 50])
    areas, lengths = [], []
    for f in smooth:
        dark = (f < (blood + tissue) / 2) & fan
        lab, n = ndimage.label(dark)
        best = None
        for k in range(1, n + 1):
            yy, xx = np.nonzero(lab == k)
            if len(yy) >= 30:
                d = np.hypot(xx.mean() - 68, yy.mean() - 50)
                if best is None or d < best[0]:
                    best = (d, xx, yy)
        assert best is not None, "no LV cavity found"
        _, xx, yy = best
        areas.append(len(xx))
        lengths.append(np.sqrt(np.linalg.eigvalsh(np.cov(np.stack([xx, yy])))[-1]))
    return np.asarray(areas, float), np.asarray(lengths, float)


def echo_lvef(frames: np.ndarray) -> float:
    """Area-length volumes (A^2 / L) at end-diastole and end-systole -> LVEF in %."""
    area, length = echo_lv_areas(frames)
    vol = area**2 / length
    return float(100 * (1 - vol.min() / vol.max()))


def echo_rate(frames: np.ndarray, fps: float) -> float:
    """Beats per minute: frequency of the best-fitting sinusoid to the LV area."""
    area, _ = echo_lv_areas(frames)
    t = np.arange(len(area)) / fps
    best = (np.inf, 0.0)
    for f in np.arange(0.6, 2.4, 0.005):
        design = np.stack(
            [np.ones_like(t), np.cos(2 * np.pi * f * t), np.sin(2 * np.pi * f * t)], 1
        )
        res = np.linalg.lstsq(design, area, rcond=None)[1]
        best = min(best, (float(res[0]) if len(res) else np.inf, float(f)))
    return 60 * best[1]


def ecg_r_peaks(sig: np.ndarray, fs: float = 500.0) -> np.ndarray:
    """Sample indices of the beats (peaks of the summed slope energy)."""
    b, a = signal.butter(2, [5, 30], btype="band", fs=fs)
    energy = ndimage.uniform_filter1d(
        np.abs(np.diff(signal.filtfilt(b, a, sig, axis=1))).sum(0), 40
    )
    peaks, _ = signal.find_peaks(
        energy, distance=int(0.3 * fs), height=0.35 * np.percentile(energy, 99)
    )
    return peaks


def ecg_rate(sig: np.ndarray, fs: float = 500.0) -> float:
    return float(60 * fs / np.median(np.diff(ecg_r_peaks(sig, fs))))


def ecg_qrs_ms(sig: np.ndarray, fs: float = 500.0) -> float:
    """QRS width of the average beat: where the spatial slope exceeds 12% of its maximum."""
    peaks = [p for p in ecg_r_peaks(sig, fs) if 150 <= p < sig.shape[1] - 150]
    beat = np.mean([sig[:, p - 150 : p + 150] for p in peaks], axis=0)
    beat = ndimage.median_filter(beat, size=(1, 7))  # drops pacing spikes
    slope = ndimage.uniform_filter1d(np.sqrt((np.diff(beat, axis=1) ** 2).sum(0)), 5)
    above = np.nonzero(slope > 0.12 * slope.max())[0]
    centre = int(np.argmax(slope))
    runs = np.split(above, np.nonzero(np.diff(above) > 12)[0] + 1)
    run = next(r for r in runs if r[0] <= centre <= r[-1])
    return float((run[-1] - run[0]) / fs * 1000)


def cxr_ctr(img: np.ndarray) -> float:
    """Cardiothoracic ratio: widest lung-free gap at the heart over the widest lung span."""
    dark = ndimage.gaussian_filter(img.astype(float), 2.0) < 115
    lab, _ = ndimage.label(dark)
    border = set(np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])))
    lungs = dark & ~np.isin(lab, list(border))
    rows = np.nonzero(lungs.any(axis=1))[0]
    cols = [np.nonzero(lungs[r])[0] for r in rows]
    thorax = max(c[-1] - c[0] for c in cols)
    mid = np.median([(c[0] + c[-1]) / 2 for c in cols])
    gaps = []
    band = slice(len(rows) // 3, int(len(rows) * 0.9))  # below the hila, above the domes
    for c in cols[band]:
        left, right = c[c < mid], c[c > mid]
        if len(left) >= 10 and len(right) >= 10:
            gaps.append(right.min() - left.max())
    return float(max(gaps) / thorax)


def angio_vessel_area(frames: np.ndarray) -> int:
    """Most pixels darkened by contrast relative to the first (pre-contrast) frame."""
    f = ndimage.gaussian_filter(frames.astype(float), (0, 0.7, 0.7))
    return int(((f[:1] - f) > 35).sum(axis=(1, 2)).max())


# ---------------------------------------------------------------- controlled renders


@pytest.fixture(scope="module")
def base_state() -> StudyState:
    cfg = SynthConfig()
    s = study_states(draw_patient(3, 0, cfg, availability_law(cfg)), 0, cfg)[0]
    return dataclasses.replace(
        s,
        pacemaker=False,
        paced=False,
        rbbb=False,
        lbbb=False,
        lad_occlusion=False,
        rca_occlusion=False,
        lcx_occlusion=False,
        edema=False,
        consolidation=False,
        hr=72.0,
        qrs_ms=90.0,
        axis_deg=40.0,
    )


def _echo_file(tmp: Path, s: StudyState, seed: int) -> tuple[np.ndarray, float]:
    path = tmp / f"echo{seed}.avi"
    write_avi(path, echo.render_echo(s, np.random.default_rng(seed)), echo.FPS)
    return read_video(path)


def test_echo_lvef_from_cavity_area(tmp_path: Path, base_state: StudyState) -> None:
    truth = np.linspace(20, 75, 8)
    measured = []
    for i, ef in enumerate(truth):
        vessel = ("lad_occlusion", "rca_occlusion", "lcx_occlusion", None)[i % 4]
        s = dataclasses.replace(
            base_state,
            lvef=float(ef),
            hr=55.0 + 8 * i,
            lvedd_cm=4.3 + 0.2 * i,
            **({vessel: True} if vessel else {}),
        )
        frames, fps = _echo_file(tmp_path, s, i)
        assert frames.shape == (48, 112, 112) and fps == pytest.approx(30.0)
        measured.append(echo_lvef(frames))
    err = np.abs(np.asarray(measured) - truth)
    assert err.mean() < 7.0, (truth, measured)
    assert np.corrcoef(truth, measured)[0, 1] > 0.95


def test_echo_pacer_lead_is_bright_in_rv(tmp_path: Path, base_state: StudyState) -> None:
    plain, _ = _echo_file(tmp_path, base_state, 7)
    paced, _ = _echo_file(tmp_path, dataclasses.replace(base_state, pacemaker=True), 7)
    lead = (paced.astype(int) - plain.astype(int)) > 80  # same seed: only the lead differs
    per_frame = lead.sum(axis=(1, 2))
    assert per_frame.min() > 30, per_frame
    ys, xs = np.nonzero(lead.any(axis=0))
    assert xs.mean() < 56, "the lead should lie in the right ventricle (left of the septum)"


def _ecg_file(tmp: Path, s: StudyState, seed: int) -> np.ndarray:
    path = tmp / f"ecg{seed}.hea"
    write_ecg(path, ecg.render_ecg(s, np.random.default_rng(seed)))
    return read_ecg(path)


def test_ecg_qrs_wider_with_block_or_pacing(tmp_path: Path, base_state: StudyState) -> None:
    variants = {
        "normal": {},
        "rbbb": {"rbbb": True, "qrs_ms": 146.0},
        "lbbb": {"lbbb": True, "qrs_ms": 154.0, "axis_deg": 10.0},
        "paced": {"paced": True, "pacemaker": True, "qrs_ms": 165.0, "hr": 70.0, "axis_deg": -70.0},
    }
    widths = {}
    for i, (name, change) in enumerate(variants.items()):
        sig = _ecg_file(tmp_path, dataclasses.replace(base_state, **change), i)
        assert sig.shape == (12, 5000) and sig.dtype == np.float32
        widths[name] = ecg_qrs_ms(sig)
    for name in ("rbbb", "lbbb", "paced"):
        assert widths[name] > widths["normal"] + 25, widths


def test_ecg_rate_from_r_peaks(tmp_path: Path, base_state: StudyState) -> None:
    for i, hr in enumerate((48.0, 75.0, 118.0)):
        sig = _ecg_file(tmp_path, dataclasses.replace(base_state, hr=hr), 10 + i)
        assert ecg_rate(sig) == pytest.approx(hr, rel=0.05)


def test_ecg_infarct_q_waves_in_territory(tmp_path: Path, base_state: StudyState) -> None:
    leads = {"lad_occlusion": [7, 8, 9], "rca_occlusion": [1, 2, 5], "lcx_occlusion": [0, 4, 11]}
    normal = _ecg_file(tmp_path, base_state, 20)
    peaks = [p for p in ecg_r_peaks(normal) if 100 <= p < 4900]

    def q_depth(x: np.ndarray, idx: list[int]) -> float:
        """Mean most-negative deflection in the 60 ms before the beat peak (the Q wave)."""
        return float(np.mean([x[idx, p - 30 : p].min(axis=1) for p in peaks]))

    for vessel, idx in leads.items():
        sig = _ecg_file(tmp_path, dataclasses.replace(base_state, **{vessel: True}), 20)
        assert q_depth(sig, idx) < q_depth(normal, idx) - 0.1, vessel


def test_cxr_ctr_tracks_heart_size(tmp_path: Path, base_state: StudyState) -> None:
    truth = np.linspace(0.38, 0.62, 7)
    measured = []
    for i, ctr in enumerate(truth):
        path = tmp_path / f"cxr{i}.png"
        write_png(
            path,
            cxr.render_cxr(
                dataclasses.replace(base_state, ctr=float(ctr)), np.random.default_rng(i)
            ),
        )
        img = read_image(path)
        assert img.shape == (256, 256)
        measured.append(cxr_ctr(img))
    assert np.corrcoef(truth, measured)[0, 1] > 0.95, measured


def test_cxr_findings_raise_lung_density(base_state: StudyState) -> None:
    plain = cxr.render_cxr(base_state, np.random.default_rng(0)).astype(float)
    for finding in ("edema", "consolidation"):
        img = cxr.render_cxr(
            dataclasses.replace(base_state, **{finding: True}), np.random.default_rng(0)
        ).astype(float)
        lungs = ndimage.gaussian_filter(plain, 2) < 115
        assert img[lungs].mean() > plain[lungs].mean() + 3, finding


def test_angio_occluded_vessel_is_shorter(tmp_path: Path, base_state: StudyState) -> None:
    for seed in range(3):
        tree = angio.vessel_tree(np.random.default_rng(seed), 65.0)
        for name, system in (("lad", "left"), ("lcx", "left"), ("rca", "right")):
            v = next(t for t in tree if t.name == name)
            areas = []
            for occ in ({}, {name: angio.occlusion_arc(v, np.random.default_rng(seed))}):
                path = tmp_path / f"angio{seed}{name}{len(occ)}.avi"
                frames = angio.render_angio(
                    base_state, np.random.default_rng(seed), tree, system, 28, occ
                )
                write_avi(path, frames, angio.FPS)
                video, fps = read_video(path)
                assert video.shape == (28, 112, 112) and fps == pytest.approx(15.0)
                areas.append(angio_vessel_area(video))
            assert areas[1] < 0.85 * areas[0], (seed, name, areas)


def test_write_ecg_matches_wfdb_wrsamp(tmp_path: Path, base_state: StudyState) -> None:
    import wfdb

    from clerc.modalities import ECG_LEADS

    sig = ecg.render_ecg(dataclasses.replace(base_state, paced=True), np.random.default_rng(4))
    write_ecg(tmp_path / "ours" / "rec-0.hea", sig)
    (tmp_path / "ref").mkdir()
    n = len(ECG_LEADS)
    wfdb.wrsamp(
        "rec-0",
        fs=500,
        units=["mV"] * n,
        sig_name=list(ECG_LEADS),
        p_signal=sig.T.astype(np.float64),
        fmt=["16"] * n,
        adc_gain=[1000.0] * n,
        baseline=[0] * n,
        write_dir=str(tmp_path / "ref"),
    )
    for ext in ("hea", "dat"):
        ours = (tmp_path / "ours" / f"rec-0.{ext}").read_bytes()
        assert ours == (tmp_path / "ref" / f"rec-0.{ext}").read_bytes(), ext
    assert np.abs(read_ecg(tmp_path / "ours" / "rec-0.hea") - sig).max() <= 0.0005 + 1e-6
