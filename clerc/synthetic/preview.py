"""Contact sheets of a cohort: echo and angiogram frames, 12-lead ECGs, X-rays, with reports.

Examples are picked from the ground truth to show the range (lowest and highest LVEF,
a pacemaker, conduction blocks, occlusions, edema and consolidation) when the cohort has
them; files are read back through ``clerc.data.readers`` exactly as training reads them.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from clerc.modalities import ECG_LEADS

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: test -> (diagnostic modality, wanted studies: {column: value, or "min"/"max"}).
PICKS: dict[str, tuple[str, list[dict[str, object]]]] = {
    "echo": (
        "echo_video",
        [{"lvef": "min"}, {"lvef": "max"}, {"pacemaker": True}, {"lad_occlusion": True}],
    ),
    "ecg": (
        "ecg_waveform",
        [
            {"qrs_ms": "min"},
            {"rbbb": True, "paced": False},
            {"lbbb": True, "paced": False},
            {"paced": True},
        ],
    ),
    "angio": (
        "angio_video",
        [
            {"lad_occlusion": True},
            {"rca_occlusion": True},
            {"lcx_occlusion": True},
            {"lad_occlusion": False},
        ],
    ),
    "cxr": (
        "cxr_image",
        [
            {"ctr": "min"},
            {"ctr": "max"},
            {"edema": True},
            {"consolidation": True},
            {"pacemaker": True},
            {"sex": "F"},
        ],
    ),
}


def pick_studies(truth: pd.DataFrame, test: str) -> list[str]:
    """Study ids illustrating ``test``: one per wanted feature, distinct, when present."""
    rows = truth[truth["test"] == test]
    chosen: list[str] = []
    for want in PICKS[test][1]:
        pool = rows[~rows["study_id"].isin(chosen)]
        for col, value in want.items():
            if value not in ("min", "max"):
                pool = pool[pool[col] == value]
        if pool.empty:
            continue
        col, value = next(iter(want.items()))
        if value in ("min", "max"):
            idx = pool[col].idxmin() if value == "min" else pool[col].idxmax()
            chosen.append(str(pool.loc[idx, "study_id"]))
        else:
            chosen.append(str(pool["study_id"].iloc[0]))
    return chosen


def _caption(ax: Axes, text: str, width: int, *, centre: bool) -> None:
    """A report as monospaced text in a panel of its own (top- or centre-aligned)."""
    ax.text(
        0,
        0.5 if centre else 1,
        _wrap(text, width),
        fontsize=7,
        va="center" if centre else "top",
        family="monospace",
    )


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(" ".join(str(text).split()), width))


def _first_sample(samples: pd.DataFrame, study: str, modality: str) -> pd.Series:
    rows = samples[(samples["study_id"] == study) & (samples["modality"] == modality)]
    return rows.iloc[0]


def _report(samples: pd.DataFrame, study: str, modality: str) -> str:
    return str(_first_sample(samples, study, modality.split("_")[0] + "_text")["text"])


def _video_sheet(
    root: Path, samples: pd.DataFrame, studies: list[str], modality: str, title: str, out: Path
) -> None:
    import matplotlib.pyplot as plt

    from clerc.data.readers import read_video

    n_frames = 6
    fig, axes = plt.subplots(
        len(studies),
        n_frames + 1,
        figsize=(2 * n_frames + 5, 2.2 * len(studies)),
        squeeze=False,
        gridspec_kw={"width_ratios": [1] * n_frames + [2.8]},
    )
    for r, study in enumerate(studies):
        frames, fps = read_video(root / _first_sample(samples, study, modality)["path"])
        for c, k in enumerate(np.linspace(0, len(frames) - 1, n_frames).astype(int)):
            axes[r, c].imshow(frames[k], cmap="gray", vmin=0, vmax=255)
            axes[r, c].set_title(f"t={k / fps:.2f}s", fontsize=7)
            axes[r, c].axis("off")
        axes[r, -1].axis("off")
        _caption(axes[r, -1], _report(samples, study, modality), 55, centre=True)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def _ecg_sheet(root: Path, samples: pd.DataFrame, studies: list[str], out: Path) -> None:
    import matplotlib.pyplot as plt

    from clerc.data.readers import read_ecg

    fig, axes = plt.subplots(
        13,
        len(studies),
        figsize=(4.2 * len(studies), 15),
        squeeze=False,
        sharex=True,
        gridspec_kw={"height_ratios": [1] * 12 + [2.2]},
    )
    t = np.arange(1250) / 500.0
    for c, study in enumerate(studies):
        sig = read_ecg(root / _first_sample(samples, study, "ecg_waveform")["path"])
        for r, lead in enumerate(ECG_LEADS):
            ax = axes[r, c]
            ax.plot(t, sig[r, 1000:2250], lw=0.6, color="k")
            ax.set_ylim(-2.5, 2.5)
            ax.set_yticks([])
            ax.grid(alpha=0.3)
            ax.text(0.01, 0.8, lead, transform=ax.transAxes, fontsize=7)
        axes[-1, c].axis("off")
        _caption(axes[-1, c], _report(samples, study, "ecg_waveform"), 48, centre=False)
    fig.suptitle("12-lead ECGs (2.5 s of 10 s, mV)")
    fig.tight_layout()
    fig.savefig(out, dpi=70)
    plt.close(fig)


def _cxr_sheet(root: Path, samples: pd.DataFrame, studies: list[str], out: Path) -> None:
    import matplotlib.pyplot as plt

    from clerc.data.readers import read_image

    fig, axes = plt.subplots(
        2,
        len(studies),
        figsize=(3.2 * len(studies), 6.5),
        squeeze=False,
        gridspec_kw={"height_ratios": [3, 1.3]},
    )
    for c, study in enumerate(studies):
        img = read_image(root / _first_sample(samples, study, "cxr_image")["path"])
        axes[0, c].imshow(img, cmap="gray", vmin=0, vmax=255)
        axes[0, c].axis("off")
        axes[1, c].axis("off")
        _caption(axes[1, c], _report(samples, study, "cxr_image"), 34, centre=False)
    fig.suptitle("Chest X-rays")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def render_preview(cohort: str | Path, out: str | Path | None = None) -> list[Path]:
    """Write ``echo.png``, ``ecg.png``, ``angio.png``, ``cxr.png`` into ``out``
    (default ``cohort/preview``); tests the cohort lacks are skipped. Returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    from clerc.data.manifest import read_manifest

    root = Path(cohort)
    truth_file = root / "ground_truth.parquet"
    if not truth_file.is_file():
        raise FileNotFoundError(f"{truth_file}: not found; --preview expects a synthetic cohort")
    truth = pd.read_parquet(truth_file)
    samples = read_manifest(root).samples
    out = Path(out) if out else root / "preview"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for test in ("echo", "ecg", "angio", "cxr"):
        studies = pick_studies(truth, test)
        if not studies:
            continue
        path = out / f"{test}.png"
        if test == "ecg":
            _ecg_sheet(root, samples, studies, path)
        elif test == "cxr":
            _cxr_sheet(root, samples, studies, path)
        else:
            label = {"echo": "Echocardiograms (A4C)", "angio": "Coronary angiograms"}[test]
            _video_sheet(root, samples, studies, PICKS[test][0], label, path)
        written.append(path)
    return written
