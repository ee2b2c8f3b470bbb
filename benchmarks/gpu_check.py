"""One self-contained GPU check: training MFU, retrieval at N = 100k, embedding throughput.

    python -m benchmarks.gpu_check --out "$OUT"                 # on the H200 (~3-5 min)
    python -m benchmarks.gpu_check --device cpu --quick --out /tmp/g   # smoke test

1. Training: samples/s and MFU of the paper config (bf16 autocast, channels_last_3d,
   cudnn.benchmark, synthetic batches in pinned memory), via benchmarks/throughput.py's
   `measure`, for each batch size in --batch-sizes.
2. Retrieval: ranks of N paired queries in an N gallery (d = 512) by a chunked float32
   matmul on the device (the CPU harness's rule: count of others scoring >= the
   target); time, achieved TFLOP/s of 2 N^2 d, peak device memory, and the ranks of the
   first queries checked against `clerc.evaluate.metrics.retrieval_ranks` on the CPU.
3. Embedding: inference samples/s of every encoder (bf16 autocast, no grad).

Writes gpu_results.json and gpu_results.md into --out; each part that fails records its
error instead of stopping the others. `--quick` uses the tiny model and small sizes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

H200_BF16_PEAK = 790e12


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _config(quick: bool) -> Any:
    from clerc.train.config import TrainConfig

    return TrainConfig.tiny() if quick else TrainConfig.paper()


def training(device: torch.device, quick: bool, batch_sizes: list[int], steps: int,
             peak: float) -> list[dict]:
    """throughput.measure for each batch size (paper config; tiny with --quick)."""
    import dataclasses

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
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if all("error" in r for r in out):
        raise RuntimeError("; ".join(r["error"] for r in out))
    return out


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

    torch.backends.cuda.matmul.allow_tf32 = False  # scores stay true float32
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
    peak = torch.cuda.max_memory_allocated(device) - before if device.type == "cuda" else None
    m = min(check, n)
    cpu = retrieval_ranks(q[:m].cpu().numpy(), g.cpu().numpy(), np.arange(m))
    mismatch = int(np.sum(cpu != ranks[:m].cpu().numpy()))
    r = ranks.cpu().numpy()
    return {"n": n, "d": d, "chunk": chunk, "seconds": seconds,
            "tflop_per_s": 2 * n * n * d / seconds / 1e12, "peak_extra_bytes": peak,
            "recall@1": float(np.mean(r < 1)), "recall@10": float(np.mean(r < 10)),
            "checked_queries": m, "rank_mismatches_vs_cpu": mismatch}


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
    try:
        results[name] = fn()
    except Exception as exc:  # noqa: BLE001 - one failing part must not lose the others
        results[name] = {"error": f"{type(exc).__name__}: {exc}",
                         "traceback": traceback.format_exc()[-2000:]}
    print(f"[gpu_check] {name}: {time.perf_counter() - t0:.1f} s", flush=True)


def _environment(device: torch.device) -> dict:
    env = {"torch": torch.__version__, "device": str(device),
           "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available()
           else None, "cudnn_enabled": torch.backends.cudnn.enabled}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["gpu_memory_gib"] = torch.cuda.get_device_properties(device).total_memory / 2**30
    major, minor = (int(v) for v in torch.__version__.split(".")[:2])
    env["torch_ok_for_conv3d"] = (major, minor) >= (2, 10)  # 2.9.0 disabled cuDNN conv3d
    return env


def markdown(res: dict) -> str:
    """The fragment run_all embeds in RESULTS.md."""
    env = res["environment"]
    lines = [f"Measured by `python -m benchmarks.gpu_check` on {env.get('gpu', env['device'])}"
             f" (torch {env['torch']}, cuDNN {env['cudnn']}) at {res['date']}.", ""]
    tr = res.get("training")
    if isinstance(tr, list):
        lines += ["| training (synthetic batches) | batch | samples/s | TFLOP/sample | MFU | "
                  "peak memory |", "| --- | --- | --- | --- | --- | --- |"]
        ok = [t for t in tr if "error" not in t]
        lines += [f"| {t['config']}, amp {t['amp']} | {t['batch_size']} | "
                  f"{t['samples_per_s']:.1f} | {t['flops_per_sample'] / 1e12:.3f} | "
                  f"{100 * t['mfu']:.2f}% | {t['peak_memory_bytes'] / 2**30:.1f} GiB |"
                  for t in ok]
        lines += [f"| failed | {t['batch_size']} | {t['error']} | | | |"
                  for t in tr if "error" in t]
        best = max(t["mfu"] for t in ok)
        if env["device"].startswith("cuda") and not res["quick"]:
            lines += ["", f"Target >= 35% MFU: {'met' if best >= 0.35 else '**missed**'} "
                      f"(best {100 * best:.1f}%)."]
    else:
        lines.append(f"Training: failed: {tr['error']}")
    rt = res.get("retrieval", {})
    if "error" in rt:
        lines += ["", f"Retrieval: failed: {rt['error']}"]
    else:
        peak = rt["peak_extra_bytes"]
        mem = "n/a" if peak is None else f"{peak / 2**30:.2f} GiB"
        lines += ["", f"Retrieval N = {rt['n']:,}, d = {rt['d']}, float32, chunk {rt['chunk']}: "
                  f"{rt['seconds']:.3f} s ({rt['tflop_per_s']:.2f} TFLOP/s of 2 N^2 d), peak "
                  f"extra device memory {mem}; ranks of the "
                  f"first {rt['checked_queries']} queries vs the CPU metric: "
                  f"{rt['rank_mismatches_vs_cpu']} mismatches."]
    em = res.get("embedding")
    if isinstance(em, list):
        lines += ["", "| encoder | batch | samples/s | GFLOP/sample | MFU |",
                  "| --- | --- | --- | --- | --- |"]
        lines += [f"| {e['encoder']} | {e['batch']} | {e['samples_per_s']:.0f} | "
                  f"{e['gflop_per_sample']:.2f} | {100 * e['mfu']:.2f}% |" for e in em]
    elif em is not None:
        lines += ["", f"Embedding: failed: {em['error']}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--quick", action="store_true", help="tiny model, small sizes (smoke test)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent),
                   help="directory for gpu_results.json / .md")
    p.add_argument("--batch-sizes", default=None, help="training batch sizes, e.g. 32,128")
    p.add_argument("--retrieval-n", type=int, default=None)
    p.add_argument("--peak-flops", type=float, default=H200_BF16_PEAK)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            p.error("--device cuda but torch.cuda.is_available() is False")
        torch.backends.cudnn.benchmark = True
    quick = args.quick
    sizes = ([int(b) for b in args.batch_sizes.split(",")] if args.batch_sizes
             else [2] if quick else [32, 128])
    n = args.retrieval_n or (2_000 if quick else 100_000)
    res: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                           "environment": _environment(device), "quick": quick}
    _attempt("training", lambda: training(device, quick, sizes, 1 if quick else 10,
                                          args.peak_flops), res)
    _attempt("retrieval", lambda: retrieval(device, n), res)
    _attempt("embedding", lambda: embedding(device, quick, 2 if quick else 256,
                                            1 if quick else 10, args.peak_flops), res)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_results.json").write_text(json.dumps(res, indent=1, default=str))
    (out / "gpu_results.md").write_text(markdown(res))
    print(markdown(res))
    failed = [k for k in ("training", "retrieval", "embedding")
              if isinstance(res.get(k), dict) and "error" in res[k]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
