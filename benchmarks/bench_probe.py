"""Linear probes: the ridge path from one X^T X vs one sklearn `Ridge` fit per alpha, and
the warm-started logistic path vs cold fits.

    python -m benchmarks.bench_probe [--quick]

Ridge: X is float32 (n, 512) (embeddings are float32); ours is `ridge_path(X, y,
default_alphas("regression", n))` (33 alphas). sklearn gets the same X in float64 (it
would otherwise solve in float32 and differ at ~1e-4) with the float64 copy made outside
the timing. At 1M rows only ONE sklearn fit is timed and multiplied by the number of
alphas; its predictions are compared at the smallest alpha.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np

from benchmarks import Section, fmt_bytes, fmt_s, peak_memory, table, timed

D = 512


def features(n: int, d: int = D, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Correlated float32 features (n, d), built in row blocks, and a float64 target."""
    rng = np.random.default_rng(seed)
    mix = (np.eye(d) + rng.standard_normal((d, d)) / np.sqrt(d)).astype(np.float32)
    w = rng.standard_normal(d) / np.sqrt(d)
    x = np.empty((n, d), dtype=np.float32)
    y = np.empty(n)
    for s in range(0, n, 65_536):
        z = rng.standard_normal((min(65_536, n - s), d), dtype=np.float32)
        np.matmul(z, mix, out=x[s:s + len(z)])
        y[s:s + len(z)] = x[s:s + len(z)] @ w + 3.0 + rng.standard_normal(len(z))
    return x, y


def alphas(n: int) -> np.ndarray:
    """The default ridge grid of `fit_probe` (33 alphas)."""
    from clerc.evaluate.probe import default_alphas

    return default_alphas("regression", n)


def case_ridge_ours(n: int) -> Callable[[], object]:
    """clerc `ridge_path` over the default 33 alphas."""
    from clerc.evaluate.probe import ridge_path

    x, y = features(n)
    grid = alphas(n)
    return lambda: ridge_path(x, y, grid)


def case_ridge_sklearn(n: int, n_alphas: int | None = None) -> Callable[[], object]:
    """One `sklearn.linear_model.Ridge(alpha)` fit per alpha (or the first `n_alphas`)."""
    from sklearn.linear_model import Ridge

    x, y = features(n)
    x64 = x.astype(np.float64)
    del x
    grid = alphas(n)[::-1][:n_alphas]  # smallest alpha first

    def run() -> list[tuple[np.ndarray, float]]:
        out = []
        for a in grid:
            m = Ridge(alpha=a).fit(x64, y)
            out.append((m.coef_, float(m.intercept_)))
        return out

    return run


