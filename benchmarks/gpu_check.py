"""One self-contained GPU check: training MFU and data wait, retrieval at N = 100k, embedding.

    python -m benchmarks.gpu_check --out "$OUT"                 # on the H200 (~3-5 min)
    python -m benchmarks.gpu_check --device cpu --quick --out /tmp/g   # smoke test (~30 s)

Parts, in the order they run (each one that fails records its error instead of stopping
the others; the results are rewritten after every part, so a run stopped from outside
keeps what it finished; a part not started within --budget-s is skipped):

1. cohort: a synthetic cohort of --patients (default 1000, the paper's Table 1 modality
   mix) written by ``clerc.synthetic.synthesize`` and packed into uint8 shards by
   ``clerc.data.packed.prepare``, one process per core (up to 16), in a scratch directory
   (``--work``; default a temporary directory removed at the end, never under ``--out``).
   CPU only, first, so its processes fork before any CUDA context exists.
2. training: samples/s and MFU of the paper config on synthetic batches in pinned memory
   (every modality in every row: the compute ceiling), via benchmarks/throughput.py's
   ``measure``, for each batch size in --batch-sizes (default 32, 128).
3. retrieval: ranks of N paired queries in an N gallery (d = 512) by a chunked float32
   matmul on the device (the CPU harness's rule: count of others scoring >= the
   target); time, achieved TFLOP/s of 2 N^2 d, peak device memory, and the ranks of the
   first queries checked against `clerc.evaluate.metrics.retrieval_ranks` on the CPU.
4. embedding: inference samples/s of every encoder (bf16 autocast, no grad).
5. training_real: the real input pipeline on the cohort: the training loader alone
   (samples/s at the config's and at ~12 worker processes), then ``measure`` on the
   loader's batches (--workers processes, pinned memory, --real-batch-size, default the
   paper's 32): samples/s, MFU of the rows present and the data-wait share, with and
   without the epochs' first batches (worker start-up).
6. train_run: a short real ``clerc.train.trainer.train`` run (2 epochs, at most 50 steps
   each) on the cohort: the trainer's own ``log.jsonl`` (samples/s, data-wait share,
   validation seconds per epoch), the wall time seen from outside (setup and checkpoints
   included), peak device memory, and an MFU estimate: forward FLOPs of the rows in each
   epoch's batch plan times the step/forward FLOP ratio counted in part 5.

Writes gpu_results.json and gpu_results.md into --out. `--quick` uses the tiny model, a
30-patient cohort and a few steps, so the CPU smoke test runs every part.
"""

from __future__ import annotations

import argparse
import dataclasses
import faulthandler
import gc
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

