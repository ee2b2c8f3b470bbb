"""MIMIC-IV (ECG, CXR-JPG, ECHO, hosp) -> one manifest, joined on ``subject_id`` only.

Each module is optional. Study ids keep their module prefix (``ecg:``, ``cxr:``,
``echo:``) because the modules number studies independently. Splits are by patient:
the official MIMIC-CXR split where a patient has one, otherwise a hash of the seed and
the patient id. ``max_gap_days`` is recorded in the account (pairing across modules
happens at scoring time) and drops labels further than that from every sample of the
label's own modality for that patient.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from clerc.adapters.common import (
    Account,
    Part,
    assign_splits,
    drop_beyond_gap,
    drop_orphan_labels,
    finish,
    labels_frame,
    samples_frame,
)
from clerc.adapters.mimic_cxr import UNCERTAIN_RULES


@dataclass(frozen=True)
class MimicOptions:
    """Where each module lives and how to read it."""

    out: Path
    ecg: Path | None = None
    cxr: Path | None = None
    cxr_reports: Path | None = None
    echo: Path | None = None
    hosp: Path | None = None
    max_gap_days: float | None = None
    seed: int = 0
    uncertain: str = "drop"
    all_views: bool = False

    def __post_init__(self) -> None:
        if not any((self.ecg, self.cxr, self.echo)):
            raise ValueError("give at least one of --ecg, --cxr, --echo")
        if self.uncertain not in UNCERTAIN_RULES:
            raise ValueError(
                f"uncertain must be one of {tuple(UNCERTAIN_RULES)}, got {self.uncertain!r}"
            )
        if self.max_gap_days is not None and not self.max_gap_days >= 0:
            raise ValueError(f"max_gap_days must be >= 0, got {self.max_gap_days}")
        if self.cxr_reports is not None and self.cxr is None:
            raise ValueError("--cxr-reports needs --cxr (the images and CSVs)")
        for name in ("ecg", "cxr", "cxr_reports", "echo", "hosp"):
            value = getattr(self, name)
            if value is not None and not Path(value).is_dir():
                raise ValueError(f"--{name.replace('_', '-')} {value}: not a directory")


def read_parts(opts: MimicOptions, account: Account) -> list[Part]:
    """Read every module that was given."""
    from clerc.adapters.mimic_cxr import read_mimic_cxr
    from clerc.adapters.mimic_ecg import read_mimic_ecg
    from clerc.adapters.mimic_echo import read_mimic_echo

    parts = []
    if opts.ecg is not None:
        parts.append(read_mimic_ecg(opts.ecg, account))
    if opts.cxr is not None:
        parts.append(
            read_mimic_cxr(
                opts.cxr,
                account,
                reports=opts.cxr_reports,
                uncertain=opts.uncertain,
                all_views=opts.all_views,
            )
        )
    if opts.echo is not None:
        parts.append(read_mimic_echo(opts.echo, account))
    return parts


def adapt_mimic(opts: MimicOptions, *, quiet: bool = False, progress: Any = None) -> Path:
    """Write the manifest and account.json for the MIMIC modules in ``opts``."""
    from clerc.adapters.mimic_hosp import read_patients

    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()}
    account = Account("mimic", settings, progress=progress)
    account.notes["study_ids"] = "prefixed per module (ecg:, cxr:, echo:); joined on subject_id"
    account.notes["chexpert_rule"] = (
        f"1 -> 1, 0 -> 0, -1 (uncertain) -> {opts.uncertain}, blank (unmentioned) -> dropped"
    )
    parts = read_parts(opts, account)
    samples = pd.concat([p.samples for p in parts] or [samples_frame([])], ignore_index=True)
    labels = pd.concat([p.labels for p in parts] or [labels_frame([])], ignore_index=True)
    labels = drop_beyond_gap(samples, labels, opts.max_gap_days, account)
    official = {k: v for p in parts for k, v in p.official_splits.items()}
    patient_ids = sorted(set(samples["patient_id"]))
    splits = assign_splits(patient_ids, opts.seed, official)
    account.notes["patients_with_official_split"] = sum(p in official for p in patient_ids)
    samples = samples.assign(split=samples["patient_id"].map(splits))
    labels = drop_orphan_labels(labels, set(splits), account)
    patients = read_patients(opts.hosp, patient_ids, account)
    return finish(opts.out, samples, labels, patients, account, quiet=quiet)
