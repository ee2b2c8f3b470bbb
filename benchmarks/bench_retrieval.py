"""Retrieval ranking: ours (chunked matmul + count) vs the bare matmul, a full argsort and
CLIP_benchmark's recall@k code path, on identical float32 embeddings (d = 512).

    python -m benchmarks.bench_retrieval [--quick]

The CLIP_benchmark path is `clip_benchmark.metrics.zeroshot_retrieval` (v1.6): a full
text x image score matrix, a boolean positive-pair matrix, then `batchify(recall_at_k,
..., batch_size)` per k, which builds a (batch, k, N) int64 one-hot for every batch. It
is called as the package does for text->image retrieval with batch 64 (its CLI default)
and k = 1, 5, 10.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np

from benchmarks import Section, fmt_bytes, fmt_s, interleave, peak_memory, table

KS = (1, 5, 10)
CLIP_BATCH = 64


def embeddings(n: int, d: int = 512, seed: int = 0, noise: float = 6.0
               ) -> tuple[np.ndarray, np.ndarray]:
    """Unit float32 (queries, gallery): query i is gallery i plus isotropic noise."""
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((n, d), dtype=np.float32)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    q = rng.standard_normal((n, d), dtype=np.float32)
    q *= noise / np.sqrt(d, dtype=np.float32)
    q += g
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q, g


def case_ours(n: int, d: int = 512, chunk: int | None = None) -> Callable[[], object]:
    """clerc: `retrieval_ranks` (chunked) then `recall_at_k` for every k."""
    from clerc.evaluate.metrics import recall_at_k, retrieval_ranks

    q, g = embeddings(n, d)
    target = np.arange(n)
    kw = {} if chunk is None else {"chunk": chunk}

    def run() -> dict[str, object]:
        ranks = retrieval_ranks(q, g, target, **kw)
        return {"recall": {k: recall_at_k(ranks, k) for k in KS}, "ranks": ranks}

    return run


def case_ours_chunk512(n: int, d: int = 512) -> Callable[[], object]:
    """Ours with 512-query chunks: a quarter of the default's chunk x N working memory."""
    return case_ours(n, d, chunk=512)


def case_matmul(n: int, d: int = 512) -> Callable[[], object]:
    """The bare float32 matmul of the same size (materialises N x N)."""
    q, g = embeddings(n, d)
    return lambda: q @ g.T


def case_argsort(n: int, d: int = 512) -> Callable[[], object]:
    """The naive way: full score matrix, argsort every row, find the target's position."""
    q, g = embeddings(n, d)

    def run() -> dict[str, object]:
        order = np.argsort(-(q @ g.T), axis=1)
        ranks = np.argmax(order == np.arange(n)[:, None], axis=1)
        return {"recall": {k: float(np.mean(ranks < k)) for k in KS}, "ranks": ranks}

    return run


