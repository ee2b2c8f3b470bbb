"""EchoNet-Dynamic: one apical-4-chamber AVI per patient, LVEF, official split.

``FileList.csv`` rows (FileName without ``.avi``, EF, ..., Split TRAIN/VAL/TEST) give an
``echo_video`` sample (``Videos/<FileName>.avi``) and an ``lvef`` label (EF, %).
The patient id and the study id are the FileName. EchoNet releases no times and no
demographics: every sample and label is placed at :data:`PLACEHOLDER_TIME`, sex is <NA>
and anchor_age NaN. There are no echo reports. Missing videos, unparseable EF values and
unknown splits are dropped and counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from clerc.adapters.common import (
    MISSING_FILE,
    MISSING_ID,
    UNKNOWN_SPLIT,
    UNPARSEABLE_VALUE,
    Account,
    finish,
    labels_frame,
    read_csv,
    require_columns,
    samples_frame,
    text_or_none,
)

FILELIST = "FileList.csv"
#: EchoNet has no acquisition times: every sample and label is placed here.
PLACEHOLDER_TIME = pd.Timestamp("2000-01-01")
SPLITS: dict[str, str] = {"TRAIN": "train", "VAL": "val", "TEST": "test"}


def _ef(value: object) -> float | None:
    s = text_or_none(value)
    try:
        v = float(s) if s is not None else None
    except ValueError:
        return None
    return v if v is not None and 0 <= v <= 100 else None


def read_echonet(root: Path, account: Account) -> tuple[list, list, dict]:
    """Sample rows, label rows and patient -> split of an EchoNet-Dynamic copy."""
    path = root / FILELIST
    df = read_csv(path)
    require_columns(df, path, ("FileName", "EF", "Split"))
    samples, labels, splits = [], [], {}
    for i, r in enumerate(df.to_dict("records"), start=2):
        account.read(FILELIST)
        name = (text_or_none(r["FileName"]) or "").removesuffix(".avi")
        ref = f"{path}:{i} FileName={name}"
        if not name:
            account.drop(FILELIST, MISSING_ID, ref)
            continue
        split = SPLITS.get(str(r["Split"]).strip().upper())
        if split is None:
            account.drop(FILELIST, UNKNOWN_SPLIT, f"{ref} Split={r['Split']!r}")
            continue
        video = root / "Videos" / f"{name}.avi"
        if not video.is_file():
            account.drop(FILELIST, MISSING_FILE, f"{ref} path={video}")
            continue
        account.keep(FILELIST)
        splits[name] = split
        samples.append(
            {
                "patient_id": name,
                "study_id": f"echonet:{name}",
                "sample_id": f"echonet:{name}",
                "modality": "echo_video",
                "acquired_at": PLACEHOLDER_TIME,
                "path": str(video),
                "text": None,
            }
        )
        account.read("FileList.csv EF")
        ef = _ef(r["EF"])
        if ef is None:
            account.drop("FileList.csv EF", UNPARSEABLE_VALUE, f"{ref} EF={r['EF']!r}")
            continue
        account.keep("FileList.csv EF")
        labels.append(
            {
                "patient_id": name,
                "study_id": f"echonet:{name}",
                "task": "lvef",
                "value": ef,
                "measured_at": PLACEHOLDER_TIME,
                "source_modality": "echo_video",
            }
        )
    return samples, labels, splits


def adapt_echonet(
    root: str | Path, out: str | Path, *, quiet: bool = False, progress: Any = None
) -> Path:
    """Write the manifest and account.json for an EchoNet-Dynamic copy at ``root``."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise ValueError(f"{root}: not a directory")
    account = Account("echonet", {"root": str(root), "out": str(out)}, progress=progress)
    account.notes["time"] = f"no acquisition times in EchoNet: all at {PLACEHOLDER_TIME.date()}"
    account.notes["demographics"] = "none in EchoNet: sex <NA>, anchor_age NaN"
    sample_rows, label_rows, splits = read_echonet(root, account)
    samples = samples_frame(sample_rows)
    samples = samples.assign(split=samples["patient_id"].map(splits))
    labels = labels_frame(label_rows)
    ids = sorted(splits)
    patients = pd.DataFrame(
        {
            "patient_id": ids,
            "sex": pd.Series([None] * len(ids), dtype=object),
            "anchor_age": float("nan"),
            "anchor_time": PLACEHOLDER_TIME,
            "race": None,
        }
    )
    return finish(out, samples, labels, patients, account, quiet=quiet)
