"""``clerc report``: render ``reports/*.html`` from ``results.json`` (+ ``predictions.parquet``).

Input (CONTRACTS.md, "Results"): ``{"provenance": {...}, "cohort": {...}, "records": [...]}``.
Records are read as plain JSON (every key of ``Record``). The cohort has this shape::

    "cohort": {
      "table1": {
        "patients": {"echo_video": 312, ...},          # patients with each modality
        "pairs": {"echo_video|ecg_waveform": 201, ...}  # patients with both; either order
      },
      "table2": {
        "splits": ["total", "train", "val", "test"],
        "rows": {                                        # rendered in this order
          "patients": {"total": 500, "train": 400, ...},
          "age": {"total": {"mean": 64.6, "std": 17.9}, ...},
          "female": {"total": {"n": 251, "pct": 50.3}, ...},
          "race": {"Black": {"total": {"n": 72, "pct": 14.5}, ...}, ...},
          "patients_with_modality": {"echo_video": {"total": 312, ...}, ...},
          "studies": {"echo_video": {"total": 624, ...}, ...},
          "samples": {"echo_video": {"total": 1560, ...}, ...}
        }
      }
    }

A ``rows`` entry keyed by split names is one row; any other object is a section of rows
(modality names are shown as Echo / EKG / Angiogram / CXR). A cell is a count, ``{"n", "pct"}``,
``{"mean", "std"}`` or null (shown as "—"). Table 4's paired differences are records with
``setting = "difference"``: the same ``metric`` (linear probe minus supervised, with its CI)
and ``metric = "<metric>_p_holm"`` (the Holm-adjusted p-value in ``value``).

Only aggregates are shown; every string from the input is escaped by the templates, and the
only markup inserted verbatim is matplotlib's SVG (text drawn as paths, see ``plots``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from clerc.evaluate.results import PREDICTION_COLUMNS, PREDICTION_KINDS, TABLES, index_records

TEMPLATES = Path(__file__).with_name("templates")
PAGES = {
    "index": "Overview",
    "table1": "Table 1: Patients per modality and pair",
    "table2": "Table 2: Patient demographics",
    "table3": "Table 3: Cross-modal retrieval",
    "table4": "Table 4: Zero-shot and linear probing",
    "table5": "Table 5: Cross-modal linear probing",
}


def environment() -> Environment:
    """Jinja environment over the package templates: autoescape on, undefined is an error."""
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def load_results(path: Path) -> dict:
    """Read and check ``results.json``; errors name the file, the record and the field."""
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"results file {path} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"results file {path} is a directory; give its results.json") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"results file {path} is not valid JSON: {err}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"results file {path}: expected a JSON object, got {type(doc).__name__}")
    for key in ("provenance", "cohort", "records"):
        if key not in doc:
            raise ValueError(f"results file {path}: missing top-level key {key!r}")
    for key in ("table1", "table2"):
        if key not in doc["cohort"]:
            raise ValueError(f"results file {path}: missing cohort.{key}")
    index_records(doc, f"results file {path}")
    return doc


def load_predictions(path: Path):
    """``predictions.parquet`` reduced to its four aggregate-safe columns, or None if absent."""
    import pandas as pd

    if not path.exists():
        return None
    frame = pd.read_parquet(path)
    missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {', '.join(missing)}")
    bad = set(frame["kind"].unique()) - set(PREDICTION_KINDS)
    if bad:
        raise ValueError(
            f"{path}: unknown kind {sorted(map(str, bad))}; expected {sorted(PREDICTION_KINDS)}"
        )
    return frame[list(PREDICTION_COLUMNS)]


def _flatten(value: object, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict) and value:
        return [
            row
            for k, v in value.items()
            for row in _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        ]
    if isinstance(value, dict | list) and not value:
        return [(prefix, "—")]
    if isinstance(value, list):
        return [(prefix, ", ".join(map(str, value)))]
    return [(prefix, "—" if value is None else str(value))]


def _plots(records: list[dict], predictions) -> list:
    from clerc.report import plots

    out = []
    median = {
        (r["query_modality"], r["gallery_modality"]): r["value"]
        for r in records
        if r["table"] == "table3" and r["metric"] == "median_percentile"
    }
    if median:
        out.append(plots.heatmap(median, "Median percentile"))
    if predictions is not None:
        for make in (
            plots.roc_curves,
            plots.regression_scatter,
            plots.retrieval_distribution,
            plots.reliability_diagram,
        ):
            plot = make(predictions)
            if plot is not None:
                out.append(plot)
    return out


def contexts(doc: dict, predictions, source: str) -> dict[str, dict]:
    """The template context of every page, keyed by page name."""
    from clerc.report import extras, tables

    everything = doc["records"]
    records = [r for r in everything if extras.is_main(r)]
    counts = {t: sum(r["table"] == t for r in records) for t in TABLES}
    pages_shown = dict(PAGES)
    extra_pages: dict[str, dict] = {}
    for family in extras.families(everything):
        name = f"subgroups_{family}"
        pages_shown[name] = f"Subgroups by {extras.FAMILY_LABELS.get(family, family).lower()}"
        extra_pages[name] = {**extras.subgroup_page(everything, family), "template": "subgroups"}
        counts[name] = sum(str(r.get("subgroup") or "").split("=")[0] == family for r in everything)
    if any(r.get("train_fraction") is not None for r in everything):
        pages_shown["label_efficiency"] = "Label efficiency"
        extra_pages["label_efficiency"] = extras.label_efficiency_page(everything)
        counts["label_efficiency"] = sum(r.get("train_fraction") is not None for r in everything)
    plots = [{"title": p.title, "svg": Markup(p.svg)} for p in _plots(records, predictions)]
    from clerc.report.summary import summary

    index = {
        "summary": summary(doc),
        "provenance": _flatten(doc["provenance"]),
        "counts": counts,
        "plots": plots,
        "predictions_note": None
        if predictions is not None
        else "predictions.parquet was not found beside the results; ROC curves, scatter plots "
        "and percentile distributions are omitted.",
    }
    pages = {
        "index": index,
        "table1": tables.table1(doc["cohort"]),
        "table2": tables.table2(doc["cohort"]),
        "table3": tables.table3(records),
        "table4": tables.table4(records),
        "table5": tables.table5(records),
        **extra_pages,
    }
    from clerc.report.paper import paper_source

    citation, discrepancies = paper_source()
    for name, ctx in pages.items():
        ctx.update(
            page=name,
            title=pages_shown[name],
            pages=pages_shown,
            source=source,
            paper_source=citation,
            paper_notes=discrepancies,
        )
    return pages


def render(results_path: Path | str, out_dir: Path | str) -> list[Path]:
    """Render every page into ``out_dir``; returns the written paths (index first)."""
    results_path, out_dir = Path(results_path), Path(out_dir)
    doc = load_results(results_path)
    predictions = load_predictions(results_path.with_name("predictions.parquet"))
    env = environment()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, ctx in contexts(doc, predictions, results_path.name).items():
        path = out_dir / f"{name}.html"
        template = ctx.pop("template", name)
        path.write_text(env.get_template(f"{template}.html.j2").render(**ctx), encoding="utf-8")
        written.append(path)
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", type=Path, required=True, help="results.json to render")
    parser.add_argument(
        "--out", type=Path, default=Path("reports"), help="output directory (default: reports/)"
    )


def run(args: argparse.Namespace) -> int:
    paths = render(args.results, args.out)
    print(f"wrote {len(paths)} pages to {args.out}: " + ", ".join(p.name for p in paths))
    return 0
