"""Posteroanterior chest X-ray: body, lungs, heart silhouette, bones, findings and devices.

Brighter means denser. The heart's width is ``ctr`` times the thoracic width; edema adds a
perihilar haze, consolidation a focal opacity, a pacemaker a device with a lead to the
right ventricle. Body habitus sets the thorax and soft-tissue size; sex and age show in
breast shadows, bone density and the aortic knob.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter, zoom

from clerc.synthetic.latent import StudyState

SIZE = 256


def _smooth_step(d: np.ndarray, width: float = 2.0) -> np.ndarray:
    """1 inside (d < 0), 0 outside, with a linear edge about ``2 * width`` wide."""
    return np.clip(0.5 - d / (4.0 * width), 0.0, 1.0)


def _texture(rng: np.random.Generator, sigma: float, scale: int = 4) -> np.ndarray:
    """Smooth random field, cheap: low-resolution noise upsampled."""
    n = SIZE // scale
    low = gaussian_filter(rng.standard_normal((n, n)), sigma / scale)
    return zoom(low, scale, order=1)[:SIZE, :SIZE] / (low.std() + 1e-9)


class _Chest:
    """Geometry of one radiograph."""

    def __init__(self, s: StudyState, rng: np.random.Generator):
        self.y, self.x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
        size = (s.bmi / 27.0) ** 0.12 * (1.04 if s.sex == "M" else 0.96)
        self.half = float(np.clip(84 * size * rng.uniform(0.97, 1.03), 68, 100))
        self.cx = SIZE / 2 + rng.normal(0, 3)
        self.apex_y = 38 + rng.normal(0, 3)
        self.base_y = 196 + rng.normal(0, 4)
        self.body = self.half * (1.12 + 0.012 * (s.bmi - 22))
        self.heart_w = s.ctr * 2 * self.half

    def lung(self, side: int) -> np.ndarray:
        """Soft mask of the right (side=-1, image left) or left (+1) lung."""
        t = np.clip((self.y - self.apex_y) / (0.45 * (self.base_y - self.apex_y)), 0, 1)
        outer = self.half * (0.35 + 0.65 * np.sqrt(t))
        dx = side * (self.x - self.cx)
        dome = (
            self.base_y
            + 6 * side
            - 16 * np.cos(np.clip((dx - 0.55 * self.half) / self.half, -1.5, 1.5))
        )
        inner = 11.0
        d = np.maximum.reduce([dx - outer, inner - dx, self.apex_y - self.y, self.y - dome])
        return _smooth_step(d, 1.5)

    def heart(self, orientation: float) -> np.ndarray:
        w = self.heart_w
        hx = self.cx + 0.17 * w + orientation * 0.4
        hy = self.base_y - 26 - 0.36 * w
        d = np.hypot((self.x - hx) / (0.5 * w), (self.y - hy) / (0.4 * w)) - 1.0
        return _smooth_step(d * 0.5 * w, 1.5)


def _ribs(c: _Chest, s: StudyState) -> np.ndarray:
    """Rib arcs (thinner with age) and clavicles."""
    density = 0.05 * max(0.5, 1.0 - 0.006 * (s.age - 50))
    spacing = (c.base_y - c.apex_y) / 9.5
    arc = (c.y - c.apex_y - 4 - 0.0024 * (c.x - c.cx) ** 2) / spacing
    out = density * np.cos(np.pi * arc) ** 8 * ((arc > -0.5) & (arc < 9))
    clav_y = c.apex_y + 6 - 0.12 * np.abs(c.x - c.cx)
    out += (
        0.18 * _smooth_step(np.abs(c.y - clav_y) - 2.5, 1.0) * (np.abs(c.x - c.cx) < c.half * 0.85)
    )
    return out


def _line(c: _Chest, pts: np.ndarray, width: float) -> np.ndarray:
    """Soft polyline of the given width."""
    d = np.full(c.x.shape, np.inf)
    for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:], strict=True):
        vx, vy = x1 - x0, y1 - y0
        t = np.clip(((c.x - x0) * vx + (c.y - y0) * vy) / (vx * vx + vy * vy), 0, 1)
        d = np.minimum(d, np.hypot(c.x - x0 - t * vx, c.y - y0 - t * vy))
    return _smooth_step(d - width, 0.6)


def _findings(c: _Chest, s: StudyState, rng: np.random.Generator, lungs: np.ndarray) -> np.ndarray:
    out = np.zeros_like(c.x)
    if s.edema:
        for side in (-1, 1):
            hil = np.hypot((c.x - c.cx - side * 30) / 38, (c.y - c.base_y + 75) / 48)
            out += 0.22 * np.clip(1 - hil**2, 0, 1) * lungs
        out += 0.05 * np.clip(_texture(rng, 3.0), 0, None) * lungs
    if s.consolidation:
        side = rng.choice([-1, 1])
        bx = c.cx + side * c.half * rng.uniform(0.35, 0.7)
        by = rng.uniform(c.apex_y + 40, c.base_y - 20)
        r = rng.uniform(14, 26)
        blob = np.hypot(c.x - bx, c.y - by) / r + 0.25 * _texture(rng, 6.0)
        out += 0.32 * _smooth_step((blob - 1) * r, 3.0) * lungs
    return out


def _device(c: _Chest, s: StudyState, rng: np.random.Generator) -> np.ndarray:
    dx, dy = c.cx + 0.62 * c.half + rng.normal(0, 4), c.apex_y + 22 + rng.normal(0, 4)
    can = _smooth_step((np.maximum(np.abs(c.x - dx) / 11, np.abs(c.y - dy) / 8) - 1) * 8, 0.8)
    rv = (c.cx + 0.05 * c.heart_w, c.base_y - 0.12 * c.heart_w)
    ra = (c.cx - 0.2 * c.heart_w, c.base_y - 0.5 * c.heart_w)
    pts = np.array([(dx - 8, dy), (c.cx + 12, c.apex_y + 26), (c.cx - 6, ra[1] - 30), ra, rv])
    return 0.9 * can + 0.7 * _line(c, pts, 0.9)


def render_cxr(s: StudyState, rng: np.random.Generator) -> np.ndarray:
    """uint8 (256, 256) PA chest radiograph."""
    c = _Chest(s, rng)
    body_d = np.abs(c.x - c.cx) - c.body * np.clip(0.7 + (c.y - 10) / 150, 0.7, 1.0)
    img = 0.08 + 0.42 * _smooth_step(body_d, 3.0)
    heart = c.heart(s.orientation_deg)
    medi = _smooth_step(np.abs(c.x - c.cx) - 10 - 5 * (c.y > c.apex_y + 40), 2.0) * (c.y > 20)
    knob = _smooth_step(
        np.hypot(c.x - c.cx - 14, c.y - c.apex_y - 40) - (7 + 0.07 * max(0.0, s.age - 40)), 1.5
    )
    solid = np.maximum.reduce([heart, medi, knob])
    lungs = (c.lung(-1) + c.lung(1)) * (1 - solid)
    img -= 0.32 * lungs
    img += 0.02 * _texture(rng, 2.5, scale=2) * lungs
    if s.sex == "F":
        for side in (-1, 1):
            bd = np.hypot(
                (c.x - c.cx - side * 0.6 * c.half) / (0.45 * c.half), (c.y - c.base_y + 20) / 30
            )
            img += 0.05 * (s.bmi / 27) * _smooth_step((bd - 1) * 20, 5.0)
    img += 0.06 * heart + 0.05 * medi
    img += _ribs(c, s) * (0.3 + lungs) * (np.abs(c.x - c.cx) < c.half) + _findings(c, s, rng, lungs)
    if s.pacemaker:
        img += _device(c, s, rng)
    img = gaussian_filter(img, 0.8) + rng.normal(0, 0.012, img.shape)
    img = np.clip(img / 0.75, 0, 1) * rng.uniform(0.9, 1.0)
    return np.clip(255 * img ** rng.uniform(0.85, 1.1), 0, 255).astype(np.uint8)