H200_BF16_PEAK = 790e12
PARTS = ("cohort", "training", "retrieval", "embedding", "training_real", "train_run")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _free(device: torch.device) -> None:
    """Release what the previous part left (models, loaders) before the next one."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _config(quick: bool) -> Any:
    from clerc.train.config import TrainConfig

    return TrainConfig.tiny() if quick else TrainConfig.paper()


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cohort(work: Path, patients: int, workers: int, shard_size: int,
           angio_fraction: float | None = None) -> dict:
    """Synthesize ``patients`` patients into ``work/cohort`` and pack them into shards.

    The modality mix is the paper's Table 1 (4.5% of patients with angiography) unless
    ``angio_fraction`` is given (--quick: so that 30 patients include some).
    """
    from clerc.data.manifest import read_manifest
    from clerc.data.packed import prepare
    from clerc.synthetic import SynthConfig, synthesize

    root = work / "cohort"
    if root.exists():
        shutil.rmtree(root)
    t0 = time.perf_counter()
    synthesize(root, patients, seed=0, config=SynthConfig(angio_fraction=angio_fraction),
               workers=workers, progress=False)
    t1 = time.perf_counter()
    rep = prepare(root, shard_size=shard_size, workers=workers, progress=False)
    t2 = time.perf_counter()
    if not rep.complete:
        raise RuntimeError(f"prepare left {len(rep.failures)} failures: {rep.failures[:3]}")
    s = read_manifest(root).samples
    return {"dir": str(root), "patients": patients, "workers": workers,
            "synth_seconds": t1 - t0, "prepare_seconds": t2 - t1,
            "samples": int(len(s)), "packed_samples": rep.n_samples, "shards": rep.n_shards,
            "samples_per_modality": {str(k): int(v)
                                     for k, v in s["modality"].value_counts().items()},
            "patients_per_split": {str(k): int(v) for k, v in
                                   s.drop_duplicates("patient_id")["split"]
                                   .value_counts().items()}}


def training(device: torch.device, quick: bool, batch_sizes: list[int], steps: int,
             peak: float) -> list[dict]:
    """throughput.measure for each batch size (paper config; tiny with --quick)."""
    from benchmarks.throughput import measure

    base = _config(quick)
    out = []
    for bs in batch_sizes:
        cfg = dataclasses.replace(base, batch_size=bs, num_workers=0)
        args = argparse.Namespace(device=device.type, data=None, warmup=1 if quick else 3,
                                  steps=steps, peak_flops=peak,
                                  config="tiny" if quick else "paper")
        try:
            out.append(measure(cfg, args))
        except Exception as exc:  # noqa: BLE001 - e.g. out of memory at the larger batch
            out.append({"batch_size": bs, "error": f"{type(exc).__name__}: {exc}"[:500]})
        _free(device)
    if all("error" in r for r in out):
        raise RuntimeError("; ".join(r["error"] for r in out))
    return out


def loader_rate(cfg: Any, data_dir: str, pin: bool, epochs: int) -> dict:
    """The training loader alone over ``epochs`` passes: the first batch's latency of each
    pass (worker start-up) and the samples/s of the rest."""
    from clerc.train.data import make_loaders

    loader, _ = make_loaders(data_dir, cfg, pin_memory=pin)
    first, n, seconds = [], 0, 0.0
    for epoch in range(epochs):
        loader.batch_sampler.set_epoch(epoch)
        t0 = time.perf_counter()
        t1 = t0
        for i, batch in enumerate(loader):
            if i == 0:
                t1 = time.perf_counter()
                first.append(t1 - t0)
            else:
                n += batch.size
        seconds += time.perf_counter() - t1
    return {"num_workers": cfg.num_workers, "pin_memory": pin, "epochs": epochs,
            "batches_per_epoch": len(loader.batch_sampler),
            "first_batch_seconds": first,
            "samples_per_s": n / seconds if seconds > 0 else None}


def training_real(device: torch.device, quick: bool, data_dir: str, batch_size: int,
                  workers: int, rate_workers: list[int], warmup: int, steps: int,
                  peak: float) -> dict:
    """The training loader alone, then throughput.measure on its batches."""
    from benchmarks.throughput import measure
    from clerc.model.clerc import CLERC  # noqa: F401  (imported before workers fork, as in train)

    base = dataclasses.replace(_config(quick), batch_size=batch_size, num_workers=workers)
    pin = device.type == "cuda"
    rates = [loader_rate(dataclasses.replace(base, num_workers=w), data_dir, pin, 2)
             for w in rate_workers]
    args = argparse.Namespace(device=device.type, data=data_dir, warmup=warmup, steps=steps,
                              peak_flops=peak, config="tiny" if quick else "paper")
    return {"loader": rates, "measure": measure(base, args)}


def plan_forward_flops(cfg: Any, data_dir: str, epoch: int) -> tuple[int, int]:
    """(forward FLOPs of the rows present, rows) in the training batches of ``epoch``:
    the batch plan the trainer's sampler makes, without loading any sample."""
    from benchmarks.throughput import forward_flops
    from clerc.train.data import make_loaders

    fwd = forward_flops(cfg)
    loader, _ = make_loaders(data_dir, cfg)
    sets = loader.dataset.modality_sets
    loader.batch_sampler.set_epoch(epoch)
    keys = [k for b in loader.batch_sampler.batches() for k in b]
    return sum(fwd[m] for _, p in keys for m in sets[p] if m in fwd), len(keys)