def case_clip_benchmark(n: int, d: int = 512, max_batches: int | None = None
                        ) -> Callable[[], object]:
    """CLIP_benchmark v1.6 `zeroshot_retrieval.evaluate`'s scoring, text -> image, batch 64.

    With `max_batches`, `batchify` runs on the first `max_batches` query batches only and
    the call returns the time extrapolated to all batches (the full score and
    positive-pair matrices are still built, so peak memory is the real one).
    """
    import torch
    from clip_benchmark.metrics.zeroshot_retrieval import batchify, recall_at_k

    q, g = embeddings(n, d)
    texts_emb, images_emb = torch.from_numpy(q), torch.from_numpy(g)
    texts_image_index = list(range(n))
    n_batches = -(-n // CLIP_BATCH)
    run_batches = n_batches if max_batches is None else min(max_batches, n_batches)
    m = min(n, run_batches * CLIP_BATCH)

    def run() -> dict[str, object]:
        t0 = time.perf_counter()
        scores = texts_emb @ images_emb.t()
        positive_pairs = torch.zeros_like(scores, dtype=bool)
        positive_pairs[torch.arange(len(scores)), texts_image_index] = True
        t1 = time.perf_counter()
        recall = {k: (batchify(recall_at_k, scores[:m], positive_pairs[:m], CLIP_BATCH, "cpu",
                               k=k) > 0).float().mean().item() for k in KS}
        t2 = time.perf_counter()
        total = (t1 - t0) + (t2 - t1) * n_batches / run_batches
        return {"recall": recall, "queries": m, "seconds": total}

    return run


def ties_with_target(n: int, d: int = 512, chunk: int = 1024) -> int:
    """How many (query, other item) pairs score exactly the target's score (0 = tie-free)."""
    q, g = embeddings(n, d)
    ties = 0
    for s in range(0, n, chunk):
        sc = q[s:s + chunk] @ g.T
        own = sc[np.arange(sc.shape[0]), np.arange(s, s + sc.shape[0])]
        ties += int(np.count_nonzero(sc == own[:, None])) - sc.shape[0]
    return ties


def _have_clip_benchmark() -> bool:
    try:
        import clip_benchmark.metrics.zeroshot_retrieval  # noqa: F401
    except ImportError:
        return False
    return True


ALL_METHODS = ("ours", "ours_chunk512", "matmul", "argsort", "clip_benchmark")


def measure(sizes: tuple[int, ...], repeats: int, argsort_max: int = 20_000,
            clip_full_max: int = 2_000, clip_batches: int = 16,
            only: tuple[str, ...] = ALL_METHODS, memory: bool = True) -> list[dict]:
    """One row per (N, method): best time, peak memory, recall values.

    Above `clip_full_max`, CLIP_benchmark's per-batch recall runs on `clip_batches`
    batches of 64 queries and its time is extrapolated to all batches. `only` restricts
    the methods ("ours" and "matmul" are always run); CLIP_benchmark is skipped when it
    is not installed. `memory=False` skips the peak-memory subprocesses.
    """
    mod = "benchmarks.bench_retrieval"
    cases = {"ours": case_ours, "ours_chunk512": case_ours_chunk512, "matmul": case_matmul,
             "argsort": case_argsort, "clip_benchmark": case_clip_benchmark}
    keep = {"ours", "matmul", *only} - ({"clip_benchmark"} if not _have_clip_benchmark()
                                         else set())
    methods: dict[str, Callable[..., Callable[[], object]]] = {
        m: c for m, c in cases.items() if m in keep}
    rows = []
    for n in sizes:
        kwargs: dict[str, dict] = {name: {} for name in methods}
        kwargs["clip_benchmark"] = {} if n <= clip_full_max else {"max_batches": clip_batches}
        active = [m for m in methods if m != "argsort" or n <= argsort_max]
        calls = {m: methods[m](n, **kwargs[m]) for m in active}
        results = {m: calls[m]() for m in active if m != "matmul"}  # warm-up and values
        reps = repeats if n <= 10_000 else max(1, repeats - 1)
        timed_calls = {m: fn for m, fn in calls.items() if m != "clip_benchmark"}
        times = interleave(timed_calls, reps)
        if "clip_benchmark" in calls:
            times["clip_benchmark"] = [results["clip_benchmark"]["seconds"]] + [
                calls["clip_benchmark"]()["seconds"] for _ in range(max(0, reps - 1))]
        del calls
        for m in active:
            mem = peak_memory(mod, f"case_{m}", n=n, **kwargs[m]) if memory else None
            samples = list(times[m])
            if mem is not None and m != "clip_benchmark":
                samples.append(mem["seconds"])
            res = results.get(m) or {}
            row = {"n": n, "method": m, "seconds": min(samples), "samples": samples,
                   "peak_bytes": mem["peak_bytes"] if mem else None,
                   "recall": res.get("recall")}
            if m == "clip_benchmark":
                queries = res["queries"]
                ours_ranks = results["ours"]["ranks"][:queries]
                row["queries"] = queries
                row["extrapolated"] = queries < n
                row["ours_recall_same_queries"] = {k: float(np.mean(ours_ranks < k))
                                                   for k in KS}
            rows.append(row)
        rows.append({"n": n, "method": "_ties", "ties": ties_with_target(n)})
    return rows


def _by(rows: list[dict], n: int, method: str) -> dict | None:
    return next((r for r in rows if r["n"] == n and r["method"] == method), None)


def _clip_equal(rows: list[dict]) -> bool:
    """Same hit counts (CLIP_benchmark averages in float32, so compare counts, not floats)."""
    cbs = [r for r in rows if r["method"] == "clip_benchmark"]
    return bool(cbs) and all(
        round(r["recall"][k] * r["queries"]) == round(r["ours_recall_same_queries"][k]
                                                       * r["queries"])
        for r in cbs for k in KS)


def report(rows: list[dict]) -> Section:
    """Markdown tables and the targets at the largest N."""
    sizes = sorted({r["n"] for r in rows})
    out, checks = [], []
    for n in sizes:
        ours = _by(rows, n, "ours")
        body = []
        for m in ALL_METHODS:
            r = _by(rows, n, m)
            if r is None:
                continue
            rec = "-"
            if r["recall"]:
                rec = ", ".join(f"{r['recall'][k]:.4f}" for k in KS)
            name = {"ours": "ours (default chunk)", "ours_chunk512": "ours, chunk=512"
                    }.get(m, m)
            if m == "clip_benchmark" and r["extrapolated"]:
                name += f" (extrapolated from {r['queries']:,} queries)"
                same = r["ours_recall_same_queries"].values()
                rec += f" (ours on those: {', '.join(f'{v:.4f}' for v in same)})"
            mem, mem_ratio = "-", "-"
            if r["peak_bytes"] is not None:
                mem = fmt_bytes(r["peak_bytes"])
                mem_ratio = f"{r['peak_bytes'] / max(ours['peak_bytes'], 1):.1f}x"
            body.append([name, fmt_s(r["seconds"]), f"{r['seconds'] / ours['seconds']:.2f}x",
                         mem, mem_ratio, rec])
        ties = _by(rows, n, "_ties")["ties"]
        out.append(f"**N = {n:,}** (d = 512; other items scoring exactly the target's score: "
                   f"{ties})\n\n" + table(
                       ["method", "best time", "time / ours", "peak extra RSS",
                        "memory / ours", "recall@1, @5, @10"], body))
    n = sizes[-1]
    ours, mm, cb = _by(rows, n, "ours"), _by(rows, n, "matmul"), _by(rows, n, "clip_benchmark")
    ratio = ours["seconds"] / mm["seconds"]
    checks.append((f"retrieval N={n:,}: ours <= 1.5x the bare float32 matmul", f"{ratio:.2f}x",
                   ratio <= 1.5))
    if cb is not None:
        speed = cb["seconds"] / ours["seconds"]
        checks.append((f"retrieval N={n:,}: >= 10x faster than CLIP_benchmark",
                       f"{speed:.1f}x", speed >= 10))
        if cb["peak_bytes"] is not None:
            mem = cb["peak_bytes"] / max(ours["peak_bytes"], 1)
            checks.append((f"retrieval N={n:,}: >= 20x less peak memory than CLIP_benchmark",
                           f"{mem:.1f}x", mem >= 20))
        small = _by(rows, n, "ours_chunk512")
        if small is not None and cb["peak_bytes"] is not None:
            mem = cb["peak_bytes"] / max(small["peak_bytes"], 1)
            checks.append((f"retrieval N={n:,}, chunk=512: >= 20x less peak memory than "
                           f"CLIP_benchmark ({small['seconds'] / ours['seconds']:.2f}x the "
                           "default's time)", f"{mem:.1f}x", mem >= 20))
        same = _clip_equal(rows)
        checks.append(("retrieval: recall@1/5/10 hit counts equal to CLIP_benchmark's "
                       "(tie-free data, every N)",
                       "equal" if same else "DIFFERENT", same))
    text = ("Rank of each query's paired gallery item, recall@1/5/10. Times: best of the "
            "interleaved repeats (and of the memory subprocess's run). Memory: peak RSS "
            "above the inputs, each method alone in a fresh subprocess. CLIP_benchmark's "
            "per-batch recall (a (64, k, N) int64 one-hot per batch) is far slower than its "
            "matmul; above N = 2,000 it is timed on the first batches and extrapolated "
            "(its full N x N score and positive-pair matrices are always built, so its "
            "memory is exact).\n\n" + "\n\n".join(out))
    return Section("Retrieval ranking", text, checks, {"rows": rows})


def run(quick: bool) -> Section:
    """The retrieval comparison at the sizes of the issue (2k only with --quick)."""
    sizes = (2_000,) if quick else (2_000, 10_000, 20_000)
    return report(measure(sizes, repeats=2 if quick else 3))


if __name__ == "__main__":
    print(run("--quick" in sys.argv).markdown)
