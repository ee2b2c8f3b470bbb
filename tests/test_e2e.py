"""End to end on the CPU, small and seeded: the main job, gated against the committed baseline.

This is the CI gate of issue 6: synthetic cohort -> tiny CLERC -> tiny baselines ->
benchmark -> reports, then ``clerc gate`` against ``reports/ci-baseline.json``. Refresh
the baseline knowingly with ``python -m tests.test_e2e --update``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "reports" / "ci-baseline.json"
DEMO_ARGS = ["--patients", "60", "--seed", "0", "--epochs", "2", "--bootstrap", "200",
             "--device", "cpu"]


def run_clerc(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``clerc`` in a fresh interpreter (one thread: deterministic on one machine kind)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg",
           "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, "-m", "clerc.cli", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=1500)


def demo(tmp: Path) -> Path:
    """Run the demo into ``tmp``; return its results.json."""
    proc = run_clerc("demo", "--data", str(tmp / "cohort"), "--run", str(tmp / "run"),
                     "--reports", str(tmp / "reports"), *DEMO_ARGS, cwd=tmp)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return tmp / "run" / "benchmark" / "results.json"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo(tmp_path_factory.mktemp("e2e"))


@pytest.mark.slow
def test_demo_writes_every_table(demo_run: Path) -> None:
    doc = json.loads(demo_run.read_text())
    tables = {r["table"] for r in doc["records"]}
    settings = {r["setting"] for r in doc["records"]}
    assert {"table3", "table4", "table5"} <= tables
    assert {"retrieval", "zero_shot", "linear_probe", "supervised"} <= settings
    retrieval = {(r["query_modality"], r["gallery_modality"]) for r in doc["records"]
                 if r["table"] == "table3" and r["metric"] == "median_percentile"}
    assert len(retrieval) == 56
    pages = sorted(p.name for p in (demo_run.parents[2] / "reports").glob("*.html"))
    assert pages == ["index.html", "label_efficiency.html", "subgroups_age.html",
                     "subgroups_race.html", "subgroups_sex.html", "table1.html", "table2.html",
                     "table3.html", "table4.html", "table5.html"]
    timings = json.loads((demo_run.parents[1] / "timings.json").read_text())
    assert timings["failed"] is None


@pytest.mark.slow
def test_gate_against_committed_baseline(demo_run: Path) -> None:
    assert BASELINE.is_file(), f"{BASELINE} missing: run python -m tests.test_e2e --update"
    proc = run_clerc("gate", "--baseline", str(BASELINE), "--results", str(demo_run),
                     cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]


@pytest.mark.slow
def test_gate_fails_on_a_perturbed_metric(demo_run: Path, tmp_path: Path) -> None:
    doc = json.loads(demo_run.read_text())
    rec = next(r for r in doc["records"] if r["metric"] == "median_percentile"
               and r["value"] is not None)
    rec["value"] += 20.0
    bad = tmp_path / "perturbed.json"
    bad.write_text(json.dumps(doc))
    proc = run_clerc("gate", "--baseline", str(demo_run), "--results", str(bad), cwd=ROOT)
    assert proc.returncode == 1
    assert rec["query_modality"] in proc.stdout


if __name__ == "__main__":  # refresh the committed baseline knowingly
    import tempfile

    if "--update" not in sys.argv:
        sys.exit("usage: python -m tests.test_e2e --update")
    with tempfile.TemporaryDirectory() as d:
        results = demo(Path(d))
        proc = run_clerc("gate", "--baseline", str(BASELINE), "--results", str(results),
                         "--update", cwd=ROOT)
        print(proc.stdout, proc.stderr)
        sys.exit(proc.returncode)
