"""Clinician-style reports in the vocabulary of the paper's zero-shot prompts.

Each report is built from the findings of a ``StudyState``; with probability
``error_rate`` one finding is omitted or stated wrongly (the error is returned so it can
be kept in the ground truth). Phrasing is drawn from paraphrases; values are measured.
"""

from __future__ import annotations

import numpy as np

from clerc.synthetic.latent import VESSELS, StudyState

VESSEL_NAMES = {
    "lad": ("LAD", "left ascending artery"),
    "rca": ("RCA", "right coronary artery"),
    "lcx": ("LCX", "left circumflex artery"),
}
TERRITORY = {
    "lad": ("anterior", "the anterior wall and apex"),
    "rca": ("inferior", "the inferior wall"),
    "lcx": ("lateral", "the lateral wall"),
}
#: Where the reports' grades change: the X-ray's heart size (normal / mild / moderate to
#: severe cardiomegaly, by cardiothoracic ratio) and the echo's LV size (normal / mildly /
#: severely dilated, by end-diastolic diameter). A report states the grade, not the value.
CTR_GRADES = (0.5, 0.56)
LVEDD_GRADES_CM = (5.6, 6.3)
BINARY = {
    "echo": ("pacemaker", *(f"{v}_occlusion" for v in VESSELS)),
    "ecg": ("paced", "rbbb", "lbbb", *(f"{v}_occlusion" for v in VESSELS)),
    "angio": tuple(f"{v}_occlusion" for v in VESSELS),
    "cxr": ("consolidation", "edema", "pacemaker"),
}


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def findings(s: StudyState, rng: np.random.Generator, error_rate: float) -> tuple[dict, str | None]:
    """The findings a report states, with at most one omission or wrong statement."""
    binary = {k: bool(getattr(s, k)) for k in BINARY[s.test]}
    if s.test == "ecg":
        binary["rbbb"] &= not s.paced
        binary["lbbb"] &= not s.paced
    f: dict[str, bool | float | None] = dict(binary)
    if s.test == "echo":
        f["lvef"] = s.lvef
    if rng.random() >= error_rate:
        return f, None
    key = _pick(rng, list(f))
    if rng.random() < 0.5:
        f[key] = None
        return f, f"omitted {key}"
    shift = 15.0 if rng.random() < 0.5 else -15.0
    old = f[key]
    assert old is not None  # set just above; None only marks an omission
    f[key] = (not old) if isinstance(old, bool) else float(np.clip(old + shift, 15, 80))
    return f, f"wrong {key}"


def echo_report(s: StudyState, f: dict, rng: np.random.Generator) -> str:
    out = []
    size = ("normal in size", "mildly dilated", "severely dilated")[
        int(np.digitize(s.lvedd_cm, LVEDD_GRADES_CM))
    ]
    out.append(
        _pick(rng, [f"The left ventricle is {size}.", f"Left ventricular cavity size is {size}."])
    )
    ef = f["lvef"]
    if ef is not None:
        e = int(5 * round(ef / 5)) if rng.random() < 0.5 else int(round(ef))
        grade = (
            "normal"
            if ef >= 52
            else "mildly reduced"
            if ef >= 41
            else "moderately reduced"
            if ef >= 30
            else "severely reduced"
        )
        out.append(
            _pick(
                rng,
                [
                    f"The left ventricular ejection fraction is estimated to be {e}%.",
                    f"LV ejection fraction is {e}%.",
                    f"Left ventricular systolic function is {grade}, LVEF {e}%.",
                    f"Estimated ejection fraction {e}% ({grade} systolic function).",
                ],
            )
        )
    walls = [TERRITORY[v][1] for v in VESSELS if f.get(f"{v}_occlusion")]
    if walls:
        out.append(
            _pick(
                rng,
                [
                    f"Regional wall motion abnormality involving {' and '.join(walls)}.",
                    f"Hypokinesis of {' and '.join(walls)}.",
                ],
            )
        )
    elif all(f.get(f"{v}_occlusion") is not None for v in VESSELS):
        out.append(_pick(rng, ["No regional wall motion abnormalities.", "Wall motion is normal."]))
    if f["pacemaker"]:
        out.append(
            _pick(
                rng,
                [
                    "Echo density in right ventricle suggestive of catheter, pacer lead, "
                    "or ICD lead.",
                    "A pacer lead is seen in the right ventricle.",
                    "Device lead visualized in the right heart.",
                ],
            )
        )
    elif f["pacemaker"] is not None and rng.random() < 0.3:
        out.append("No device leads are seen.")
    if rng.random() < 0.5:
        out.append(f"Heart rate {int(round(s.hr))} bpm.")
    return " ".join(out)


