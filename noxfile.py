"""Sessions for the CLERC harness: ``nox -l`` lists them.

torch is 5.5 GB, so every session shares one environment (``.venv`` beside this file,
or ``$CLERC_VENV``) instead of building its own. It is created on first use and
re-synced whenever ``pyproject.toml`` changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.default_venv_backend = "none"

ROOT = Path(__file__).parent
VENV = Path(os.environ.get("CLERC_VENV", ROOT / ".venv"))
BIN = VENV / "bin"
TORCH = ["torch==2.14.1", "torchvision==0.29.1"]


def _env(session: nox.Session) -> Path:
    """Create (once) the shared environment and install the project into it."""
    if not (BIN / "python").exists():
        session.run(sys.executable, "-m", "venv", str(VENV), external=True)
        session.run(str(BIN / "python"), "-m", "pip", "install", "-q", "--upgrade", "pip",
                    external=True)
    stamp = VENV / ".clerc-pyproject.sha256"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        pip = [str(BIN / "python"), "-m", "pip", "install", "-q"]
        session.run(*pip, *TORCH, external=True)  # first, alone: the big one
        session.run(*pip, "-e", f"{ROOT}[dev]", external=True)
        stamp.write_text(digest)
    return BIN


def _chromium(session: nox.Session) -> None:
    """Install Debian's chromium for the browser tests when it is missing and we are root."""
    if shutil.which("chromium") or shutil.which("chromium-browser"):
        return
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        session.run("apt-get", "update", "-qq", external=True)
        session.run("apt-get", "install", "-y", "-qq", "chromium", external=True,
                    env={"DEBIAN_FRONTEND": "noninteractive"})
    else:
        session.warn("chromium not found: the browser tests will fail; install Debian's chromium")


@nox.session
def tests(session: nox.Session) -> None:
    """Run the whole test suite, the small end-to-end gate included (CPU: ~6 min, -n 2)."""
    bin_ = _env(session)
    _chromium(session)
    args = session.posargs or ["-n", "2", "--durations=15"]
    session.run(str(bin_ / "pytest"), *args, external=True,
                env={"OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"})


@nox.session
def lint(session: nox.Session) -> None:
    """Check style with ruff (lint and format) and types with mypy (clerc/, baselines/)."""
    bin_ = _env(session)
    session.run(str(bin_ / "ruff"), "check", ".", *session.posargs, external=True)
    session.run(str(bin_ / "ruff"), "format", "--check", "clerc", "baselines", external=True)
    session.run(str(bin_ / "mypy"), external=True)  # files and options: [tool.mypy]


@nox.session
def demo(session: nox.Session) -> None:
    """The main job on the embedded default: synthetic cohort -> train -> benchmark -> reports."""
    bin_ = _env(session)
    session.run(str(bin_ / "clerc"), "demo", *session.posargs, external=True)


@nox.session
def benchmark(session: nox.Session) -> None:
    """Score a checkpoint: nox -s benchmark -- --checkpoint ckpt.pt [--data DIR] [...]."""
    bin_ = _env(session)
    session.run(str(bin_ / "clerc"), "benchmark", *session.posargs, external=True)


@nox.session(default=False)
def perf(session: nox.Session) -> None:
    """Regenerate benchmarks/RESULTS.md: side-by-side performance comparisons (slow)."""
    bin_ = _env(session)
    session.run(str(bin_ / "python"), "-m", "benchmarks.run_all", *session.posargs,
                external=True)