def train_run(device: torch.device, quick: bool, data_dir: str, work: Path, batch_size: int,
              workers: int, epochs: int, max_steps: int | None, peak: float,
              step_ratio: float | None) -> dict:
    """A short real `train` run; its log.jsonl, outside timings, and an MFU estimate."""
    from clerc.train.trainer import train

    cfg = dataclasses.replace(_config(quick), batch_size=batch_size, num_workers=workers,
                              epochs=epochs, max_steps_per_epoch=max_steps)
    out = work / "run"
    if out.exists():
        shutil.rmtree(out)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    log = train(cfg, data_dir, out, device=device.type, progress=False)
    wall = time.perf_counter() - t0
    if not log:
        raise RuntimeError(f"train wrote no epoch records into {out / 'log.jsonl'}")
    peak_mem = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    ratio, ratio_source = ((step_ratio, "counted in training_real") if step_ratio
                           else (3.0, "assumed 3 (training_real did not count it)"))
    epochs_out = []
    for rec in log:
        fwd, rows = plan_forward_flops(cfg, data_dir, int(rec["epoch"]))
        secs = rec.get("train_seconds") or 0.0
        keep = ("epoch", "train_seconds", "val_seconds", "steps", "samples", "samples_per_s",
                "data_wait_share", "train_loss", "val_loss")
        epochs_out.append({**{k: rec.get(k) for k in keep}, "plan_rows": rows,
                           "mfu_estimate": ratio * fwd / secs / peak if secs else None})
    in_epochs = sum((r.get("train_seconds") or 0) + (r.get("val_seconds") or 0) for r in log)
    return {"config": "tiny" if quick else "paper", "batch_size": batch_size,
            "num_workers": workers, "epochs": epochs, "max_steps_per_epoch": max_steps,
            "wall_seconds": wall, "outside_epochs_seconds": wall - in_epochs,
            "peak_memory_bytes": peak_mem, "step_flops_per_forward_flop": ratio,
            "ratio_source": ratio_source, "log": epochs_out,
            "checkpoint_bytes": {p.name: p.stat().st_size for p in sorted(out.glob("*.pt"))}}


def gpu_ranks(q: torch.Tensor, g: torch.Tensor, chunk: int) -> torch.Tensor:
    """Rank of g[i] for q[i]: others scoring >= the target (float32, chunked)."""
    ranks = torch.empty(len(q), dtype=torch.long, device=q.device)
    for s in range(0, len(q), chunk):
        scores = q[s:s + chunk] @ g.T
        idx = torch.arange(s, s + len(scores), device=q.device)
        own = scores.gather(1, idx[:, None])
        ranks[s:s + len(scores)] = (scores >= own).sum(dim=1) - 1
    return ranks


def retrieval(device: torch.device, n: int, d: int = 512, chunk: int = 4096,
              check: int = 512) -> dict:
    """Time chunked float32 ranking at N on the device; check against the CPU metric."""
    from clerc.evaluate.metrics import retrieval_ranks

    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # scores stay true float32
    try:
        gen = torch.Generator(device=device).manual_seed(0)
        g = torch.randn(n, d, device=device, generator=gen)
        g /= g.norm(dim=1, keepdim=True)
        q = g + 6.0 / d**0.5 * torch.randn(n, d, device=device, generator=gen)
        q /= q.norm(dim=1, keepdim=True)
        gpu_ranks(q[:chunk], g, chunk)  # warm-up
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
        _sync(device)
        t0 = time.perf_counter()
        ranks = gpu_ranks(q, g, chunk)
        _sync(device)
        seconds = time.perf_counter() - t0
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    peak = torch.cuda.max_memory_allocated(device) - before if device.type == "cuda" else None
    m = min(check, n)
    cpu = retrieval_ranks(q[:m].cpu().numpy(), g.cpu().numpy(), np.arange(m))
    diff = np.abs(cpu - ranks[:m].cpu().numpy())
    r = ranks.cpu().numpy()
    # a GPU and a CPU float32 matmul round differently, so a rare near-tie may move a rank
    # by one; more than that is a bug
    return {"n": n, "d": d, "chunk": chunk, "seconds": seconds,
            "tflop_per_s": 2 * n * n * d / seconds / 1e12, "peak_extra_bytes": peak,
            "recall@1": float(np.mean(r < 1)), "recall@10": float(np.mean(r < 10)),
            "checked_queries": m, "rank_mismatches_vs_cpu": int(np.sum(diff > 0)),
            "max_rank_diff_vs_cpu": int(diff.max()) if m else 0}