def ecg_report(s: StudyState, f: dict, rng: np.random.Generator) -> str:
    hr = int(round(s.hr))
    if f["paced"]:
        lines = [
            _pick(
                rng,
                [
                    "Ventricular paced rhythm.",
                    "Electronic ventricular pacemaker.",
                    "Pacemaker.",
                    "Atrial-sensed ventricular-paced rhythm.",
                ],
            )
        ]
    else:
        rhythm = (
            "Sinus bradycardia"
            if hr < 60
            else "Sinus tachycardia"
            if hr > 100
            else "Normal sinus rhythm"
        )
        lines = [f"{rhythm}."]
    if f["rbbb"]:
        lines.append(
            _pick(
                rng, ["Right bundle branch block.", "RBBB.", "Complete right bundle branch block."]
            )
        )
    if f["lbbb"]:
        lines.append(
            _pick(rng, ["Left bundle branch block.", "LBBB.", "Complete left bundle branch block."])
        )
    if not f["paced"] and s.axis_deg < -30:
        lines.append("Left axis deviation.")
    elif not f["paced"] and s.axis_deg > 95:
        lines.append("Right axis deviation.")
    for v in VESSELS:
        if f[f"{v}_occlusion"]:
            lines.append(
                _pick(
                    rng,
                    [
                        f"{TERRITORY[v][0].capitalize()} infarct, age undetermined.",
                        f"Q waves in the {TERRITORY[v][0]} leads, "
                        f"consider old {TERRITORY[v][0]} infarct.",
                        f"T wave abnormality, consider {TERRITORY[v][0]} ischemia.",
                    ],
                )
            )
    abnormal = len(lines) > 1 or f["paced"]
    lines.append(
        "Abnormal ECG." if abnormal else _pick(rng, ["Normal ECG.", "Otherwise normal ECG."])
    )
    qtc = s.qt_ms / np.sqrt(60.0 / s.hr)
    lines.append(
        f"Vent. rate {hr} BPM. PR interval {int(s.pr_ms)} ms. QRS duration {int(s.qrs_ms)} ms. "
        f"QT/QTc {int(s.qt_ms)}/{int(qtc)} ms. QRS axis {int(round(s.axis_deg))}."
    )
    return " ".join(lines) if rng.random() < 0.5 else "\n".join(lines)


def angio_report(s: StudyState, f: dict, rng: np.random.Generator) -> str:
    out, found = ["Findings: Left main: no significant disease."], []
    for v in VESSELS:
        short, long_ = VESSEL_NAMES[v]
        if f[f"{v}_occlusion"]:
            out.append(
                _pick(
                    rng,
                    [
                        f"{short}: 100% occluded in the proximal to mid segment.",
                        f"{short}: total occlusion with abrupt cut-off.",
                        f"{short}: the {long_} is totally occluded.",
                    ],
                )
            )
            found.append(v)
        elif f[f"{v}_occlusion"] is not None:
            out.append(
                _pick(
                    rng,
                    [
                        f"{short}: no significant stenosis.",
                        f"{short}: mild luminal irregularities.",
                        f"{short}: patent.",
                    ],
                )
            )
    if found:
        concl = " ".join(
            f"{i}. {VESSEL_NAMES[v][0]} had an occlusion. 100% occluded {VESSEL_NAMES[v][1]}."
            for i, v in enumerate(found, 1)
        )
    else:
        concl = "1. No obstructive coronary artery disease."
    out.append(f"Conclusion: {concl}")
    return " ".join(out)


def cxr_report(s: StudyState, f: dict, rng: np.random.Generator, prev: StudyState | None) -> str:
    out = []
    heart = (
        "The heart is normal in size.",
        "Mild cardiomegaly.",
        "Moderate to severe cardiomegaly.",
    )[int(np.digitize(s.ctr, CTR_GRADES))]
    out.append(heart)
    if f["edema"]:
        same = prev is not None and prev.edema
        out.append(
            "Edema is unchanged."
            if same and rng.random() < 0.5
            else _pick(
                rng,
                [
                    "There is a pulmonary edema in the lung.",
                    "Interstitial pulmonary edema.",
                    "Findings consistent with pulmonary edema.",
                ],
            )
        )
    elif f["edema"] is not None:
        out.append(_pick(rng, ["No pulmonary edema.", "No evidence of edema."]))
    if f["consolidation"]:
        same = prev is not None and prev.consolidation
        out.append(
            "Consolidation is unchanged."
            if same and rng.random() < 0.5
            else _pick(
                rng,
                [
                    "There is consolidation in the lung.",
                    "Focal consolidation, concerning for pneumonia.",
                    "Airspace consolidation is present.",
                ],
            )
        )
    elif f["consolidation"] is not None:
        out.append(
            _pick(rng, ["No focal consolidation.", "Lungs are clear without consolidation."])
        )
    if f["pacemaker"]:
        out.append(
            _pick(
                rng,
                [
                    "Left-sided pacemaker with lead in the right ventricle.",
                    "Cardiac pacing device in place.",
                ],
            )
        )
    out.append(_pick(rng, ["No pneumothorax.", "No pleural effusion or pneumothorax.", ""]))
    return " ".join(x for x in out if x)


def write_report(
    s: StudyState, rng: np.random.Generator, error_rate: float, prev: StudyState | None = None
) -> tuple[str, str | None]:
    """(report text, error description or None) for a study."""
    f, err = findings(s, rng, error_rate)
    if s.test == "echo":
        return echo_report(s, f, rng), err
    if s.test == "ecg":
        return ecg_report(s, f, rng), err
    if s.test == "angio":
        return angio_report(s, f, rng), err
    return cxr_report(s, f, rng, prev), err
