"""Run every side-by-side comparison and write benchmarks/RESULTS.md (`nox -s perf`).

    python -m benchmarks.run_all [--quick] [--only retrieval,bootstrap,...] [--threads N]

Sections: retrieval, bootstrap, probe, loading (packed shards vs AVI decoding, against
the tiny model's training step rate), synth, demo (stage times of runs/demo/timings.json
when the demo wrote one), scaling (scaling.png), gpu (the fragment gpu_check.py wrote,
when present). BLAS/OpenMP/torch threads are pinned (default 1) before numpy is
imported: on a shared machine multi-threaded LAPACK under oversubscription is 10-40x
slower and swamps every ratio; `--threads 0` keeps the libraries' defaults.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import ROOT, Section, fmt_s, machine_info, table

HERE = Path(__file__).resolve().parent
SECTIONS = ("retrieval", "bootstrap", "probe", "loading", "synth", "demo", "scaling", "gpu")
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def pin_threads(n: int) -> None:
    """Pin BLAS / OpenMP / torch threads to n (0 = leave the defaults); children inherit."""
    if n <= 0:
        return
    for var in THREAD_VARS:
        os.environ[var] = str(n)
    from threadpoolctl import threadpool_limits

    threadpool_limits(n)
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass


def trainer_rate(quick: bool, threads: int) -> dict | str:
    """Tiny-config training samples/s from benchmarks/throughput.py, or why not."""
    script = HERE / "throughput.py"
    if not script.exists():
        return "benchmarks/throughput.py not present"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "t.json"
        cmd = [sys.executable, str(script), "--config", "tiny", "--device", "cpu",
               "--steps", "2" if quick else "5", "--warmup", "1", "--json", str(out)]
        if threads > 0:
            cmd += ["--threads", str(threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False,
                              timeout=1800)
        if proc.returncode != 0 or not out.exists():
            return f"throughput.py failed (exit {proc.returncode}): {proc.stderr[-300:]!r}"
        return json.loads(out.read_text())


def loading(quick: bool, threads: int) -> Section:
    """bench_loading.measure, next to the tiny model's training rate."""
    from benchmarks.bench_loading import measure

    n = 16 if quick else 64
    r = measure(n, min_seconds=0.2 if quick else 0.5)
    train = trainer_rate(quick, threads)
    rows = [["decode each AVI per sample", f"{r['decode_clips_per_s']:.1f} clips/s", "1.0x"],
            ["packed uint8 shards", f"{r['packed_clips_per_s']:.1f} clips/s",
             f"{r['ratio']:.1f}x"]]
    checks = [("loading: packed shards >= 10x the clips/s of per-sample AVI decoding",
               f"{r['ratio']:.1f}x", r["ratio"] >= 10)]
    text = (f"{n} synthetic 60-frame 112 x 112 MJPG echo AVIs; a 16 x 112 x 112 training clip "
            f"per sample (`read_video` + `video_clip` vs `PackedStore.load` + `video_clip`), "
            f"one process; one-off `prepare` {fmt_s(r['prepare_s'])}.\n\n"
            + table(["path", "rate", "vs decoding"], rows))
    if isinstance(train, dict):
        sps = train["samples_per_s"]
        # a sample carries at most two video clips (echo and angiography)
        margin = r["packed_clips_per_s"] / (2 * sps)
        text += (f"\n\nTiny model training on this CPU ({train['threads']} threads, batch "
                 f"{train['batch_size']}, {train['modalities']} modalities, synthetic "
                 f"batches): {sps:.1f} samples/s. One loader process on packed shards "
                 f"serves {margin:.0f}x the clips that rate needs (two video clips per "
                 "sample): the loader is not the bottleneck.")
        checks.append(("loading: one packed-shard loader outpaces tiny training",
                       f"{margin:.0f}x the needed clips/s", margin >= 1))
    else:
        text += f"\n\nTraining step rate: not measured ({train})."
    return Section("Data loading", text, checks, {"loading": r, "trainer": train})


