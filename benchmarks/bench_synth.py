"""Synthetic cohort generation rate: patients per second of `clerc.synthetic.synthesize`.

    python -m benchmarks.bench_synth [--quick]

Writes a cohort (media files, manifest, ground truth) into a temporary directory with one
worker process and with the default number of workers, and reports patients/s and the
files written per patient.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from benchmarks import Section, fmt_s, table, timed


def generate(patients: int, workers: int, seed: int = 0) -> dict[str, float]:
    """Seconds, patients/s, files and bytes of one `synthesize` call."""
    from clerc.synthetic.writer import synthesize

    with tempfile.TemporaryDirectory() as tmp:
        seconds, _ = timed(lambda: synthesize(tmp, patients, seed=seed, workers=workers,
                                              progress=False))
        files = [p for p in Path(tmp).rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
    return {"patients": patients, "workers": workers, "seconds": seconds,
            "patients_per_s": patients / seconds, "files": len(files), "bytes": size}


def run(quick: bool) -> Section:
    """50 patients (4 with --quick), one worker and the default (min(cores, 8))."""
    patients = 4 if quick else 50
    default_workers = min(os.cpu_count() or 1, 8)
    rows = [generate(patients, 1)]
    if default_workers > 1 and not quick:
        rows.append(generate(patients, default_workers))
    body = [[str(r["patients"]), str(r["workers"]), fmt_s(r["seconds"]),
             f"{r['patients_per_s']:.2f}", f"{r['files'] / r['patients']:.1f}",
             f"{r['bytes'] / r['patients'] / 2**20:.2f} MiB"] for r in rows]
    text = ("`clerc.synthetic.synthesize` into a temporary directory (rendering, encoding "
            "AVI/PNG/WFDB files, manifest and ground truth).\n\n"
            + table(["patients", "workers", "wall time", "patients/s", "files/patient",
                     "bytes/patient"], body))
    return Section("Synthetic cohort generation", text, [], {"rows": rows})


if __name__ == "__main__":
    print(run("--quick" in sys.argv).markdown)
