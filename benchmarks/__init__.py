"""Side-by-side performance comparisons for the CLERC harness (``python -m benchmarks.run_all``).

Shared measurement helpers live here:

- a *case* is a factory ``case(**kwargs) -> Callable[[], object]``: it builds the inputs,
  and the callable it returns is the measured work (inputs are built once, outside timing);
- `interleave` times several cases round-robin in one process (ratios stay fair when the
  machine is shared) and keeps every sample;
- `peak_memory` runs one case in a fresh subprocess: after the inputs are built it resets
  the kernel's peak-RSS mark (``/proc/self/clear_refs``), runs the callable once and
  reports peak RSS minus the RSS just before the call, so neither the interpreter, the
  imports nor the inputs count.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
Case = Callable[..., Callable[[], object]]


@dataclass
class Section:
    """What one benchmark contributes to RESULTS.md: markdown, targets and raw numbers."""

    title: str
    markdown: str
    targets: list[tuple[str, str, bool | None]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """Wall seconds of one call of ``fn`` and its result."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def interleave(calls: Mapping[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Time every callable ``repeats`` times, round-robin: {name: [seconds, ...]}."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            times[name].append(timed(fn)[0])
    return times


def _status_kb(key: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{key}:\s+(\d+)", text, re.M).group(1))


def _child_main() -> None:
    """Subprocess entry: build one case, reset the peak mark, run it once, print JSON."""
    spec = json.loads(sys.argv[1])
    module = importlib.import_module(spec["module"])
    fn = getattr(module, spec["case"])(**spec["kwargs"])
    import gc

    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")
        method = "clear_refs"
    except OSError:
        method = "ru_maxrss"
    import resource

    before_rss = _status_kb("VmRSS")
    before_hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds, _ = timed(fn)
    if method == "clear_refs":
        peak = _status_kb("VmHWM") - before_rss
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_hwm
    print("@@RESULT@@" + json.dumps({"peak_bytes": 1024 * peak, "seconds": seconds,
                                     "method": method}))


def peak_memory(module: str, case: str, timeout: float = 1800, **kwargs: Any) -> dict[str, Any]:
    """Peak extra RSS (bytes) and wall time of one call of ``module.case(**kwargs)()``."""
    spec = json.dumps({"module": module, "case": case, "kwargs": kwargs})
    code = "from benchmarks import _child_main; _child_main()"
    proc = subprocess.run([sys.executable, "-c", code, spec], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("@@RESULT@@"):
            return json.loads(line[len("@@RESULT@@"):])
    raise RuntimeError(f"{module}.{case}({kwargs}) failed in its subprocess "
                       f"(exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def fmt_bytes(n: float) -> str:
    """Human-readable bytes (MiB/GiB)."""
    if n >= 2**30:
        return f"{n / 2**30:.2f} GiB"
    return f"{n / 2**20:.1f} MiB"


def fmt_s(s: float) -> str:
    """Seconds with sensible precision."""
    if s < 1e-3:
        return f"{s * 1e6:.0f} us"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_info() -> dict[str, str]:
    """CPU model, cores, load, library versions and BLAS."""
    import numpy as np
    import scipy
    import sklearn

    info: dict[str, str] = {}
    try:
        cpu = Path("/proc/cpuinfo").read_text()
        info["cpu"] = re.search(r"model name\s*:\s*(.+)", cpu).group(1).strip()
    except (OSError, AttributeError):
        import platform

        info["cpu"] = platform.processor() or "unknown"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info["cores"] = f"{usable} usable ({os.cpu_count()} online)"
    if hasattr(os, "getloadavg"):
        info["load average at start"] = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    info["python"] = sys.version.split()[0]
    info["numpy"] = np.__version__
    info["scipy"] = scipy.__version__
    info["scikit-learn"] = sklearn.__version__
    try:
        import torch

        info["torch"] = f"{torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        info["torch"] = "not installed"
    try:
        from threadpoolctl import threadpool_info

        info["BLAS"] = "; ".join(f"{p.get('internal_api')} {p.get('version')} "
                                 f"({p.get('num_threads')} threads)" for p in threadpool_info()
                                 if p.get("user_api") == "blas")
    except ImportError:
        info["BLAS"] = "unknown"
    return info
