"""Configuration of the synthetic cohort and the joint law of modality availability."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

#: The four diagnostic tests, in the paper's order.
TESTS: tuple[str, ...] = ("echo", "ecg", "angio", "cxr")

#: Table 1 of the paper: patients with each modality and each pair (of 382,803).
TABLE1_PATIENTS = 382_803
TABLE1: dict[tuple[str, ...], int] = {
    ("echo",): 102_480,
    ("ecg",): 307_559,
    ("angio",): 17_338,
    ("cxr",): 226_835,
    ("echo", "ecg"): 89_873,
    ("echo", "angio"): 14_646,
    ("echo", "cxr"): 76_803,
    ("ecg", "angio"): 16_698,
    ("ecg", "cxr"): 161_122,
    ("angio", "cxr"): 13_802,
}

#: Table 2 of the paper: race/ethnicity categories and their proportions.
RACES: dict[str, float] = {
    "Non-Hispanic White": 0.561,
    "Black": 0.145,
    "Hispanic": 0.140,
    "Asian": 0.070,
    "Other": 0.043,
    "Unknown": 0.037,
    "Pacific Islander": 0.002,
    "Native American": 0.002,
}


def table1_fractions() -> dict[tuple[str, ...], float]:
    """Table 1 as fractions of all patients."""
    return {k: v / TABLE1_PATIENTS for k, v in TABLE1.items()}


@dataclass(frozen=True)
class SynthConfig:
    """How the synthetic cohort is drawn.

    ``availability`` maps a test (``("echo",)``) or a pair of tests to the fraction of
    patients who have it (defaults: the paper's Table 1). ``angio_fraction`` overrides the
    fraction with angiography, keeping P(other test | angio) as in the table, so a demo
    can oversample it. ``studies_mean`` is the mean number of studies per patient with the
    test; ``samples_range`` the inclusive range of files per study.
    """

    availability: dict[tuple[str, ...], float] = field(default_factory=table1_fractions)
    angio_fraction: float | None = None
    studies_mean: dict[str, float] = field(
        default_factory=lambda: {"echo": 1.6, "ecg": 2.2, "angio": 1.2, "cxr": 1.8}
    )
    studies_max: int = 4
    samples_range: dict[str, tuple[int, int]] = field(
        default_factory=lambda: {"echo": (1, 3), "ecg": (1, 1), "angio": (2, 4), "cxr": (1, 2)}
    )
    echo_frames: int = 48
    angio_frames: tuple[int, int] = (24, 32)
    follow_up_years: float = 5.0
    report_error_rate: float = 0.05
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)

    def __post_init__(self) -> None:
        for key, frac in self.availability.items():
            if any(t not in TESTS for t in key) or not 1 <= len(key) <= 2:
                raise ValueError(f"availability key {key!r}: expected one or two of {TESTS}")
            if not 0.0 <= frac <= 1.0:
                raise ValueError(f"availability[{key!r}] = {frac}: expected a fraction in [0, 1]")
        if self.angio_fraction is not None and not 0.0 <= self.angio_fraction <= 1.0:
            raise ValueError(f"angio_fraction = {self.angio_fraction}: expected a value in [0, 1]")
        for t in TESTS:
            if self.studies_mean.get(t, 0) < 1:
                raise ValueError(f"studies_mean[{t!r}] = {self.studies_mean.get(t)}: expected >= 1")
            lo, hi = self.samples_range.get(t, (0, 0))
            if not 1 <= lo <= hi:
                raise ValueError(f"samples_range[{t!r}] = {(lo, hi)}: expected 1 <= low <= high")
        if self.echo_frames < 40:
            raise ValueError(f"echo_frames = {self.echo_frames}: expected at least 40")
        if not 1 <= self.angio_frames[0] <= self.angio_frames[1]:
            raise ValueError(f"angio_frames = {self.angio_frames}: expected 1 <= low <= high")
        if abs(sum(self.split_fractions) - 1.0) > 1e-9 or min(self.split_fractions) < 0:
            raise ValueError(
                f"split_fractions = {self.split_fractions}: expected 3 values summing to 1"
            )
        if not 0.0 <= self.report_error_rate < 0.5:
            raise ValueError(f"report_error_rate = {self.report_error_rate}: expected [0, 0.5)")

    @classmethod
    def preset(cls, name: str) -> SynthConfig:
        """A named cohort profile: ``paper`` (Table 1's availability) or ``demo``."""
        if name not in PROFILES:
            raise ValueError(f"profile: unknown {name!r}; expected one of {sorted(PROFILES)}")
        return PROFILES[name]()

    def targets(self) -> dict[tuple[str, ...], float]:
        """Availability targets after applying ``angio_fraction``."""
        out = dict(self.availability)
        if self.angio_fraction is not None:
            base = out[("angio",)]
            for key in list(out):
                if "angio" in key:
                    cond = out[key] / base if base > 0 else 1.0
                    out[key] = min(1.0, cond * self.angio_fraction)
        return out


#: The 15 non-empty availability patterns (every patient has at least one test).
PATTERNS: tuple[tuple[bool, ...], ...] = tuple(
    p for p in itertools.product((False, True), repeat=len(TESTS)) if any(p)
)


def availability_law(cfg: SynthConfig, iterations: int = 500) -> np.ndarray:
    """Probabilities of ``PATTERNS`` matching the targets, by iterative proportional fitting.

    The all-absent pattern is excluded (a structural zero), so every patient has a test.
    """
    pats = np.array(PATTERNS, dtype=bool)
    p = np.full(len(pats), 1.0 / len(pats))
    targets = cfg.targets()
    masks = [(pats[:, [TESTS.index(t) for t in key]].all(axis=1), f) for key, f in targets.items()]
    for _ in range(iterations):
        for mask, f in masks:
            inside = p[mask].sum()
            outside = 1.0 - inside
            if inside > 0:
                p[mask] *= f / inside
            if outside > 0:
                p[~mask] *= (1 - f) / outside
            p /= p.sum()
    return p


def demo_profile() -> SynthConfig:
    """The demo's cohort: sized so that every Table 3 cell is scored on enough patients.

    Table 1's availability leaves most pairs of tests rare (echo and angiography together
    in 3.8% of patients), so a CPU-sized cohort would score cells on a handful of test
    patients. Here every test is common and pairs are frequent, one file per study (two
    for angiography, one per coronary system) and few studies per patient keep synthesis,
    packing and embedding cheap, and a 20% test split scores each cell on 110-180 patients
    per thousand.
    """
    Fractions = dict[tuple[str, ...], float]
    singles: Fractions = {("echo",): 0.85, ("ecg",): 0.9, ("angio",): 0.6, ("cxr",): 0.85}
    pairs: Fractions = {
        ("echo", "ecg"): 0.78,
        ("echo", "angio"): 0.52,
        ("echo", "cxr"): 0.73,
        ("ecg", "angio"): 0.55,
        ("ecg", "cxr"): 0.77,
        ("angio", "cxr"): 0.52,
    }
    return SynthConfig(
        availability={**singles, **pairs},
        studies_mean={t: 1.3 for t in TESTS},
        # two angiograms per study: the writer films the left system first, the right
        # second, and an RCA occlusion shows only on the right
        samples_range={"echo": (1, 1), "ecg": (1, 1), "angio": (2, 2), "cxr": (1, 1)},
        echo_frames=40,
        angio_frames=(20, 24),
        split_fractions=(0.7, 0.1, 0.2),
    )


#: Named cohort profiles for ``clerc synth --profile``.
PROFILES = {"paper": SynthConfig, "demo": demo_profile}