def case_fit_probe(n: int) -> Callable[[], object]:
    """`fit_probe("regression")` end to end: standardise, ridge path, validation R^2."""
    from clerc.evaluate.probe import fit_probe

    x, y = features(n)
    xv, yv = features(max(n // 4, 10), seed=2)
    return lambda: fit_probe("regression", x, y, xv, yv)


MEMORY = ("ours", "sklearn", "fit_probe")


def _ridge(n: int, sk_alphas: int | None, repeats: int,
           memory: tuple[str, ...] = MEMORY) -> dict:
    """Ridge path vs sklearn per alpha; peak memory of the cases named in `memory`."""
    grid = alphas(n)
    ours, sk = case_ridge_ours(n), case_ridge_sklearn(n, sk_alphas)
    times: dict[str, list[float]] = {"ours": [], "sklearn": []}
    for _ in range(repeats):  # interleaved; the last results are compared
        t, (coefs, intercepts) = timed(ours)
        times["ours"].append(t)
        t, fits = timed(sk)
        times["sklearn"].append(t)
    xt, _ = features(1000, seed=1)
    order = np.argsort(grid)  # sk fits ran smallest alpha first
    rel = 0.0
    for (c, b), i in zip(fits, order, strict=False):
        ref = xt @ c + b
        rel = max(rel, float(np.max(np.abs(xt @ coefs[i] + intercepts[i] - ref))
                             / np.max(np.abs(ref))))
    n_fit = len(fits)
    sk_s = min(times["sklearn"]) * grid.size / n_fit
    row = {"n": n, "alphas": grid.size, "ours_s": min(times["ours"]), "sklearn_s": sk_s,
           "sklearn_fits_timed": n_fit, "speedup": sk_s / min(times["ours"]), "max_rel": rel}
    del ours, sk
    mod = "benchmarks.bench_probe"
    if "ours" in memory:
        row["ours_peak"] = peak_memory(mod, "case_ridge_ours", n=n)["peak_bytes"]
    if "sklearn" in memory:
        row["sklearn_peak"] = peak_memory(mod, "case_ridge_sklearn", n=n,
                                          n_alphas=1)["peak_bytes"]
    if "fit_probe" in memory:
        fp = peak_memory(mod, "case_fit_probe", n=n)
        row["fit_probe_s"], row["fit_probe_peak"] = fp["seconds"], fp["peak_bytes"]
    return row


def _logistic(n: int, d: int) -> dict:
    """fit_probe's warm-started C path vs a cold `LogisticRegression` per C, same grid."""
    from sklearn.linear_model import LogisticRegression

    from clerc.evaluate.metrics import auroc
    from clerc.evaluate.probe import default_alphas, fit_probe

    rng = np.random.default_rng(0)
    x = rng.standard_normal((n + n // 4, d))
    logit = x @ (rng.standard_normal(d) / np.sqrt(d) * 2.0)
    y = (rng.random(len(x)) < 1 / (1 + np.exp(-logit))).astype(float)
    xt, yt, xv, yv = x[:n], y[:n], x[n:], y[n:]

    def cold() -> np.ndarray:
        mean, scale = xt.mean(0), xt.std(0)
        xs, xvs = (xt - mean) / scale, (xv - mean) / scale
        return np.array([auroc(yv, xvs @ LogisticRegression(C=1 / a, max_iter=1000)
                               .fit(xs, yt).coef_[0])
                         for a in np.sort(default_alphas("binary", n))[::-1]])

    warm_s, probe = timed(lambda: fit_probe("binary", xt, yt, xv, yv))
    cold_s, cold_scores = timed(cold)
    warm_s = min(warm_s, timed(lambda: fit_probe("binary", xt, yt, xv, yv))[0])
    cold_best = int(np.argmax(cold_scores))
    return {"n": n, "d": d, "warm_s": warm_s, "cold_s": cold_s, "speedup": cold_s / warm_s,
            "same_alpha": bool(np.isclose(probe.alpha, probe.path_alphas[cold_best])),
            "score_diff": abs(probe.val_score - cold_scores[cold_best]),
            "path_diff": float(np.max(np.abs(probe.path_scores - cold_scores))),
            "runner_up_gap": float(np.sort(cold_scores)[-1] - np.sort(cold_scores)[-2])}


def run(quick: bool) -> Section:
    """Ridge at 100k and 1M x 512 (10k with --quick); logistic path at 20k x 512 (2k x 64)."""
    if quick:
        ridge = [_ridge(10_000, None, 1)]
        logistic = _logistic(2_000, 64)
    else:
        # at 1M no sklearn memory: its fit copies X in float64 (4 GB)
        ridge = [_ridge(100_000, None, 2),
                 _ridge(1_000_000, 1, 1, memory=("ours", "fit_probe"))]
        logistic = _logistic(20_000, D)
    body = [[f"{r['n']:,} x {D}", str(r["alphas"]), fmt_s(r["ours_s"]),
             fmt_s(r["sklearn_s"]) + ("" if r["sklearn_fits_timed"] == r["alphas"] else
                                      f" (1 fit x {r['alphas']})"),
             f"{r['speedup']:.1f}x", f"{r['max_rel']:.1e}",
             fmt_bytes(r["ours_peak"]) if "ours_peak" in r else "-",
             fmt_bytes(r["sklearn_peak"]) + " (1 fit)" if "sklearn_peak" in r else "-"]
            for r in ridge]
    big = ridge[-1]
    checks = [
        (f"ridge path n={big['n']:,}, {big['alphas']} alphas: >= 10x faster than one sklearn "
         "Ridge fit per alpha", f"{big['speedup']:.1f}x", big["speedup"] >= 10),
        ("ridge: same predictions as sklearn to 1e-6 relative",
         f"max {max(r['max_rel'] for r in ridge):.1e}", all(r["max_rel"] <= 1e-6 for r in ridge)),
    ]
    lg = logistic
    fp = [r for r in ridge if "fit_probe_peak" in r]
    fp_text = "".join(
        f"\n\n`fit_probe('regression')` end to end at {r['n']:,} x {D} (float32 in; "
        f"standardise, the path, validation R^2): {fmt_s(r['fit_probe_s'])}, peak extra "
        f"RSS {fmt_bytes(r['fit_probe_peak'])} ({r['fit_probe_peak'] / (r['n'] * D * 8):.2f}"
        " of one float64 copy of X: the path standardises row chunks, X is never copied)."
        for r in fp)
    text = ("Ridge: ours = `ridge_path` (one chunked pass for X^T X, one `eigh`, all alphas); "
            "sklearn = `Ridge(alpha).fit` per alpha on the float64 copy of X. **At 1M rows "
            "one sklearn fit is timed and multiplied by the number of alphas.** Relative "
            "error = max |prediction difference| / max |sklearn prediction| over 1,000 "
            "held-out rows, over the alphas fitted by both.\n\n"
            + table(["X", "alphas", "ours", "sklearn, one fit per alpha", "speed-up",
                     "max rel. diff", "ours peak", "sklearn peak"], body) + fp_text
            + f"\n\nLogistic path ({lg['n']:,} x {lg['d']}, 13 values of C, lbfgs): "
            f"`fit_probe('binary')` warm-started {fmt_s(lg['warm_s'])} vs cold fits "
            f"{fmt_s(lg['cold_s'])} ({lg['speedup']:.1f}x). The two validation-AUROC paths "
            f"differ by at most {lg['path_diff']:.1e} over the 13 C values (lbfgs stops at "
            f"tol 1e-4, from a different start); chosen C the same: {lg['same_alpha']} "
            f"(AUROC at the two choices differs by {lg['score_diff']:.1e}; the cold path's "
            f"best and runner-up differ by {lg['runner_up_gap']:.1e}).")
    return Section("Linear probes", text, checks, {"ridge": ridge, "logistic": logistic})


if __name__ == "__main__":
    t0 = time.perf_counter()
    print(run("--quick" in sys.argv).markdown)
    print(f"({time.perf_counter() - t0:.0f} s)")
