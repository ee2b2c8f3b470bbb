"""The latent physiology of a synthetic patient and its state at each study.

Everything a file shows comes from a ``StudyState``: the files are rendered from it,
the labels and reports are read off it, and ``ground_truth.parquet`` stores it. A
patient's randomness comes only from ``(seed, patient index)`` so a patient is the same
whatever the cohort size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from clerc.synthetic.config import PATTERNS, RACES, TESTS, SynthConfig

YEAR_DAYS = 365.25
ANCHOR_START = np.datetime64("2008-01-01T00:00:00")
VESSELS: tuple[str, ...] = ("lad", "rca", "lcx")
#: LVEF points lost after an occlusion of each vessel.
EF_LOSS = {"lad": 14.0, "rca": 7.0, "lcx": 8.0}


def patient_seeds(seed: int, index: int) -> tuple[np.random.SeedSequence, np.random.SeedSequence]:
    """(latent, render) seed sequences of one patient, independent of the cohort size."""
    latent, render = np.random.SeedSequence([int(seed), int(index)]).spawn(2)
    return latent, render


def patient_id(index: int) -> str:
    return f"P{index:06d}"


@dataclass(frozen=True)
class Patient:
    """Time-invariant traits and event onsets (years after anchor; inf = never)."""

    index: int
    sex: str
    anchor_age: float
    anchor_time: np.datetime64
    race: str
    bmi: float
    hr_base: float
    axis_base: float
    orientation: float
    ef_base: float
    ef_slope: float
    pacer_rate: float
    onsets: dict[str, float]
    tests: tuple[str, ...]

    @property
    def patient_id(self) -> str:
        return patient_id(self.index)


@dataclass(frozen=True)
class StudyState:
    """The latent state of a patient when one study was acquired."""

    patient_id: str
    study_id: str
    test: str
    years: float
    age: float
    sex: str
    bmi: float
    hr: float
    lvef: float
    lvedd_cm: float
    ctr: float
    axis_deg: float
    orientation_deg: float
    pacemaker: bool
    paced: bool
    rbbb: bool
    lbbb: bool
    lad_occlusion: bool
    rca_occlusion: bool
    lcx_occlusion: bool
    consolidation: bool
    edema: bool
    qrs_ms: float
    pr_ms: float
    qt_ms: float

    def as_row(self) -> dict:
        return asdict(self)

    def occluded(self, vessel: str) -> bool:
        return bool(getattr(self, f"{vessel}_occlusion"))


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def _onset(rng: np.random.Generator, p: float, before: float, span: float) -> float:
    """Onset time: never (inf), before the anchor (negative) or during follow-up."""
    if rng.random() >= p:
        return float("inf")
    return -rng.uniform(0.1, 5.0) if rng.random() < before else rng.uniform(0.0, span)


def draw_patient(index: int, seed: int, cfg: SynthConfig, law: np.ndarray) -> Patient:
    """Draw one patient's traits, disease onsets and available tests."""
    rng = np.random.default_rng(patient_seeds(seed, index)[0])
    tests = tuple(
        t for t, on in zip(TESTS, PATTERNS[rng.choice(len(PATTERNS), p=law)], strict=True) if on
    )
    female = rng.random() < 0.503
    age = float(np.clip(rng.normal(64.6, 17.9), 18, 98))
    z = (age - 65.0) / 18.0
    bmi = float(np.clip(rng.normal(27.5, 5.0), 16, 48))
    span = cfg.follow_up_years
    angio = "angio" in tests
    male = 0.0 if female else 1.0
    cardiomyopathy = rng.random() < _sigmoid(_logit(0.08) + 0.6 * z + 0.3 * male)
    ef_base = rng.normal(61.0 + 2.0 * (1 - male), 4.5) - (
        rng.uniform(15, 30) if cardiomyopathy else 0
    )
    occ_base = 0.33 if angio else 0.05
    onsets = {
        f"{v}_occlusion": _onset(rng, _sigmoid(_logit(occ_base) + 0.7 * z + 0.4 * male), 0.75, span)
        for v in VESSELS
    }
    echo = "echo" in tests  # echo is ordered for sicker hearts (indication bias)
    lbbb_p = _sigmoid(_logit(0.08) + 0.8 * z + 1.2 * cardiomyopathy + 0.4 * echo)
    onsets["lbbb"] = _onset(rng, lbbb_p, 0.7, span)
    onsets["rbbb"] = _onset(rng, _sigmoid(_logit(0.11) + 0.7 * z + 0.3 * male), 0.7, span)
    if np.isfinite(onsets["lbbb"]):  # one bundle branch block per patient
        onsets["rbbb"] = float("inf")
    pace_p = _sigmoid(_logit(0.11) + 1.0 * z + 1.0 * (onsets["lbbb"] < span) + 0.5 * echo)
    onsets["pacemaker"] = _onset(rng, pace_p, 0.6, span)
    return Patient(
        index=index,
        sex="F" if female else "M",
        anchor_age=round(age, 2),
        anchor_time=ANCHOR_START + np.timedelta64(int(rng.uniform(0, 12 * YEAR_DAYS * 24)), "h"),
        race=str(rng.choice(list(RACES), p=np.array(list(RACES.values())) / sum(RACES.values()))),
        bmi=round(bmi, 1),
        hr_base=float(rng.normal(71.0 + 3.0 * (1 - male), 8.0)),
        axis_base=float(rng.normal(45.0, 22.0) - 0.35 * (age - 60) - 1.2 * (bmi - 27)),
        orientation=float(rng.normal(0.0, 4.0)),
        ef_base=float(ef_base),
        ef_slope=float(rng.normal(0.0, 1.2)),
        pacer_rate=float(rng.choice([60.0, 70.0, 80.0])),
        onsets=onsets,
        tests=tests,
    )


