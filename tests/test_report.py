"""HTML reports from a fixture results.json: structure, formatting, escaping, plots."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pandas as pd
import pytest
from jinja2 import UndefinedError

from clerc import cli
from clerc.report.html import PAGES, environment, load_predictions, load_results, render
from clerc.report.plots import parse_cell, roc_curves
from clerc.report.tables import Notes, fmt_ci, fmt_count, fmt_value, scale_colour
from tests.fixtures_results import make_predictions, make_results, write_fixture

SCRIPT = "<script>alert(1)</script>"
PATIENT = "PATIENT-XYZ-0042"


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("report")
    paths = render(write_fixture(root / "run", seed=3), root / "out")
    return {p.stem: p.read_text() for p in paths}


def _table(html: str, table_id: str) -> str:
    match = re.search(rf'<table id="{re.escape(table_id)}".*?</table>', html, re.S)
    assert match, f"no table {table_id}"
    return match.group(0)


def test_every_page_is_written(pages):
    assert set(pages) == set(PAGES)
    for name, html in pages.items():
        assert html.startswith("<!doctype html>"), name
        assert "</html>" in html


def test_table3_has_56_cells_with_cis_and_blank_diagonal(pages):
    table = _table(pages["table3"], "table3-median_percentile")
    cells = re.findall(r'<td class="num matrix[^>]*>(.*?)</td>', table, re.S)
    assert len(cells) == 56
    assert table.count('class="diag"') == 8
    assert all(re.match(r"\d+\.\d<span class=\"ci\">\(\d+\.\d–\d+\.\d\)</span>", c)
               for c in cells), cells[:3]
    assert table.count("background:#") == 56
    headers = re.findall(r"<th[^>]*>(.*?)</th>", table)
    assert headers[:2] == ["Query modality", "Retrieved modality"]
    assert headers[2:6] == ["Echo", "EKG", "Angio", "CXR"]
    assert "n = " in pages["table3"]


def test_table3_null_cell_shows_dash_with_note(pages):
    table = _table(pages["table3"], "table3-recall@1")
    assert 'title="recall@1 undefined: fewer than 10 queries">—<sup>1</sup>' in table
    assert "<li>recall@1 undefined: fewer than 10 queries</li>" in pages["table3"]


def test_table1_lower_triangle(pages):
    table = _table(pages["table1"], "table1")
    assert len(re.findall(r'<td class="num', table)) == 8 + 28
    assert table.count('class="blank"') == 28
    assert table.count("num own") == 8


def test_table2_sections(pages):
    table = _table(pages["table2"], "table2")
    for text in ("Patients", "Age (mean ± std)", "Female (%)", "Non-Hispanic White",
                 "Number of studies", "Total samples", "Validation", "Angiogram"):
        assert text in table, text
    assert re.search(r"\d+\.\d ± \d+\.\d", table)
    assert re.search(r"\d+ \(\d+\.\d%\)", table)


def test_table4_rows_columns_and_differences(pages):
    table = _table(pages["table4"], "table4")
    rows = re.findall(r"<tr>.*?</tr>", table, re.S)
    assert len(rows) == 1 + 11
    for column in ("Zero-shot", "Linear probing", "Supervised", "p (Holm)"):
        assert f"<th>{column}</th>" in rows[0]
    assert re.search(r">[+−]0\.\d{3}<span class=\"ci\">\(−?0\.\d{3}( to |–)−?0\.\d{3}\)", table)
    assert "no supervised baseline for this task" in pages["table4"]
    assert "no supervised baseline checkpoint for edema" in pages["table4"]
    assert "bootstrap resamples undefined" in pages["table4"]


def test_table5_matrix(pages):
    table = _table(pages["table5"], "table5")
    rows = re.findall(r"<tr><th class=\"row\">.*?</tr>", table, re.S)
    assert len(rows) == 11 + 2  # age and LVEF also as MAE
    assert all(r.count("<td class=\"num") == 4 for r in rows)
    assert "no test patients with both angio_video and an LVEF label" in pages["table5"]


def test_index_has_provenance_links_and_four_plots(pages):
    html = pages["index"]
    assert html.count("<svg") == 4
    assert "manifest_hash" in html and "versions.torch" in html
    for name in ("table1", "table5"):
        assert f'href="{name}.html"' in html
    ids = re.findall(r' id="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "duplicate element ids across inline SVGs"


def test_pages_without_predictions(tmp_path):
    paths = render(write_fixture(tmp_path / "run", predictions=False), tmp_path / "out")
    index = paths[0].read_text()
    assert index.count("<svg") == 1
    assert "predictions.parquet was not found" in index


def test_formatting():
    assert fmt_value("auroc", 0.88512) == "0.885"
    assert fmt_value("median_percentile", 2.84) == "2.8"
    assert fmt_value("auroc", -0.0123, signed=True) == "−0.012"
    assert fmt_value("auroc", 0.0123, signed=True) == "+0.012"
    assert fmt_value("auroc_p_holm", 0.0004) == "<0.001"
    assert fmt_ci("auroc", 0.861, 0.907) == "0.861–0.907"
    assert fmt_ci("auroc", -0.083, -0.033) == "−0.083 to −0.033"
    assert fmt_value("auroc_gap", -0.0002) == "0.000"  # no "−0.000"
    assert fmt_ci("brier_gap", -0.0002, 0.189) == "0.000–0.189"
    assert fmt_value("mae_gap", 12.007) == "12.0" and fmt_value("mae_sd", 1.346) == "1.3"
    assert fmt_count(102480) == "102,480"
    assert fmt_count({"n": 19159, "pct": 50.04}) == "19,159 (50.0%)"
    assert fmt_count({"mean": 64.63, "std": 17.9}) == "64.6 ± 17.9"
    assert fmt_count(None) == "—"
    assert fmt_count({"mean": 70.0, "std": None}) == "70.0"
    assert fmt_count({"mean": None, "std": None}) == "—"
    assert fmt_count({"n": 0, "pct": None}) == "0"
    with pytest.raises(ValueError, match="cohort cell 'x'"):
        fmt_count("x")


def test_notes_are_numbered_once():
    notes = Notes()
    assert (notes.add("a"), notes.add("b"), notes.add("a")) == (1, 2, 1)


def test_colour_scale_follows_direction():
    def green(c: str) -> int:
        return int(c[3:5], 16) - int(c[1:3], 16)

    assert green(scale_colour("median_percentile", 2)[0]) > \
        green(scale_colour("median_percentile", 30)[0])
    assert green(scale_colour("recall@5", 0.9)[0]) > green(scale_colour("recall@5", 0.1)[0])


def test_strict_undefined_catches_missing_variables(pages):
    env = environment()
    with pytest.raises(UndefinedError):
        env.from_string("{{ nothing_here }}").render()
    with pytest.raises(UndefinedError, match="matrices"):
        env.get_template("table3.html.j2").render(page="table3", title="t", pages=PAGES,
                                                  source="x", groups=[], paper_source="p",
                                                  paper_notes=())


def _planted(tmp_path: Path) -> Path:
    results = make_results(1)
    for rec in results["records"]:
        if rec["table"] == "table4" and rec["task"] == "rbbb":
            rec["task"] = SCRIPT
    results["records"][0]["note"] = SCRIPT
    results["provenance"].update({"checkpoint": SCRIPT, SCRIPT: PATIENT, "patient": PATIENT})
    results["cohort"]["table2"]["rows"]["race"][SCRIPT] = results["cohort"]["table2"]["rows"][
        "race"]["Black"]
    preds = make_predictions(results, 1)
    preds["patient_id"] = PATIENT
    preds["report_text"] = SCRIPT
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(results))
    preds.to_parquet(run / "predictions.parquet")
    return run / "results.json"


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("planted")
    path = _planted(root)
    return path, {p.stem: p.read_text() for p in render(path, root / "out")}


def test_planted_markup_is_escaped_everywhere(planted):
    _, pages = planted
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    for name, html in pages.items():
        assert "<script" not in html.lower(), name
        assert "alert(1)</script>" not in html, name
    assert escaped in pages["table4"]
    assert escaped in pages["table2"]
    assert escaped in pages["index"]  # provenance key and value, shown escaped
    assert "<!-- EKG waveform: " + escaped in pages["index"]  # the ROC title, as paths
    assert pages["index"].count("<svg") == 4


def test_patient_columns_of_predictions_are_dropped(planted):
    path, pages = planted
    frame = load_predictions(path.with_name("predictions.parquet"))
    assert list(frame.columns) == ["cell", "kind", "y_true", "y_score"]
    for name, html in pages.items():
        if name != "index":  # the index shows provenance, where PATIENT was planted
            assert PATIENT not in html, name
    assert PATIENT not in re.sub(r"<table>.*?</table>", "", pages["index"], flags=re.S)


def test_bad_inputs_are_named(tmp_path):
    results = make_results(0)
    del results["records"][7]["ci_low"]
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps(results))
    with pytest.raises(ValueError, match="record 7: missing ci_low"):
        load_results(bad)
    results = make_results(0)
    results["records"][2]["gallery_modality"] = "echo_vidoe"
    bad.write_text(json.dumps(results))
    with pytest.raises(ValueError, match="record 2: gallery_modality 'echo_vidoe'"):
        load_results(bad)
    with pytest.raises(ValueError, match="predictions cell 'a|b'"):
        parse_cell("a|b")
    pd.DataFrame({"cell": ["x"], "kind": ["odd"], "y_true": [1.0], "y_score": [1.0]}).to_parquet(
        tmp_path / "p.parquet")
    with pytest.raises(ValueError, match="unknown kind \\['odd'\\]"):
        load_predictions(tmp_path / "p.parquet")


def test_results_that_are_not_json_text_are_named(tmp_path):
    (tmp_path / "r.json").write_bytes(b"PAR1\x90\xff")
    with pytest.raises(ValueError, match="r.json is not valid JSON"):
        load_results(tmp_path / "r.json")
    with pytest.raises(ValueError, match="is a directory"):
        load_results(tmp_path)
    (tmp_path / "l.json").write_text("[]")
    with pytest.raises(ValueError, match="expected a JSON object"):
        load_results(tmp_path / "l.json")


def test_roc_panel_with_one_class_only_warns_nothing():
    cell = "table4|rbbb|linear_probe|||ecg_waveform|ecg_waveform"
    pred = pd.DataFrame({"cell": [cell] * 4, "kind": ["binary"] * 4,
                         "y_true": [1.0] * 4, "y_score": [0.1, 0.2, 0.3, 0.4]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot = roc_curves(pred)
    assert plot is not None and "one class only" in plot.svg


def test_cli_report(tmp_path, capsys):
    path = write_fixture(tmp_path / "run", predictions=False)
    assert cli.main(["report", "--results", str(path), "--out", str(tmp_path / "out")]) == 0
    assert "wrote 6 pages" in capsys.readouterr().out
    assert cli.main(["report", "--results", str(tmp_path / "none.json"),
                     "--out", str(tmp_path / "o")]) == 2
    assert "none.json does not exist" in capsys.readouterr().err


def test_table5_one_pacemaker_row_with_the_echo_label_in_the_echo_column():
    from clerc.report.tables import table5
    from tests.fixtures_results import record

    recs = [record("table5", "pacemaker", "linear_probe", "auroc", v, modality=m, label=lab)
            for m, lab, v in (("echo_video", "echo_video", 0.951),
                              ("ecg_waveform", "ecg_waveform", 0.974),
                              ("angio_video", "ecg_waveform", 0.933),
                              ("cxr_image", "ecg_waveform", 0.924))]
    table = table5(recs)
    assert len(table["rows"]) == 1
    row = table["rows"][0]
    assert row["task"] == "Pacemaker (Echo label in the Echo column; else EKG label)"
    assert [c.text for c in row["cells"]] == ["0.951", "0.974", "0.933", "0.924"]


def test_paper_values_beside_cells_and_hideable(pages):
    """Table 3-5 cells the paper reports show its value and the difference; a CSS-only
    checkbox hides them (the pages run no script)."""
    from clerc.report.paper import paper_values

    for name in ("table3", "table4", "table5"):
        html = pages[name]
        assert '<input type="checkbox" id="paper-toggle" checked>' in html
        assert '<div class="paper-wrap">' in html and "<script" not in html
        assert "#paper-toggle:not(:checked) ~ .paper-wrap .paper" in html
        assert html.count('<span class="paper">paper ') > 0
    t3 = _table(pages["table3"], "table3-median_percentile")
    n_paper = len(re.findall(r'<span class="paper">paper \d+\.\d · Δ [+−]\d+\.\d</span>', t3))
    expected = sum(k[0] == "table3" for k in paper_values())
    assert n_paper <= expected and n_paper >= expected - 4  # the fixture leaves a few cells out
    assert '<span class="paper">' not in _table(pages["table3"], "table3-recall@1")


def test_paper_text_difference():
    from clerc.report.tables import paper_text

    rec = {"table": "table4", "setting": "zero_shot", "modality": "echo_video", "task": "lvef",
           "metric": "r2", "value": 0.7, "query_modality": None, "gallery_modality": None}
    assert paper_text(rec) == "paper 0.744 · Δ −0.044"
    assert paper_text({**rec, "value": None}) is None
    assert paper_text({**rec, "setting": "supervised"}) is None
