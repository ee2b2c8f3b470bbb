"""12-lead ECG from a moving cardiac dipole projected onto the lead vectors.

Axes: x = patient's left, y = inferior, z = anterior. Each beat is a sum of Gaussian
pulses of the heart vector (P, septal, main, terminal, T); conduction blocks, pacing and
infarcts add or replace pulses, so their signs appear in the leads facing them.
"""

from __future__ import annotations

import numpy as np

from clerc.synthetic.latent import StudyState

FS = 500
N_SAMPLES = 5000
#: Horizontal-plane angle (degrees from left toward anterior) and gain of V1..V6.
PRECORDIAL = ((115, 1.3), (95, 1.8), (75, 1.9), (55, 1.7), (30, 1.4), (5, 1.1))


def _unit(*v: float) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    return a / np.linalg.norm(a)


def lead_matrix() -> np.ndarray:
    """(8, 3): leads I, II, V1..V6 (III, aVR, aVL, aVF are derived by Einthoven's law)."""
    rows = [_unit(1, 0, 0), _unit(0.5, np.sqrt(3) / 2, 0)]
    for ang, gain in PRECORDIAL:
        r = np.deg2rad(ang)
        rows.append(gain * _unit(np.cos(r), 0.15, np.sin(r)))
    return np.stack(rows)


def voltage(s: StudyState) -> float:
    """R-wave amplitude (mV) from sex, age, body habitus and LV size."""
    sex = 1.12 if s.sex == "M" else 0.9
    age = max(0.55, 1.0 - 0.005 * (s.age - 60))
    return 1.7 * sex * age * (27.0 / s.bmi) ** 0.9 * (s.lvedd_cm / 4.7) ** 0.8


def beat_components(s: StudyState, amp: float) -> list[tuple[float, float, float, np.ndarray]]:
    """(time from R, sigma, amplitude, direction) of the heart-vector pulses of one beat."""
    th = np.deg2rad(s.axis_deg)
    main = _unit(np.cos(th), np.sin(th), -0.35)
    w = s.qrs_ms / 92.0 if not (s.paced or s.lbbb or s.rbbb) else 1.0
    t_wave = -0.04 + s.qt_ms / 1000.0 - 0.09
    comps = [(-s.pr_ms / 1000.0 + 0.045, 0.022, 0.15, _unit(0.6, 0.75, 0.2))]
    if s.paced:
        sup = _unit(0.3, -0.8, -0.5)
        comps += [
            (-0.075, 0.0015, 2.5, _unit(0.2, -0.6, 0.7)),
            (-0.02, 0.024, 0.9 * amp, sup),
            (0.04, 0.024, 0.7 * amp, _unit(0.7, -0.3, -0.6)),
            (t_wave + 0.03, 0.05, 0.35 * amp, -sup),
        ]
    elif s.lbbb:
        lat = _unit(0.8, 0.2, -0.6)
        comps += [
            (-0.04, 0.016, 0.35 * amp, _unit(0.6, 0.1, -0.3)),
            (0.0, 0.019, 0.95 * amp, lat),
            (0.048, 0.019, 1.0 * amp, lat),
            (t_wave + 0.03, 0.05, 0.35 * amp, -lat),
        ]
    else:
        comps += [
            (-0.022 * w, 0.007 * w, 0.18, _unit(-0.5, 0.1, 0.8)),
            (0.0, 0.011 * w, amp, main),
            (0.022 * w, 0.009 * w, 0.25 * amp, _unit(-0.4, -0.4, -0.6)),
            (t_wave, 0.045, 0.3 * amp, _unit(np.cos(th - 0.2), np.sin(th - 0.2), -0.1)),
        ]
        if s.rbbb:
            comps += [
                (0.05, 0.018, 0.7, _unit(-0.6, 0.1, 0.8)),
                (t_wave, 0.05, 0.15, _unit(0.5, 0, -0.7)),
            ]
    comps += _infarct_components(s, t_wave)
    return comps


def _infarct_components(
    s: StudyState, t_wave: float
) -> list[tuple[float, float, float, np.ndarray]]:
    """Q waves (early vector away from the dead wall), ST shift and T inversion per territory."""
    away = {"lad": _unit(0, 0, -1), "rca": _unit(0, -1, 0.1), "lcx": _unit(-1, 0.1, 0.2)}
    out = []
    for vessel, vec in away.items():
        if s.occluded(vessel):
            out += [
                (-0.016, 0.012, 0.55, vec),
                (0.075, 0.04, 0.07, -vec),
                (t_wave, 0.045, 0.22, vec),
            ]
    return out


def _beat_times(s: StudyState, rng: np.random.Generator) -> np.ndarray:
    rr = 60.0 / s.hr
    jitter = 0.003 if s.paced else 0.03
    t, out = -rng.uniform(0, rr), []
    while t < N_SAMPLES / FS + 0.6:
        out.append(t)
        t += rr * (1 + jitter * rng.standard_normal())
    return np.round(np.asarray(out) * FS) / FS


def heart_vector(s: StudyState, rng: np.random.Generator) -> np.ndarray:
    """(3, N_SAMPLES) heart vector in mV."""
    comps = beat_components(s, voltage(s) * rng.uniform(0.92, 1.08))
    t = np.arange(N_SAMPLES) / FS
    beats = _beat_times(s, rng)
    centres = (beats[:, None] + np.array([c[0] for c in comps])[None, :]).ravel()
    sig = np.tile([c[1] for c in comps], len(beats))
    amps = np.tile([c[2] for c in comps], len(beats))
    dirs = np.tile(np.stack([c[3] for c in comps]), (len(beats), 1))
    keep = (centres > -0.3) & (centres < t[-1] + 0.3)
    g = np.exp(-0.5 * ((t[None, :] - centres[keep, None]) / sig[keep, None]) ** 2)
    return (dirs[keep] * amps[keep, None]).T @ g


def _noise(rng: np.random.Generator, n_leads: int) -> np.ndarray:
    t = np.arange(N_SAMPLES) / FS
    f = rng.uniform(0.05, 0.5, (n_leads, 2, 1))
    ph = rng.uniform(0, 2 * np.pi, (n_leads, 2, 1))
    a = rng.uniform(0.0, 0.12, (n_leads, 2, 1))
    wander = (a * np.sin(2 * np.pi * f * t + ph)).sum(axis=1)
    out = wander + rng.normal(0, rng.uniform(0.008, 0.025), (n_leads, N_SAMPLES))
    if rng.random() < 0.3:
        out += rng.uniform(0.005, 0.02) * np.sin(2 * np.pi * 60 * t + rng.uniform(0, 6.3))
    return out


def render_ecg(s: StudyState, rng: np.random.Generator) -> np.ndarray:
    """float32 (12, 5000) in mV, leads I, II, III, aVR, aVL, aVF, V1..V6."""
    base = lead_matrix() * rng.uniform(0.9, 1.1, (8, 1))
    sig = base @ heart_vector(s, rng) + _noise(rng, 8)
    lead_i, lead_ii, prec = sig[0], sig[1], sig[2:]
    limb = np.stack(
        [
            lead_i,
            lead_ii,
            lead_ii - lead_i,
            -(lead_i + lead_ii) / 2,
            lead_i - lead_ii / 2,
            lead_ii - lead_i / 2,
        ]
    )
    return np.concatenate([limb, prec]).astype(np.float32)