def embedding(device: torch.device, quick: bool, batch: int, iters: int,
              peak: float) -> list[dict]:
    """Inference samples/s and MFU of each encoder (bf16 autocast on CUDA)."""
    from clerc.modalities import ENCODERS
    from clerc.model.clerc import CLERC, channels_last_3d, encoder_flops, example_input

    cfg = _config(quick).model
    model = CLERC(cfg).to(device).eval()
    if device.type == "cuda":
        channels_last_3d(model)
    flops = encoder_flops(cfg)
    out = []
    for key in ENCODERS:
        x = example_input(key, cfg, batch=batch, device=str(device))
        if x.dtype == torch.uint8:
            x = torch.randint(0, 256, x.shape, dtype=torch.uint8, device=device)
        elif x.dtype == torch.long:
            x = torch.randint(1, 49405, x.shape, device=device)
            x[:, -1] = 49407
        else:
            x = torch.randn(x.shape, device=device)
        amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
        with torch.inference_mode(), amp:
            for _ in range(2):
                model.encode(key, x)
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(iters):
                model.encode(key, x)
            _sync(device)
        sps = batch * iters / (time.perf_counter() - t0)
        out.append({"encoder": key, "batch": batch, "samples_per_s": sps,
                    "gflop_per_sample": flops[key] / 1e9, "mfu": sps * flops[key] / peak})
    return out


def _attempt(name: str, fn: Callable[[], Any], results: dict) -> None:
    t0 = time.perf_counter()
    print(f"[gpu_check] {name} ...", flush=True)
    try:
        results[name] = fn()
    except Exception as exc:  # noqa: BLE001 - one failing part must not lose the others
        results[name] = {"error": f"{type(exc).__name__}: {exc}",
                         "traceback": traceback.format_exc()[-2000:]}
    seconds = time.perf_counter() - t0
    results.setdefault("part_seconds", {})[name] = seconds
    failed = " (failed)" if isinstance(results[name], dict) and "error" in results[name] else ""
    print(f"[gpu_check] {name}: {seconds:.1f} s{failed}", flush=True)


def _environment(device: torch.device) -> dict:
    """Versions and the machine, without creating a CUDA context (see :func:`_gpu_info`)."""
    env = {"torch": torch.__version__, "device": str(device), "cpus": _cpus(),
           "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available()
           else None, "cudnn_enabled": torch.backends.cudnn.enabled}
    major, minor = (int(v) for v in torch.__version__.split(".")[:2])
    env["torch_ok_for_conv3d"] = (major, minor) >= (2, 10)  # 2.9.0 disabled cuDNN conv3d
    return env


def _gpu_info(device: torch.device) -> dict:
    """The GPU's name and memory (creates the CUDA context)."""
    if device.type != "cuda":
        return {}
    return {"gpu": torch.cuda.get_device_name(device),
            "gpu_memory_gib": torch.cuda.get_device_properties(device).total_memory / 2**30}


def _failed(part: Any) -> str | None:
    return part["error"] if isinstance(part, dict) and "error" in part else None


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _gib(x: float | None) -> str:
    return "n/a" if x is None else f"{x / 2**30:.1f} GiB"