def demo(_: bool) -> Section:
    """Stage wall times from runs/demo/timings.json, if the demo wrote one."""
    path = ROOT / "runs" / "demo" / "timings.json"
    if not path.exists():
        rel = path.relative_to(ROOT)
        return Section("End-to-end demo", f"Not measured in this run (no `{rel}`).")
    data = json.loads(path.read_text())
    stages = data.get("stages", data) if isinstance(data, dict) else {}
    rows = [[str(k), fmt_s(float(v)) if isinstance(v, int | float) else json.dumps(v)]
            for k, v in stages.items()]
    total = sum(float(v) for v in stages.values() if isinstance(v, int | float))
    checks = [("CPU demo end to end <= 15 minutes", fmt_s(total), total <= 900)]
    return Section("End-to-end demo", f"From `{path.relative_to(ROOT)}`.\n\n"
                   + table(["stage", "wall time"], rows), checks, {"timings": data})


def gpu(_: bool) -> Section:
    """The markdown fragment gpu_check.py wrote, when present."""
    path = HERE / "gpu_results.md"
    if not path.exists():
        return Section("GPU", "Not measured in this run (run `python -m benchmarks.gpu_check` "
                       "on a GPU machine; it writes `benchmarks/gpu_results.md`).")
    return Section("GPU", path.read_text().strip())


def _runner(name: str, threads: int, out_dir: Path) -> Callable[[bool], Section]:
    if name == "loading":
        return lambda quick: loading(quick, threads)
    if name == "scaling":
        from benchmarks.scaling import run

        return lambda quick: run(quick, png=out_dir / "scaling.png")
    if name in ("demo", "gpu"):
        return {"demo": demo, "gpu": gpu}[name]
    module = {"retrieval": "bench_retrieval", "bootstrap": "bench_bootstrap",
              "probe": "bench_probe", "synth": "bench_synth"}[name]
    import importlib

    return importlib.import_module(f"benchmarks.{module}").run


def render(sections: list[Section], info: dict[str, str], command: str, seconds: float) -> str:
    """The whole RESULTS.md."""
    checks = [c for s in sections for c in s.targets]
    mark = {True: "met", False: "**missed**", None: "-"}
    parts = [
        "# Performance results",
        f"Written by `{command}` on {info.pop('date')} in {seconds / 60:.1f} min; do not "
        "edit by hand (`nox -s perf` regenerates it). Every ratio was measured side by "
        "side in that one run.",
        "## Machine\n\n" + table(["", ""], [[k, v] for k, v in info.items()]),
        "## Targets\n\n" + (table(["target", "measured", ""],
                                  [[t, m, mark[ok]] for t, m, ok in checks])
                            if checks else "No targets in the sections run."),
    ]
    parts += [f"## {s.title}\n\n{s.markdown}" for s in sections]
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    p.add_argument("--only", default=",".join(SECTIONS),
                   help=f"comma-separated sections among {', '.join(SECTIONS)}")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS/OpenMP/torch threads (0 = library defaults)")
    p.add_argument("--out", default=str(HERE / "RESULTS.md"), help="markdown file to write")
    args = p.parse_args(argv)
    names = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(names) - set(SECTIONS))
    if unknown:
        p.error(f"unknown sections {unknown}; expected some of {', '.join(SECTIONS)}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pin_threads(args.threads)
    info = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), **machine_info(),
            "threads pinned": str(args.threads) if args.threads > 0 else "library defaults"}
    command = "python -m benchmarks.run_all " + " ".join(argv if argv is not None
                                                         else sys.argv[1:])
    t0 = time.perf_counter()
    sections = []
    for name in names:
        t = time.perf_counter()
        print(f"[run_all] {name} ...", flush=True)
        sections.append(_runner(name, args.threads, Path(args.out).parent)(args.quick))
        print(f"[run_all] {name} done in {time.perf_counter() - t:.0f} s", flush=True)
    if hasattr(os, "getloadavg"):
        info["load average at end"] = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    text = render(sections, info, command.strip(), time.perf_counter() - t0)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
