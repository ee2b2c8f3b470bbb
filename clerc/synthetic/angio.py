"""Coronary angiogram: contrast filling a 3-D vessel tree over frames, seen from one view.

A patient's tree (LAD, LCX, RCA and their branches) lies on an ellipsoidal heart and is
fixed across studies. A left injection fills LAD and LCX, a right one the RCA. An
occluded vessel stops filling abruptly at the occlusion; everything distal stays dark.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from clerc.synthetic.latent import StudyState

SIZE = 112
FPS = 15.0
AXES = (38.0, 44.0, 34.0)  # heart ellipsoid semi-axes (x, y, z) in pixels


@dataclass(frozen=True)
class Vessel:
    """Sampled points (N, 3), arc length from the ostium (N,), radius (N,)."""

    name: str
    system: str
    points: np.ndarray
    arc: np.ndarray
    radius: np.ndarray


def _surface(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Points on the heart ellipsoid; theta from base (0) to apex (pi), phi azimuth."""
    st = np.sin(theta)
    return np.stack(
        [AXES[0] * st * np.cos(phi), AXES[1] * -np.cos(theta), AXES[2] * st * np.sin(phi)], axis=1
    )


def _path(
    theta: np.ndarray, phi: np.ndarray, start_arc: float, r0: float, r1: float, lift: float = 1.08
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pts = _surface(theta, phi) * lift
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    arc = start_arc + np.concatenate([[0.0], np.cumsum(seg)])
    return pts, arc, np.linspace(r0, r1, len(pts))


def _resample(
    theta0: float,
    theta1: float,
    phi0: float,
    phi1: float,
    n: int,
    rng: np.random.Generator,
    wobble: float,
) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0, 1, n)
    bend = wobble * np.sin(np.pi * t * rng.uniform(1, 3) + rng.uniform(0, 6.3))
    return theta0 + (theta1 - theta0) * t, phi0 + (phi1 - phi0) * t + bend


def vessel_tree(rng: np.random.Generator, age: float) -> list[Vessel]:
    """A patient's coronary tree; tortuosity grows with age."""
    wob = 0.1 + 0.002 * max(0.0, age - 40)
    specs = {  # name: (system, theta0, theta1, phi0, phi1, r0, r1)
        "lad": ("left", 0.45, 2.9, 1.6, 1.45, 1.6, 0.7),
        "lcx": ("left", 0.6, 1.0, 1.4, -1.0, 1.5, 0.8),
        "rca": ("right", 0.6, 1.0, 2.0, 4.4, 1.7, 0.9),
    }
    out = []
    for name, (system, t0, t1, p0, p1, r0, r1) in specs.items():
        th, ph = _resample(
            t0 + rng.normal(0, 0.05),
            t1 + rng.normal(0, 0.1),
            p0 + rng.normal(0, 0.08),
            p1 + rng.normal(0, 0.15),
            160,
            rng,
            wob,
        )
        pts, arc, rad = _path(th, ph, 0.0, r0, r1)
        parts = [(pts, arc, rad)]
        for _ in range(int(rng.integers(2, 5))):
            k = int(rng.integers(25, 120))
            dth = rng.uniform(0.5, 1.1) * (1 if name != "lad" else 0.7)
            dph = -rng.uniform(0.3, 0.7) if name == "lad" else rng.uniform(-0.2, 0.2)
            bth, bph = _resample(th[k], min(th[k] + dth, 3.0), ph[k], ph[k] + dph, 60, rng, wob)
            parts.append(_path(bth, bph, arc[k], 0.7 * rad[k], 0.5))
        out.append(Vessel(name, system, *(np.concatenate(x) for x in zip(*parts, strict=True))))
    return out


def occlusion_arc(v: Vessel, rng: np.random.Generator) -> float:
    """Arc length of the occlusion: proximal-to-mid part of the main vessel."""
    return float(v.arc[:160].max() * rng.uniform(0.2, 0.5))


def _rotation(lao: float, cran: float) -> np.ndarray:
    a, c = np.deg2rad(lao), np.deg2rad(cran)
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(c), -np.sin(c)], [0, np.sin(c), np.cos(c)]])
    return rx @ ry


def _background(rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    bg = 0.78 + 0.05 * np.sin(x / rng.uniform(9, 14) + rng.uniform(0, 6)) * (y > 10)
    spine_x = rng.uniform(40, 72)
    bg -= 0.12 * np.exp(-(((x - spine_x) / 9.0) ** 2))
    bg -= 0.18 / (1 + np.exp(-(y - rng.uniform(85, 105) - 0.2 * (x - 56)) / 2.5))
    return gaussian_filter(bg, 2.0)


def render_angio(
    s: StudyState,
    rng: np.random.Generator,
    tree: list[Vessel],
    system: str,
    frames: int,
    occlusions: dict[str, float],
) -> np.ndarray:
    """uint8 (frames, 112, 112): a left or right injection seen from a random view.

    ``occlusions`` maps an occluded vessel name to the arc length of its occlusion.
    """
    rot = _rotation(rng.uniform(-40, 40) + (30 if system == "right" else 0), rng.uniform(-25, 25))
    vessels = [v for v in tree if v.system == system]
    pts = np.concatenate([v.points for v in vessels]) @ rot.T
    arc = np.concatenate([v.arc for v in vessels])
    rad = np.concatenate([v.radius for v in vessels])
    blocked = np.concatenate([v.arc > occlusions.get(v.name, np.inf) for v in vessels])
    centre = np.array([56.0, 52.0]) + rng.normal(0, 4, 2)
    zoom = rng.uniform(0.9, 1.1)
    bg = _background(rng)
    k0, speed = rng.uniform(2, 4), rng.uniform(12, 18)
    washout = rng.uniform(frames * 0.7, frames)
    phase0, out = rng.uniform(0, 1), np.empty((frames, SIZE, SIZE), dtype=np.uint8)
    cath_dx = rng.uniform(-15, 15)
    for k in range(frames):
        c = 0.5 - 0.5 * np.cos(2 * np.pi * (k / FPS * s.hr / 60 + phase0))
        p2 = pts[:, :2] * zoom * (1 - 0.06 * c) + centre
        fill = np.clip((speed * (k - k0) - arc) / 10.0, 0, 1) * ~blocked
        fill *= np.clip(1 - (k - washout) / 8.0, 0.15, 1)
        cath = np.stack(
            [np.linspace(p2[0, 0], p2[0, 0] + cath_dx, 60), np.linspace(p2[0, 1], SIZE - 1, 60)], 1
        )
        dens = _splat(p2, fill * rad, cath)
        img = bg * np.exp(-1.6 * gaussian_filter(dens, 0.8))
        img = img + rng.normal(0, 0.025, img.shape)
        out[k] = np.clip(255 * img, 0, 255).astype(np.uint8)
    return out


def _splat(p2: np.ndarray, weight: np.ndarray, cath: np.ndarray) -> np.ndarray:
    """Accumulate point weights (and the catheter) onto the pixel grid."""
    pts = np.concatenate([p2, cath])
    w = np.concatenate([weight, np.full(len(cath), 0.6)])
    ij = np.round(pts).astype(int)
    ok = (ij[:, 0] >= 0) & (ij[:, 0] < SIZE) & (ij[:, 1] >= 0) & (ij[:, 1] < SIZE)
    flat = ij[ok, 1] * SIZE + ij[ok, 0]
    return np.bincount(flat, weights=w[ok], minlength=SIZE * SIZE).reshape(SIZE, SIZE)