def _md_training(tr: Any, target: bool) -> list[str]:
    if _failed(tr):
        return ["", f"Training (synthetic batches): failed: {tr['error']}"]
    lines = ["", "| training (synthetic batches, every modality in every row) | batch | "
             "samples/s | TFLOP/sample | MFU | peak memory |",
             "| --- | --- | --- | --- | --- | --- |"]
    ok = [t for t in tr if "error" not in t]
    lines += [f"| {t['config']}, amp {t['amp']} | {t['batch_size']} | "
              f"{t['samples_per_s']:.1f} | {t['flops_per_sample'] / 1e12:.3f} | "
              f"{_pct(t['mfu'])} | {_gib(t['peak_memory_bytes'])} |" for t in ok]
    lines += [f"| failed | {t['batch_size']} | {t['error']} | | | |" for t in tr if "error" in t]
    if ok and target:
        best = max(t["mfu"] for t in ok)
        lines += ["", f"Target >= 35% MFU (synthetic batches): "
                  f"{'met' if best >= 0.35 else '**missed**'} (best {100 * best:.1f}%)."]
    return lines


def _md_real(rr: Any, target: bool) -> list[str]:
    if _failed(rr):
        return ["", f"Training on the real loader: failed: {rr['error']}"]
    lines = ["", "| training loader alone | workers | batches/epoch | first batch (s) | "
             "samples/s after it |", "| --- | --- | --- | --- | --- |"]
    for r in rr["loader"]:
        sps = r["samples_per_s"]
        lines.append(f"| {r['epochs']} epochs, pinned {r['pin_memory']} | {r['num_workers']} | "
                     f"{r['batches_per_epoch']} | "
                     f"{', '.join(f'{s:.2f}' for s in r['first_batch_seconds'])} | "
                     f"{'n/a' if sps is None else f'{sps:.0f}'} |")
    m = rr["measure"]
    mix = ", ".join(f"{k} {v:.2f}" for k, v in m["present_fraction"].items())
    lines += ["", f"Real loader batches ({m['config']}, batch {m['batch_size']}, "
              f"{m['num_workers']} workers, {m['steps']} steps timed after {m['warmup']}): "
              f"{m['samples_per_s']:.1f} samples/s, MFU {_pct(m['mfu'])} "
              f"({m['flops_per_sample'] / 1e12:.3f} TFLOP/sample of the rows present), "
              f"data wait {_pct(m['data_wait_share'])} of the time "
              f"({_pct(m['data_wait_share_steady'])} without the "
              f"{m['epoch_starts_timed']} epoch starts; longest wait "
              f"{m['max_wait_seconds']:.3f} s), peak memory {_gib(m['peak_memory_bytes'])}. "
              f"Rows holding each modality: {mix}."]
    if target:
        ok = m["data_wait_share_steady"] <= 0.05
        lines.append(f"Target data wait <= 5% (steady): {'met' if ok else '**missed**'}.")
    return lines


def _md_run(tr: Any) -> list[str]:
    if _failed(tr):
        return ["", f"Training run (`clerc.train`): failed: {tr['error']}"]
    lines = ["", f"`clerc.train` run ({tr['config']}, batch {tr['batch_size']}, "
             f"{tr['num_workers']} workers, {tr['epochs']} epochs): {tr['wall_seconds']:.1f} s "
             f"wall, {tr['outside_epochs_seconds']:.1f} s of it outside the epochs' train and "
             f"validation loops (setup, checkpoints); peak memory "
             f"{_gib(tr['peak_memory_bytes'])}. MFU estimate: forward FLOPs of the rows in "
             f"the epoch's batch plan x {tr['step_flops_per_forward_flop']:.2f} "
             f"({tr['ratio_source']}). The trainer's data wait includes each epoch's "
             "first batch (worker start-up) and the MFU estimate cuDNN's autotuning of "
             "new input shapes, both large in epochs this short.", "",
             "| epoch | steps | train s | samples/s | data wait | MFU estimate | val s |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {e['epoch']} | {e['steps']} | {e['train_seconds']:.2f} | "
              f"{e['samples_per_s']:.1f} | {_pct(e['data_wait_share'])} | "
              f"{_pct(e['mfu_estimate'])} | {e['val_seconds']:.2f} |" for e in tr["log"]]
    return lines


