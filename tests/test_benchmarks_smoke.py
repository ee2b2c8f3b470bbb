"""The performance scripts keep working: every piece of `run_all --quick` at tiny sizes."""

from __future__ import annotations

import json

import numpy as np
import pytest

import benchmarks.run_all  # noqa: F401  (the script must import)


def test_peak_memory_subprocess_sees_an_allocation() -> None:
    from benchmarks import peak_memory

    r = peak_memory("benchmarks.bench_retrieval", "case_matmul", n=1_500)
    assert 1_500**2 * 4 * 0.8 < r["peak_bytes"] < 1_500**2 * 4 * 4
    assert r["seconds"] > 0


def test_retrieval_section() -> None:
    from benchmarks.bench_retrieval import measure, report

    rows = measure((400,), repeats=1, only=("argsort",), memory=False)
    section = report(rows)
    assert "N = 400" in section.markdown
    ours = next(r for r in rows if r["method"] == "ours")
    naive = next(r for r in rows if r["method"] == "argsort")
    assert ours["recall"] == naive["recall"]
    assert section.targets[0][2] in (True, False)


def test_clip_benchmark_path_matches_ours() -> None:
    from benchmarks.bench_retrieval import case_clip_benchmark, case_ours

    clip = case_clip_benchmark(300, max_batches=2)()
    ours = case_ours(300)()
    m = clip["queries"]
    assert m == 128
    assert clip["recall"] == {k: float(np.mean(ours["ranks"][:m] < k)) for k in (1, 5, 10)}


def test_bootstrap_section() -> None:
    from benchmarks.bench_bootstrap import measure, report

    rows = measure((400,), loop_resamples=3, repeats=1, metrics=("auroc",), memory=False)
    assert rows[0]["max_abs_diff"] <= 1e-9
    assert "auroc" in report(rows).markdown


def test_probe_pieces() -> None:
    from benchmarks.bench_probe import _logistic, _ridge

    r = _ridge(1_000, 2, 1, memory=())
    assert r["max_rel"] <= 1e-6 and r["sklearn_fits_timed"] == 2
    lg = _logistic(300, 8)
    assert lg["warm_s"] > 0 and lg["cold_s"] > 0


def test_synth_piece(tmp_path) -> None:
    from benchmarks.bench_synth import generate

    r = generate(1, 1)
    assert r["patients_per_s"] > 0 and r["files"] > 0


def test_scaling_plot_and_slope(tmp_path) -> None:
    from benchmarks.scaling import plot, slope

    data = {name: [{"n": n, "seconds": 1e-3 * (n / 1e3) ** 2, "peak_bytes": 1e3 * n}
                   for n in (1_000, 2_000, 4_000)]
            for name in ("retrieval", "bootstrap (AUROC)", "ridge path")}
    plot(data, tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 1000
    assert slope(data["retrieval"], "seconds") == pytest.approx(2.0)


def test_run_all_writes_results(tmp_path) -> None:
    from benchmarks.run_all import main

    out = tmp_path / "RESULTS.md"
    assert main(["--quick", "--only", "demo,gpu", "--threads", "0", "--out", str(out)]) == 0
    text = out.read_text()
    assert "## Machine" in text and "python -m benchmarks.run_all" in text
    assert "## End-to-end demo" in text and "## GPU" in text


def test_run_all_rejects_unknown_section(tmp_path) -> None:
    from benchmarks.run_all import main

    with pytest.raises(SystemExit):
        main(["--only", "retrieval,nope", "--out", str(tmp_path / "r.md")])


def test_gpu_check_pieces_on_cpu() -> None:
    import torch

    from benchmarks.gpu_check import markdown, retrieval

    r = retrieval(torch.device("cpu"), 300, check=300)
    assert r["rank_mismatches_vs_cpu"] == 0
    res = {"date": "today", "quick": True,
           "environment": {"device": "cpu", "torch": torch.__version__, "cudnn": None},
           "training": [{"config": "tiny", "amp": "none", "batch_size": 2,
                         "samples_per_s": 1.0, "flops_per_sample": 1e9, "mfu": 0.0,
                         "peak_memory_bytes": 2**30}],
           "retrieval": r, "embedding": {"error": "skipped"}}
    text = markdown(res)
    assert "Retrieval N = 300" in text and "Embedding: failed" in text
    json.dumps(res)


def test_gpu_check_runs_every_part_on_cpu(tmp_path) -> None:
    """The H200 script end to end at --quick sizes: every part yields numbers, no errors."""
    from benchmarks.gpu_check import PARTS, failed_parts, main

    work = tmp_path / "work"
    assert main(["--device", "cpu", "--quick", "--out", str(tmp_path / "out"),
                 "--work", str(work)]) == 0
    res = json.loads((tmp_path / "out" / "gpu_results.json").read_text())
    assert failed_parts(res) == []
    assert set(PARTS) <= set(res) and set(PARTS) <= set(res["part_seconds"])
    assert res["cohort"]["packed_samples"] > 0
    assert res["cohort"]["samples_per_modality"].get("angio_video", 0) > 0
    assert all(t["samples_per_s"] > 0 and t["mfu"] > 0 for t in res["training"])
    real = res["training_real"]
    assert all(r["samples_per_s"] > 0 and r["num_workers"] >= 1 for r in real["loader"])
    m = real["measure"]
    assert m["data"] and m["num_workers"] >= 1 and m["samples_per_s"] > 0 and m["mfu"] > 0
    assert 0 <= m["data_wait_share"] < 1 and 0 <= m["data_wait_share_steady"] < 1
    assert 2 < m["step_flops_per_forward_flop"] < 4
    run = res["train_run"]
    assert [e["epoch"] for e in run["log"]] == [0, 1]
    assert all(e["samples_per_s"] > 0 and 0 <= e["data_wait_share"] < 1
               and e["mfu_estimate"] > 0 for e in run["log"])
    assert {"ckpt.pt", "last.pt"} <= set(run["checkpoint_bytes"])
    assert res["retrieval"]["rank_mismatches_vs_cpu"] == 0
    assert len(res["embedding"]) == 5 and all(e["samples_per_s"] > 0 for e in res["embedding"])
    text = (tmp_path / "out" / "gpu_results.md").read_text()
    assert "Real loader batches" in text and "`clerc.train` run" in text
    assert "failed" not in text
