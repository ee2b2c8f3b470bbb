"""The paper's Tables 3-5 as typed in clerc/paper_values.toml, checked against the paper text.

``tests/data/clerc_paper_tables.md`` is a verbatim copy of the paper's Tables 3-5 (lines
160-192 of shared/seed/CLERC-paper.md). Every number in each table's text must be typed once
in the data file and nothing else (the text's row/column layout of Table 3's 2x2 blocks is
lost in extraction; the file's notes say how it was read).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from clerc.modalities import DIAGNOSTIC, MODALITY_NAMES
from clerc.report.paper import paper_source, paper_value, paper_values

TEXT = (Path(__file__).parent / "data" / "clerc_paper_tables.md").read_text()


def _block(start: str, end: str | None) -> str:
    body = TEXT.split(start, 1)[1]
    return body.split(end, 1)[0] if end else body


def _numbers(text: str) -> Counter:
    return Counter(round(float(x), 3) for x in re.findall(r"\d+\.\d+", text))


def _typed(table: str) -> Counter:
    return Counter(round(v, 3) for k, v in paper_values().items() if k[0] == table)


@pytest.mark.parametrize("table,start,end,count", [
    ("table3", "Table 3:", "Table 4:", 56),
    ("table4", "Table 4:", "Table 5:", 20),
    ("table5", "Table 5:", None, 44),
])
def test_every_published_number_is_typed_once(table, start, end, count):
    published = _numbers(_block(start, end).split("\n", 1)[1])  # skip the caption line
    assert sum(published.values()) == count
    assert _typed(table) == published


def test_ranges_and_keys():
    values = paper_values()
    for key, v in values.items():
        table, setting, a, b, metric = key
        if table == "table3":
            assert a in MODALITY_NAMES and b in MODALITY_NAMES and a != b
            assert metric == "median_percentile" and 0 < v < 50
        else:
            assert a in DIAGNOSTIC, key
            assert (0.5 < v < 1) if metric == "auroc" else (0 < v < 1), key


def test_table5_diagonal_repeats_table4_linear_probes():
    """The paper's Table 5 cells on a task's own modality are its Table 4 linear probes."""
    values = paper_values()
    t4 = {k: v for k, v in values.items() if k[0] == "table4" and k[1] == "linear_probe"}
    for (_, _, modality, task, metric), v in t4.items():
        assert values[("table5", "linear_probe", modality, task, metric)] == v, (modality, task)


def test_lookup_by_record_fields():
    rec = {"table": "table3", "setting": "retrieval", "query_modality": "ecg_waveform",
           "gallery_modality": "angio_video", "modality": None, "task": "retrieval",
           "metric": "median_percentile"}
    assert paper_value(rec) == 8.4
    assert paper_value({**rec, "metric": "recall@1"}) is None
    rec4 = {"table": "table4", "setting": "zero_shot", "modality": "echo_video",
            "task": "lvef", "metric": "r2", "query_modality": None, "gallery_modality": None}
    assert paper_value(rec4) == 0.744
    assert paper_value({**rec4, "setting": "supervised"}) is None
    rec5 = {**rec4, "table": "table5", "setting": "linear_probe", "modality": "ecg_waveform"}
    assert paper_value(rec5) == 0.415
    citation, notes = paper_source()
    assert "Tables 3-5" in citation and len(notes) >= 3