def markdown(res: dict) -> str:
    """The fragment run_all embeds in RESULTS.md (also of a partial result)."""
    env = res["environment"]
    target = env["device"].startswith("cuda") and not res.get("quick")
    lines = [f"Measured by `python -m benchmarks.gpu_check` on {env.get('gpu', env['device'])}"
             f" (torch {env['torch']}, cuDNN {env['cudnn']}) at {res['date']}."]
    secs = res.get("part_seconds", {})
    if secs:
        lines.append("Part times: " + ", ".join(f"{k} {v:.0f} s" for k, v in secs.items())
                     + ".")
    co = res.get("cohort")
    if co is not None:
        lines += ["", f"Cohort: failed: {co['error']}" if _failed(co) else
                  f"Cohort: {co['patients']} synthetic patients ({co['samples']} samples; "
                  f"splits {co['patients_per_split']}) synthesized in "
                  f"{co['synth_seconds']:.1f} s and packed in {co['prepare_seconds']:.1f} s "
                  f"with {co['workers']} processes."]
    if "training" in res:
        lines += _md_training(res["training"], target)
    if "training_real" in res:
        lines += _md_real(res["training_real"], target)
    if "train_run" in res:
        lines += _md_run(res["train_run"])
    rt = res.get("retrieval")
    if _failed(rt):
        lines += ["", f"Retrieval: failed: {rt['error']}"]
    elif rt is not None:
        peak = rt["peak_extra_bytes"]
        mem = "n/a" if peak is None else f"{peak / 2**30:.2f} GiB"
        lines += ["", f"Retrieval N = {rt['n']:,}, d = {rt['d']}, float32, chunk {rt['chunk']}: "
                  f"{rt['seconds']:.3f} s ({rt['tflop_per_s']:.2f} TFLOP/s of 2 N^2 d), peak "
                  f"extra device memory {mem}; ranks of the first {rt['checked_queries']} "
                  f"queries vs the CPU metric: {rt['rank_mismatches_vs_cpu']} mismatches "
                  f"(largest difference {rt.get('max_rank_diff_vs_cpu', 'n/a')})."]
    em = res.get("embedding")
    if _failed(em):
        lines += ["", f"Embedding: failed: {em['error']}"]
    elif em is not None:
        lines += ["", "| encoder | batch | samples/s | GFLOP/sample | MFU |",
                  "| --- | --- | --- | --- | --- |"]
        lines += [f"| {e['encoder']} | {e['batch']} | {e['samples_per_s']:.0f} | "
                  f"{e['gflop_per_sample']:.2f} | {_pct(e['mfu'])} |" for e in em]
    return "\n".join(lines) + "\n"


