"""Apical-four-chamber-like echo: a sector of speckle with a beating left ventricle.

The LV cavity is two half-ellipses (septal and lateral) that contract about a fixed apex;
its end-systolic volume (``length x width^2``) is ``(1 - LVEF)`` of the end-diastolic one,
with regional hypokinesis in the occluded territory. The cycle follows the heart rate.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from clerc.synthetic.latent import StudyState

SIZE = 112
FPS = 30.0
APEX = (56.0, 5.0)  # (x, y) of the transducer
HALF_ANGLE = np.deg2rad(38.0)
DEPTH = 104.0
PX_PER_CM = 5.2


def sector_mask() -> np.ndarray:
    """bool (SIZE, SIZE): inside the imaging fan."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    dx, dy = x - APEX[0], y - APEX[1]
    r = np.hypot(dx, dy)
    return (r <= DEPTH) & (np.abs(np.arctan2(dx, dy)) <= HALF_ANGLE) & (dy > 0)


def contraction(phase: np.ndarray) -> np.ndarray:
    """0 at end-diastole, 1 at end-systole: ejection over a third of the cycle, then filling."""
    up = np.clip(phase / 0.33, 0, 1)
    down = np.clip((phase - 0.33) / 0.3, 0, 1)
    s = lambda v: v * v * (3 - 2 * v)  # noqa: E731 - smoothstep
    return s(up) * (1 - s(down))


def end_systolic_scales(s: StudyState) -> tuple[float, float, float]:
    """(longitudinal, septal, lateral) end-systolic scale factors giving ``L W^2 = 1 - EF``."""
    rest = 1.0 - s.lvef / 100.0
    s_len = rest ** (0.22 if s.lad_occlusion else 1 / 3)
    width = np.sqrt(rest / s_len)
    tilt = 0.08 * (1 - width) / 0.3
    if s.rca_occlusion and not s.lcx_occlusion:
        return s_len, width + tilt, width - tilt
    if s.lcx_occlusion and not s.rca_occlusion:
        return s_len, width - tilt, width + tilt
    return s_len, width, width


def _ellipse(
    u: np.ndarray, v: np.ndarray, cu: float, cv: float, a: float, b_neg: float, b_pos: float
) -> np.ndarray:
    """Normalised radius (< 1 inside) of an ellipse whose v half-width differs by side."""
    dv = v - cv
    b = np.where(dv < 0, b_neg, b_pos)
    return ((u - cu) / a) ** 2 + (dv / b) ** 2


