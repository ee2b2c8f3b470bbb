"""The overview page's opening summary: what was scored, on how many patients, the
headline numbers against chance and the ceiling, and warnings on thin tables.

Pure functions of the results document (records, cohort, provenance): no HTML here.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

#: Cells scored on fewer patients than this get a warning: a 95% CI over a handful of
#: patients spans most of the metric's range.
MIN_RELIABLE_N = 30
CHANCE = {"median_percentile": 50.0, "auroc": 0.5, "r2": 0.0}


@dataclass(frozen=True)
class Headline:
    """One line of the summary: what, the value, and what to read it against."""

    label: str
    value: str
    against: str


def _values(records: list[dict], **match: object) -> list[dict]:
    return [
        r
        for r in records
        if all(r.get(k) == v for k, v in match.items()) and r["value"] is not None
    ]


def _fmt(x: float, digits: int = 1) -> str:
    return f"{x:.{digits}f}".replace("-", "−")


def _retrieval(records: list[dict]) -> list[Headline]:
    cells = _values(records, table="table3", setting="retrieval", metric="median_percentile")
    if not cells:
        return []
    med = statistics.median(r["value"] for r in cells)
    below = sum(
        r["ci_high"] is not None and r["ci_high"] < CHANCE["median_percentile"] for r in cells
    )
    ns = sorted(r["n"] for r in cells)
    oracle = _values(records, table="table3", setting="oracle", metric="median_percentile")
    against = "chance 50"
    if oracle:
        against += f"; oracle ceiling {_fmt(statistics.median(r['value'] for r in oracle))}"
    return [
        Headline(
            "Table 3: median of the median-percentile cells (lower is better)", _fmt(med), against
        ),
        Headline(
            "Table 3: cells whose 95% CI lies entirely below chance",
            f"{below} of {len(cells)}",
            "chance 50",
        ),
        Headline(
            "Table 3: test patients per cell",
            f"{ns[0]:,} to {ns[-1]:,} (median {statistics.median(ns):,.0f})",
            f"warned below {MIN_RELIABLE_N}",
        ),
    ]


def _predictive(records: list[dict]) -> list[Headline]:
    out = []
    zs = _values(records, table="table4", setting="zero_shot", metric="auroc")
    if zs:
        above = sum(r["ci_low"] is not None and r["ci_low"] > 0.5 for r in zs)
        out.append(
            Headline(
                "Table 4: zero-shot AUROC, median over binary tasks",
                _fmt(statistics.median(r["value"] for r in zs), 3),
                f"chance 0.5; {above} of {len(zs)} with CI above 0.5",
            )
        )
    for setting, label in (("zero_shot", "zero-shot"), ("linear_probe", "linear-probe")):
        lvef = _values(records, table="table4", setting=setting, task="lvef", metric="r2")
        if lvef:
            r = lvef[0]
            ci = (
                ""
                if r["ci_low"] is None
                else f" ({_fmt(r['ci_low'], 2)} to {_fmt(r['ci_high'], 2)})"
            )
            out.append(
                Headline(
                    f"Table 4: {label} LVEF R²", _fmt(r["value"], 2) + ci, f"chance 0; n = {r['n']}"
                )
            )
    diffs = [
        r
        for r in _values(records, table="table4", setting="difference")
        if not r["metric"].endswith("_p_holm") and r["ci_low"] is not None
    ]
    if diffs:
        worse = sum(_clearly_worse(r) for r in diffs)
        out.append(
            Headline(
                "Table 4: linear probes clearly worse than the supervised "
                "baseline (paired 95% CI excludes 0)",
                f"{worse} of {len(diffs)}",
                "0 means CLERC matches or beats every baseline",
            )
        )
    return out


def _clearly_worse(r: dict) -> bool:
    """CLERC minus supervised with its CI on the worse side of 0 (MAE: lower is better)."""
    if r["metric"] == "mae":
        return r["ci_low"] > 0
    return r["ci_high"] < 0


def _cell(r: dict) -> tuple:
    """A record's cell: its key without table and metric."""
    from clerc.evaluate.results import CELL_FIELDS

    return tuple(r.get(f) for f in CELL_FIELDS if f != "table")


def warnings(records: list[dict]) -> list[str]:
    """One line per table with cells on fewer than ``MIN_RELIABLE_N`` patients."""
    out = []
    for table in ("table3", "table4", "table5"):
        cells = [
            r
            for r in records
            if r["table"] == table and r["setting"] != "difference" and r["n"] is not None
        ]
        keys = {_cell(r) for r in cells}
        thin = {_cell(r) for r in cells if r["n"] < MIN_RELIABLE_N}
        if thin:
            out.append(
                f"{table.replace('table', 'Table ')}: {len(thin)} of {len(keys)} cells "
                f"are scored on fewer than {MIN_RELIABLE_N} patients; their intervals "
                "are too wide to tell a model from chance."
            )
    return out


def scored(doc: dict) -> list[tuple[str, str]]:
    """What was scored: model, cohort, test patients."""
    prov = doc.get("provenance", {})
    model = prov.get("checkpoint") or prov.get("model") or prov.get("embeddings") or "—"
    rows = [("model", str(model))]
    t2 = doc.get("cohort", {}).get("table2", {}).get("rows", {}).get("patients", {})
    if t2:
        rows.append(("patients", ", ".join(f"{k} {v:,}" for k, v in t2.items())))
    if prov.get("manifest_hash"):
        rows.append(("manifest", str(prov["manifest_hash"])[:12]))
    return rows


def paper_records(records: list[dict]) -> list[dict]:
    """The records of the paper's tables (not subgroup or label-efficiency ones)."""
    return [r for r in records if r.get("subgroup") is None and r.get("train_fraction") is None]


def summary(doc: dict) -> dict:
    """The summary block of the overview page (the paper's tables only)."""
    records = paper_records(doc["records"])
    return {
        "scored": scored(doc),
        "headlines": _retrieval(records) + _predictive(records),
        "warnings": warnings(records),
    }
