"""``clerc validate DIR [--deep]``: list every problem of a manifest, or summarise it.

Tables are read raw (before any cast) so that a value that cannot be parsed is reported
with its table, row (0-based position in the Parquet file), column and value. The cheap
check only asks that each file exists and is not empty; ``--deep`` then decodes every
sample with the readers (and reports flat ECGs), once the cheap checks found nothing.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from clerc.data.manifest import (
    OPTIONAL_COLUMNS,
    SCHEMA,
    SPLITS,
    TABLES,
    Manifest,
    read_manifest,
    resolve_path,
)
from clerc.modalities import DIAGNOSTIC, MODALITY_NAMES, get_modality

if TYPE_CHECKING:
    from rich.console import Console


@dataclass(frozen=True)
class Problem:
    """One problem: where it is (table, row, column), the offending value, what is wrong."""

    table: str
    row: int | None
    column: str | None
    value: str | None
    message: str

    def __str__(self) -> str:
        where = self.table + (f" row {self.row}" if self.row is not None else "")
        where += f" column {self.column}" if self.column else ""
        shown = f" value {self.value!r}" if self.value is not None else ""
        return f"{where}:{shown} {self.message}"


def _show(value: object) -> str | None:
    if value is None or (not isinstance(value, (list, tuple, np.ndarray)) and pd.isna(value)):
        return None
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _blank(series: pd.Series) -> pd.Series:
    """True where a cell is missing or an empty string."""
    return series.isna() | (series.astype("string").str.strip() == "")


# --------------------------------------------------------------------------- loading
def _read_raw(root: Path) -> tuple[dict[str, pd.DataFrame], list[Problem]]:
    tables, problems = {}, []
    for name in TABLES:
        f = root / f"{name}.parquet"
        if not f.is_file():
            problems.append(Problem(name, None, None, str(f), "table file not found"))
            continue
        try:
            df = pd.read_parquet(f).reset_index(drop=True)
        except Exception as exc:  # pyarrow raises several types for a corrupt file
            problems.append(Problem(name, None, None, str(f), f"cannot read Parquet: {exc}"))
            continue
        missing = [
            c for c in SCHEMA[name] if c not in df.columns and c not in OPTIONAL_COLUMNS[name]
        ]
        problems += [Problem(name, None, c, None, "required column missing") for c in missing]
        if name == "samples" and "path" not in df.columns and "text" not in df.columns:
            problems.append(
                Problem(
                    name, None, "path", None, "samples need a path or a text column; neither exists"
                )
            )
        tables[name] = df
    return tables, problems


def _times(table: str, df: pd.DataFrame, column: str, required: bool) -> Iterator[Problem]:
    if column not in df.columns:
        return
    raw = df[column]
    parsed = pd.to_datetime(raw, errors="coerce")
    bad = parsed.isna() if required else parsed.isna() & ~_blank(raw)
    for i in np.flatnonzero(bad.to_numpy()):
        value = raw.iloc[i]
        msg = (
            "missing time"
            if _show(value) is None
            else (
                "cannot parse as a date/time in the column's format (inferred from its first "
                "value; use one format, ISO 8601 preferred)"
            )
        )
        yield Problem(table, int(i), column, _show(value), msg)


# --------------------------------------------------------------------------- samples
def _check_samples(
    df: pd.DataFrame, root: Path, known_patients: set[str] | None
) -> Iterator[Problem]:
    yield from _missing_ids("samples", df, ("patient_id", "sample_id"))
    if "sample_id" in df.columns:
        ids = df["sample_id"].astype("string")
        first: dict[str, int] = {}
        for i, sid in enumerate(ids):
            if pd.isna(sid):
                continue
            if sid in first:
                yield Problem(
                    "samples",
                    i,
                    "sample_id",
                    sid,
                    f"duplicate sample_id (first at row {first[sid]})",
                )
            else:
                first[sid] = i
    yield from _check_modality_split(df)
    yield from _times("samples", df, "acquired_at", required=True)
    yield from _check_paths(df, root)
    if known_patients is not None and "patient_id" in df.columns:
        yield from _unknown_patients("samples", df, known_patients)


def _missing_ids(table: str, df: pd.DataFrame, columns: tuple[str, ...]) -> Iterator[Problem]:
    for col in columns:
        if col in df.columns:
            for i in np.flatnonzero(_blank(df[col]).to_numpy()):
                yield Problem(table, int(i), col, None, f"missing {col}")


def _check_modality_split(df: pd.DataFrame) -> Iterator[Problem]:
    if "modality" in df.columns:
        for i, m in enumerate(df["modality"].astype("string")):
            if pd.isna(m) or m not in MODALITY_NAMES:
                close = difflib.get_close_matches(str(m), MODALITY_NAMES, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                yield Problem(
                    "samples",
                    i,
                    "modality",
                    _show(m),
                    f"unknown modality{hint}; expected one of {', '.join(MODALITY_NAMES)}",
                )
    if "split" not in df.columns:
        return
    split = df["split"].astype("string")
    for i, s in enumerate(split):
        if pd.isna(s) or s not in SPLITS:
            yield Problem(
                "samples",
                i,
                "split",
                _show(s),
                f"invalid split; expected one of {', '.join(SPLITS)}",
            )
    if "patient_id" in df.columns:
        yield from _split_leaks(df["patient_id"].astype("string"), split)


def _split_leaks(patients: pd.Series, split: pd.Series) -> Iterator[Problem]:
    """One problem per patient whose samples are in more than one split."""
    first_split: dict[str, str] = {}
    reported: set[str] = set()
    for i, (p, s) in enumerate(zip(patients, split, strict=True)):
        if pd.isna(p) or pd.isna(s) or s not in SPLITS:
            continue
        if p not in first_split:
            first_split[p] = s
        elif s != first_split[p] and p not in reported:
            reported.add(p)
            splits = sorted(set(split[patients == p].dropna()) & set(SPLITS))
            yield Problem(
                "samples",
                i,
                "split",
                s,
                f"patient {p} is in more than one split ({', '.join(splits)}); "
                "splits must be by patient",
            )


def _check_paths(df: pd.DataFrame, root: Path) -> Iterator[Problem]:
    paths = df["path"] if "path" in df.columns else pd.Series(pd.NA, index=df.index)
    texts = df["text"] if "text" in df.columns else pd.Series(pd.NA, index=df.index)
    modalities = df["modality"] if "modality" in df.columns else pd.Series(pd.NA, index=df.index)
    no_path, no_text = _blank(paths).to_numpy(), _blank(texts).to_numpy()
    for i in range(len(df)):
        modality = None if pd.isna(modalities.iloc[i]) else str(modalities.iloc[i])
        is_text = (
            modality is not None and modality in MODALITY_NAMES and get_modality(modality).is_text
        )
        if no_path[i] and no_text[i]:
            yield Problem("samples", i, "path", None, "sample has neither a path nor a text")
        elif no_path[i] and modality in MODALITY_NAMES and not is_text:
            yield Problem(
                "samples",
                i,
                "path",
                None,
                f"a {modality} sample needs a file path (inline text is for reports)",
            )
        elif not no_path[i]:
            msg = _file_problem(root, str(paths.iloc[i]), modality)
            if msg:
                yield Problem("samples", i, "path", str(paths.iloc[i]), msg)


def _file_problem(root: Path, path: str, modality: str | None) -> str | None:
    """Why the file is unusable (cheap check), or None."""
    f = resolve_path(root, path)
    if modality == "ecg_waveform" and f.suffix.lower() not in (".npy",):
        f = f.with_suffix("") if f.suffix.lower() in (".hea", ".dat") else f
        f = f.with_name(f.name + ".hea")
    if not f.is_file():
        return f"file not found: {f}"
    if f.stat().st_size == 0:
        return f"file is empty: {f}"
    return None


def _unknown_patients(table: str, df: pd.DataFrame, known: set[str]) -> Iterator[Problem]:
    for i, p in enumerate(df["patient_id"].astype("string")):
        if not pd.isna(p) and p not in known:
            yield Problem(table, i, "patient_id", p, "patient not in patients.parquet")


# --------------------------------------------------------------------------- labels, patients
def _label_kinds() -> dict[str, str]:
    """label task -> kind (binary | regression), from the packaged task definitions."""
    from clerc.evaluate.registry import load_definitions

    return {d.label: d.kind for d in load_definitions()}


def _check_binary_values(df: pd.DataFrame) -> Iterator[Problem]:
    """A label of a binary task must be 0 or 1 (``1.0`` counts; ``2`` or ``0.7`` do not)."""
    if "task" not in df.columns or "value" not in df.columns:
        return
    kinds = _label_kinds()
    values = pd.to_numeric(df["value"], errors="coerce").astype("float64").to_numpy()
    for i, task in enumerate(df["task"].astype("string")):
        v = values[i]
        if (
            not pd.isna(task)
            and kinds.get(task) == "binary"
            and np.isfinite(v)
            and v not in (0.0, 1.0)
        ):
            yield Problem(
                "labels",
                i,
                "value",
                _show(df["value"].iloc[i]),
                f"{task} is a binary task: expected 0 or 1",
            )


def unknown_label_tasks(manifest: Manifest) -> list[str]:
    """One warning per label task that no task definition reads (scoring ignores its rows)."""
    kinds = _label_kinds()
    counts = manifest.labels["task"].dropna().value_counts()
    out = []
    for task, n in counts.items():
        if task not in kinds:
            close = difflib.get_close_matches(str(task).lower(), list(kinds), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            out.append(
                f"labels task {task!r} ({n} rows) is not read by any task definition"
                f"{hint}; scoring ignores it unless a --tasks-file defines it"
            )
    return out


def _check_labels(df: pd.DataFrame, known_patients: set[str] | None) -> Iterator[Problem]:
    yield from _missing_ids("labels", df, ("patient_id", "task"))
    yield from _check_binary_values(df)
    if known_patients is not None and "patient_id" in df.columns:
        yield from _unknown_patients("labels", df, known_patients)
    if "value" in df.columns:
        raw = df["value"]
        values = pd.to_numeric(raw, errors="coerce").astype("float64").to_numpy()
        for i in np.flatnonzero(~np.isfinite(values)):
            number = pd.isna(raw.iloc[i]) or isinstance(raw.iloc[i], (int, float, np.number))
            msg = "non-finite label value" if number else "label value is not a number"
            yield Problem("labels", int(i), "value", _show(raw.iloc[i]) or "NA", msg)
    if "source_modality" in df.columns:
        for k, m in enumerate(df["source_modality"].astype("string")):
            if pd.isna(m) or m not in DIAGNOSTIC:
                yield Problem(
                    "labels",
                    k,
                    "source_modality",
                    _show(m),
                    f"expected a diagnostic modality: {', '.join(DIAGNOSTIC)}",
                )
    yield from _times("labels", df, "measured_at", required=False)
    yield from _conflicting_labels(df)


def _conflicting_labels(df: pd.DataFrame) -> Iterator[Problem]:
    """Two values of one task (same source) for one study, or for one patient at one time:
    evaluation could not tell which is the label."""
    base = ["patient_id", "task", "source_modality"]
    if not set(base) | {"value"} <= set(df.columns):
        return
    value = pd.to_numeric(df["value"], errors="coerce")
    reported: set[int] = set()
    for col in ("study_id", "measured_at"):
        if col not in df.columns:
            continue
        keys = df[[*base, col]].astype("string").assign(number=value, row=np.arange(len(df)))
        keys = keys[keys[col].notna() & keys["number"].notna()]
        first = keys.drop_duplicates([*base, col]).set_index([*base, col])["row"]
        seen = keys.drop_duplicates([*base, col, "number"])
        for rec in seen[seen.duplicated([*base, col])].to_dict("records"):
            if rec["row"] in reported:
                continue
            reported.add(rec["row"])
            origin = int(first[tuple(rec[c] for c in (*base, col))])
            yield Problem(
                "labels",
                int(rec["row"]),
                "value",
                _show(rec["number"]),
                f"conflicts with row {origin}: another value of task "
                f"{rec['task']!r} for the same {col.removesuffix('_id')}",
            )


def _check_patients(df: pd.DataFrame) -> Iterator[Problem]:
    yield from _missing_ids("patients", df, ("patient_id",))
    if "patient_id" in df.columns:
        dup = df["patient_id"].astype("string").duplicated() & ~_blank(df["patient_id"])
        for i in np.flatnonzero(dup.to_numpy()):
            yield Problem(
                "patients",
                int(i),
                "patient_id",
                str(df["patient_id"].iloc[i]),
                "duplicate patient_id",
            )
    if "sex" in df.columns:
        for k, s in enumerate(df["sex"].astype("string")):
            if not pd.isna(s) and s not in ("F", "M"):
                yield Problem("patients", k, "sex", s, "expected F, M or missing")
    if "anchor_age" in df.columns:
        raw = df["anchor_age"]
        ages = pd.to_numeric(raw, errors="coerce").astype("float64").to_numpy()
        bad = (np.isnan(ages) & ~raw.isna().to_numpy()) | np.isinf(ages) | (ages < 0)
        for i in np.flatnonzero(bad):
            yield Problem(
                "patients",
                int(i),
                "anchor_age",
                _show(raw.iloc[i]),
                "expected a finite, non-negative age in years",
            )
    yield from _times("patients", df, "anchor_time", required=False)


# --------------------------------------------------------------------------- entry points
def validate_manifest(root: str | Path, *, deep: bool = False) -> list[Problem]:
    """Every problem of the manifest in ``root`` (empty list = valid)."""
    root = Path(root)
    if not root.is_dir():
        return [Problem("manifest", None, None, str(root), "no such directory")]
    tables, problems = _read_raw(root)
    patients = tables.get("patients")
    known = None
    if patients is not None and "patient_id" in patients.columns:
        known = set(patients["patient_id"].dropna().astype(str))
    if patients is not None:
        problems += _check_patients(patients)
    if "samples" in tables:
        problems += _check_samples(tables["samples"], root, known)
    if "labels" in tables:
        problems += _check_labels(tables["labels"], known)
    if problems:
        return problems
    try:
        manifest = read_manifest(root)
    except ValueError as exc:  # a cast the checks above do not foresee
        return [Problem("manifest", None, None, None, str(exc))]
    return _deep_check(manifest) if deep else []


def _deep_check(manifest: Manifest) -> list[Problem]:
    """Decode every sample with the readers; report failures and flat ECGs."""
    from rich.progress import Progress

    from clerc.data.readers import ReaderError, is_flat, load_sample

    problems = []
    with Progress(transient=True) as progress:
        task = progress.add_task("decoding samples", total=len(manifest.samples))
        for i, row in manifest.samples.iterrows():
            try:
                value = load_sample(manifest, row)
            except ReaderError as exc:
                problems.append(Problem("samples", int(i), "path", _show(row["path"]), str(exc)))
            else:
                if (
                    row["modality"] == "ecg_waveform"
                    and isinstance(value, np.ndarray)
                    and is_flat(value)
                ):
                    problems.append(
                        Problem(
                            "samples",
                            int(i),
                            "path",
                            _show(row["path"]),
                            "ECG is flat (every lead constant)",
                        )
                    )
            progress.advance(task)
    return problems


# --------------------------------------------------------------------------- summary
@dataclass(frozen=True)
class Summary:
    """``samples``: modality x (train, val, test, total) sample counts; ``patients``:
    modality x modality patients having both (the diagonal: patients with the modality)."""

    samples: pd.DataFrame
    patients: pd.DataFrame


def summarise(manifest: Manifest) -> Summary:
    """Samples per modality and split, and patients per modality pair (Table 1 style)."""
    s = manifest.samples
    counts = pd.crosstab(s["modality"], s["split"]).reindex(
        index=list(MODALITY_NAMES), columns=list(SPLITS), fill_value=0
    )
    counts["total"] = counts.sum(axis=1)
    have = (
        pd.crosstab(s["patient_id"], s["modality"]).reindex(
            columns=list(MODALITY_NAMES), fill_value=0
        )
        > 0
    )
    m = have.to_numpy(dtype=np.int64)
    pairs = pd.DataFrame(m.T @ m, index=list(MODALITY_NAMES), columns=list(MODALITY_NAMES))
    return Summary(samples=counts.astype("int64"), patients=pairs)


def print_summary(summary: Summary, console: Console | None = None) -> None:
    """Print the two summary tables with rich."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    t = Table("modality", *summary.samples.columns, title="Samples per modality and split")
    for name, row in summary.samples.iterrows():
        t.add_row(str(name), *(f"{int(v):,}" for v in row))
    console.print(t)
    names = list(summary.patients.index)
    p = Table("", *names, title="Patients with each pair of modalities")
    for i, name in enumerate(names):
        cells = [
            f"{int(summary.patients.iloc[i, j]):,}" if j <= i else "" for j in range(len(names))
        ]
        p.add_row(name, *cells)
    console.print(p)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", type=Path, help="manifest directory")
    parser.add_argument(
        "--deep", action="store_true", help="decode every sample with the readers (slow)"
    )


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    problems = validate_manifest(args.dir, deep=args.deep)
    if problems:
        table = Table(title=f"{len(problems)} problem(s) in {args.dir}")
        for name in ("table", "row", "column", "value", "problem"):
            table.add_column(name, overflow="fold")
        for p in problems:
            table.add_row(
                p.table,
                "" if p.row is None else str(p.row),
                p.column or "",
                p.value or "",
                p.message,
            )
        console.print(table)
        return 1
    manifest = read_manifest(args.dir)
    print_summary(summarise(manifest), console)
    for warning in unknown_label_tasks(manifest):
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    return 0