def _segment_dist(px: np.ndarray, py: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Distance of pixels to a polyline."""
    d = np.full(px.shape, np.inf)
    for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:], strict=True):
        vx, vy = x1 - x0, y1 - y0
        t = np.clip(((px - x0) * vx + (py - y0) * vy) / (vx * vx + vy * vy), 0, 1)
        d = np.minimum(d, np.hypot(px - x0 - t * vx, py - y0 - t * vy))
    return d


class _Geometry:
    """Heart-local coordinates and chamber sizes of one video."""

    def __init__(self, s: StudyState, rng: np.random.Generator):
        zoom = rng.uniform(0.94, 1.06) * PX_PER_CM
        self.w = s.lvedd_cm * zoom / 2  # LV half-width at end-diastole
        self.a = (6.0 + 0.55 * s.lvedd_cm) * zoom / 2  # LV half-length
        self.wall = (0.9 + 0.004 * (s.age - 60)) * zoom
        self.sept = 1.0 * zoom
        ang = np.deg2rad(-6.0 + s.orientation_deg + rng.normal(0, 1.5))
        origin = (APEX[0] - 1 + rng.normal(0, 1.0), APEX[1] + 19 + rng.normal(0, 1.0))
        y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
        dx, dy = x - origin[0], y - origin[1]
        self.u = dx * np.sin(ang) + dy * np.cos(ang)
        self.v = dx * np.cos(ang) - dy * np.sin(ang)
        self.origin, self.ang = origin, ang

    def to_xy(self, u: float, v: float) -> tuple[float, float]:
        c, s = np.cos(self.ang), np.sin(self.ang)
        return self.origin[0] + u * s + v * c, self.origin[1] + u * c - v * s


def _frame(g: _Geometry, c: float, es: tuple[float, float, float]) -> np.ndarray:
    """Tissue reflectivity of one frame at contraction ``c``."""
    s_len, s_sep, s_lat = (1 - (1 - f) * c for f in es)
    a, u0 = g.a * s_len, g.wall
    cv = g.sept / 2 + g.w
    lv = _ellipse(g.u, g.v, u0 + a, cv, a, g.w * s_sep, g.w * s_lat)
    h = g.wall * (1 + 0.4 * c)
    lv_out = _ellipse(g.u, g.v, u0 + a, cv, a + h, g.w * s_sep + h, g.w * s_lat + h)
    rv_a, rv_b = 0.8 * g.a * (1 - 0.08 * c), 0.75 * g.w * (1 - 0.12 * c)
    rv_cu = g.wall + 0.4 * g.a + rv_a
    rv = _ellipse(g.u, g.v, rv_cu, -g.sept / 2 - rv_b, rv_a, rv_b, rv_b)
    rv_out = _ellipse(g.u, g.v, rv_cu, -g.sept / 2 - rv_b, rv_a + 3, rv_b + 3, rv_b + 3)
    r_la = 0.8 * g.w * (1 + 0.15 * c)
    la_cu = u0 + 2 * a + 3 + r_la
    la = _ellipse(g.u, g.v, la_cu, cv, r_la, r_la, r_la)
    ra = _ellipse(
        g.u,
        g.v,
        rv_cu + rv_a + 3 + 0.7 * r_la,
        -g.sept / 2 - rv_b,
        0.7 * r_la,
        0.7 * r_la,
        0.7 * r_la,
    )
    heart = (lv_out < 1) | (rv_out < 1) | (la < 1.35) | (ra < 1.5)
    peri = (lv_out < 1.25) & ~heart
    refl = np.full(g.u.shape, 0.26)
    refl[heart] = 0.55
    refl[peri] = 0.85
    refl[(lv < 1) | (rv < 1) | (la < 1) | (ra < 1)] = 0.035
    return refl


def _pacer_lead(g: _Geometry) -> np.ndarray:
    """Bright specular line from the right atrium through the tricuspid valve to the RV apex."""
    rv_a, rv_b = 0.8 * g.a, 0.75 * g.w
    rv_cu = g.wall + 0.4 * g.a + rv_a
    pts = np.array(
        [
            g.to_xy(rv_cu + rv_a + 6, -g.sept / 2 - rv_b * 1.1),
            g.to_xy(rv_cu + 0.2 * rv_a, -g.sept / 2 - rv_b * 0.7),
            g.to_xy(g.wall + 0.4 * g.a + 3, -g.sept / 2 - rv_b * 0.6),
        ]
    )
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    return np.clip(1.3 - _segment_dist(x, y, pts), 0, 1) * 0.9


def _speckle_bank(rng: np.random.Generator, n: int = 8) -> np.ndarray:
    """(n, SIZE, SIZE) speckle magnitudes (mean ~1) sharing a static tissue pattern."""
    static = gaussian_filter(rng.standard_normal((2, SIZE, SIZE)), (0, 1.0, 1.0))
    fresh = gaussian_filter(rng.standard_normal((n, 2, SIZE, SIZE)), (0, 0, 1.0, 1.0))
    z = np.sqrt(0.8) * static + np.sqrt(0.2) * fresh
    mag = np.hypot(z[:, 0], z[:, 1])
    return (mag / mag.mean()).astype(np.float32)


def render_echo(s: StudyState, rng: np.random.Generator, frames: int = 48) -> np.ndarray:
    """uint8 (frames, 112, 112) grayscale echo video at ``FPS``."""
    g = _Geometry(s, rng)
    es = end_systolic_scales(s)
    phase = (np.arange(frames) / FPS * s.hr / 60.0 + rng.uniform(0, 1)) % 1.0
    cs = contraction(phase)
    mask = sector_mask()
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    atten = (1.0 - 0.25 * np.hypot(x - APEX[0], y - APEX[1]) / DEPTH) * rng.uniform(0.9, 1.1)
    bright = _pacer_lead(g) if s.pacemaker else 0.0
    bank = _speckle_bank(rng)
    picks = rng.integers(len(bank), size=frames)
    noise = rng.normal(0, 1.0, (frames, SIZE, SIZE)).astype(np.float32)
    out = np.empty((frames, SIZE, SIZE), dtype=np.uint8)
    for k, c in enumerate(cs):
        img = (_frame(g, float(c), es) * bank[picks[k]] + bright) * atten
        img = 255 * np.clip(img, 0, 1) ** 0.8 + noise[k]
        out[k] = np.where(mask, np.clip(img, 0, 255), 0).astype(np.uint8)
    return out