def _study_times(
    rng: np.random.Generator, p: Patient, cfg: SynthConfig
) -> list[tuple[str, float, int]]:
    """(test, years after anchor, encounter index) for every study, sorted by time."""
    n_enc = 1 + min(int(rng.poisson(1.6)), 5)
    span = cfg.follow_up_years * rng.uniform(0.2, 1.0)
    enc = np.sort(np.concatenate([[0.0], rng.uniform(0.05, 1.0, n_enc - 1) * span]))
    out = []
    for test in p.tests:
        n = 1 + min(int(rng.poisson(cfg.studies_mean[test] - 1)), cfg.studies_max - 1)
        picks = rng.choice(n_enc, size=n, replace=n > n_enc)
        for e in picks:
            out.append((test, float(enc[e] + rng.uniform(0, 3) / YEAR_DAYS), int(e)))
    return sorted(out, key=lambda x: x[1])


def _active(p: Patient, key: str, t: float) -> bool:
    return p.onsets[key] <= t


def _encounter_states(rng: np.random.Generator, p: Patient, n_enc: int) -> list[dict]:
    """Transient state per encounter: rate offset, LVEF noise, edema and consolidation draws."""
    out, edema_u, cons_prev = [], rng.random(n_enc), False
    for e in range(n_enc):
        cons_p = 0.55 if cons_prev else _sigmoid(-1.8 + 0.5 * (p.anchor_age - 65) / 18)
        cons = bool(rng.random() < cons_p)
        out.append(
            {
                "hr": rng.normal(0, 6),
                "ef": rng.normal(0, 3.0),
                "edema_u": edema_u[e],
                "cons": cons,
                "ctr": rng.normal(0, 0.008),
                "pace_u": rng.random(),
            }
        )
        cons_prev = cons
    return out


def study_states(p: Patient, seed: int, cfg: SynthConfig) -> list[StudyState]:
    """The patient's studies in time order, each with its latent state."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), p.index, 1]))
    times = _study_times(rng, p, cfg)
    encs = _encounter_states(rng, p, 1 + max(e for _, _, e in times))
    counters: dict[str, int] = {}
    states = []
    for test, t, e in times:
        k = counters.get(test, 0)
        counters[test] = k + 1
        states.append(_state(p, test, f"{p.patient_id}-{test}{k}", t, encs[e]))
    return states


def _state(p: Patient, test: str, study_id: str, t: float, enc: dict) -> StudyState:
    age = p.anchor_age + t
    occ = {v: _active(p, f"{v}_occlusion", t) for v in VESSELS}
    lbbb, rbbb = _active(p, "lbbb", t), _active(p, "rbbb", t)
    pacemaker = _active(p, "pacemaker", t)
    intrinsic = float(np.clip(p.hr_base + enc["hr"], 45, 125))
    paced = pacemaker and (intrinsic < p.pacer_rate + 12 or enc["pace_u"] < 0.6)
    ef = p.ef_base + p.ef_slope * t + enc["ef"] - sum(EF_LOSS[v] for v in VESSELS if occ[v])
    ef -= 6.0 * lbbb + 4.0 * paced + 0.08 * max(0.0, age - 60)
    ef = float(np.clip(ef, 15, 78))
    edema_logit = -1.5 + 0.09 * (50 - ef) + 0.4 * (age - 65) / 18
    edema = bool(enc["edema_u"] < _sigmoid(edema_logit))
    hr = p.pacer_rate if paced else float(np.clip(intrinsic + 8 * edema, 45, 130))
    male = p.sex == "M"
    lvedd = float(
        np.clip((4.9 if male else 4.45) + 0.03 * (p.bmi - 27) + 0.045 * (60 - ef), 3.6, 7.5)
    )
    ctr = 0.44 + 0.085 * (lvedd - 4.7) + 0.004 * (p.bmi - 27) + 0.0012 * (age - 60)
    ctr = float(np.clip(ctr + 0.02 * edema + enc["ctr"], 0.33, 0.7))
    axis = p.axis_base - 25 * lbbb + 10 * rbbb
    if paced:
        axis = -70.0 + 0.2 * (p.axis_base - 45)
    qrs = 88.0 + 0.1 * (p.bmi - 27) + (0 if not male else 6)
    qrs = 165.0 if paced else qrs + 58.0 * rbbb + 64.0 * lbbb - 30.0 * (rbbb and lbbb)
    rr = 60.0 / hr
    qt = 400 * rr**0.4 + (12 if not male else 0) + 0.5 * (qrs - 90)
    return StudyState(
        patient_id=p.patient_id,
        study_id=study_id,
        test=test,
        years=round(t, 5),
        age=round(age, 2),
        sex=p.sex,
        bmi=p.bmi,
        hr=round(hr, 1),
        lvef=round(ef, 1),
        lvedd_cm=round(lvedd, 2),
        ctr=round(ctr, 3),
        axis_deg=round(float(axis), 1),
        orientation_deg=round(p.orientation, 2),
        pacemaker=pacemaker,
        paced=paced,
        rbbb=rbbb,
        lbbb=lbbb,
        lad_occlusion=occ["lad"],
        rca_occlusion=occ["rca"],
        lcx_occlusion=occ["lcx"],
        consolidation=enc["cons"],
        edema=edema,
        qrs_ms=round(qrs, 0),
        pr_ms=round(150 + 0.5 * (age - 60), 0),
        qt_ms=round(qt, 0),
    )