def _save(res: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_results.json").write_text(json.dumps(res, indent=1, default=str))
    try:
        text = markdown(res)
    except Exception as exc:  # noqa: BLE001 - the JSON is what matters
        text = f"gpu_check: cannot render markdown: {type(exc).__name__}: {exc}\n"
    (out / "gpu_results.md").write_text(text)


def failed_parts(res: dict) -> list[str]:
    """Parts (or batch sizes of a part) that recorded an error."""
    bad = []
    for k in PARTS:
        v = res.get(k)
        if _failed(v):
            bad.append(k)
        elif isinstance(v, list):
            bad += [f"{k}[{i}]" for i, r in enumerate(v) if _failed(r)]
    return bad


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--quick", action="store_true",
                   help="tiny model, 30 patients, few steps (smoke test)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent),
                   help="directory for gpu_results.json / .md")
    p.add_argument("--work", default=None,
                   help="scratch directory for the cohort and the run (default: a temporary "
                        "directory, removed at the end)")
    p.add_argument("--batch-sizes", default=None,
                   help="synthetic-batch training batch sizes, e.g. 32,128")
    p.add_argument("--retrieval-n", type=int, default=None)
    p.add_argument("--peak-flops", type=float, default=H200_BF16_PEAK)
    p.add_argument("--skip-real", action="store_true",
                   help="leave out the cohort, training_real and train_run parts")
    p.add_argument("--patients", type=int, default=None,
                   help="synthetic cohort size (default 1000; 30 with --quick)")
    p.add_argument("--real-batch-size", type=int, default=None,
                   help="batch size of training_real and train_run (default: the paper's 32; "
                        "4 with --quick)")
    p.add_argument("--workers", type=int, default=None,
                   help="loader worker processes of training_real and train_run (default: the "
                        "config's num_workers, 4 for paper; 1 with --quick)")
    p.add_argument("--budget-s", type=float, default=400.0,
                   help="parts not yet started after this many seconds are skipped")
    args = p.parse_args(argv)
    start = time.perf_counter()
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            p.error("--device cuda but torch.cuda.is_available() is False")
        torch.backends.cudnn.benchmark = True
    # a hung part: print every thread's stack to stderr a minute after the budget
    faulthandler.dump_traceback_later(args.budget_s + 60, exit=False)
    quick = args.quick
    sizes = ([int(b) for b in args.batch_sizes.split(",")] if args.batch_sizes
             else [2] if quick else [32, 128])
    n = args.retrieval_n or (2_000 if quick else 100_000)
    cpus = _cpus()
    base = _config(quick)
    patients = args.patients or (30 if quick else 1_000)
    real_bs = args.real_batch_size or (4 if quick else base.batch_size)
    workers = args.workers if args.workers is not None else (1 if quick else base.num_workers)
    rate_workers = sorted({workers, workers if quick else max(workers, min(12, cpus - 2))})
    out = Path(args.out)
    res: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                           "environment": _environment(device), "quick": quick,
                           "argv": list(sys.argv[1:] if argv is None else argv)}
    own_work = args.work is None
    work = Path(tempfile.mkdtemp(prefix="gpu_check-")) if own_work else Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    def attempt(name: str, fn: Callable[[], Any]) -> None:
        elapsed = time.perf_counter() - start
        if elapsed > args.budget_s:
            res[name] = {"error": f"skipped: {elapsed:.0f} s elapsed > --budget-s "
                                  f"{args.budget_s:.0f}"}
            print(f"[gpu_check] {name}: {res[name]['error']}", flush=True)
        else:
            _attempt(name, fn, res)
        _free(device)
        _save(res, out)

    def data_dir() -> str:
        co = res.get("cohort")
        if not isinstance(co, dict) or "dir" not in co:
            raise RuntimeError("no cohort (the cohort part failed or was skipped)")
        return co["dir"]

    def step_ratio() -> float | None:
        rr = res.get("training_real")
        if isinstance(rr, dict) and "measure" in rr:
            return rr["measure"]["step_flops_per_forward_flop"]
        return None

    try:
        if not args.skip_real:  # CPU only: its processes fork before any CUDA context
            attempt("cohort", lambda: cohort(work, patients, min(cpus, 16),
                                             16 if quick else 64, 0.3 if quick else None))
        try:
            res["environment"].update(_gpu_info(device))
        except Exception as exc:  # noqa: BLE001 - the parts will say what is wrong
            res["environment"]["gpu_error"] = f"{type(exc).__name__}: {exc}"
        attempt("training", lambda: training(device, quick, sizes, 1 if quick else 10,
                                             args.peak_flops))
        attempt("retrieval", lambda: retrieval(device, n))
        attempt("embedding", lambda: embedding(device, quick, 2 if quick else 256,
                                                1 if quick else 10, args.peak_flops))
        if not args.skip_real:
            attempt("training_real", lambda: training_real(
                device, quick, data_dir(), real_bs, workers, rate_workers,
                1 if quick else 25, 3 if quick else 50, args.peak_flops))
            attempt("train_run", lambda: train_run(
                device, quick, data_dir(), work, real_bs, workers, 2, 2 if quick else 50,
                args.peak_flops, step_ratio()))
    finally:
        faulthandler.cancel_dump_traceback_later()
        if own_work:
            shutil.rmtree(work, ignore_errors=True)
    res["total_seconds"] = time.perf_counter() - start
    _save(res, out)
    print(markdown(res))
    print(f"[gpu_check] total {res['total_seconds']:.1f} s", flush=True)
    failed = failed_parts(res)
    if failed:
        print(f"[gpu_check] failed: {', '.join(failed)}", flush=True)
    # a part that failed as a whole fails the run; one batch size of several (out of
    # memory at the largest) does not
    return 1 if any("[" not in f for f in failed) else 0


if __name__ == "__main__":
    sys.exit(main())
