"""Checkpoints that load with ``torch.load(weights_only=True)``: tensors, plain containers and a
JSON header (config, modalities, package versions, code revision, manifest hash, epoch).

File layout: ``{"format": FORMAT, "header": <JSON string>, "state": {...}}``; ``state`` holds
``model`` (a state dict) and optionally ``optimizer`` and ``rng`` (RNG states as tensors).
Writes are atomic: a temporary file in the same directory, then ``os.replace``.
"""

from __future__ import annotations

import datetime as _dt
import functools
import importlib.metadata
import json
import os
import pickle
import platform
import subprocess
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from clerc.errors import UserError
from clerc.modalities import ENCODERS, MODALITY_NAMES

FORMAT = "clerc-checkpoint/1"
_PACKAGES = {
    "torch": "torch",
    "torchvision": "torchvision",
    "open_clip": "open_clip_torch",
    "numpy": "numpy",
    "clerc": "clerc-harness",
}
_LEAVES = (torch.Tensor, str, int, float, bool, type(None), torch.dtype, torch.device)


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be written or read safely; the message names the file."""


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a checkpoint depends on (``"missing"`` if absent)."""
    out = {"python": platform.python_version()}
    for key, dist in _PACKAGES.items():
        try:
            out[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[key] = "missing"
    return out


@functools.lru_cache(maxsize=1)
def code_revision() -> str:
    """``git rev-parse HEAD`` of the source tree, or ``"unknown"`` outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    rev = out.stdout.strip()
    return rev if out.returncode == 0 and rev else "unknown"


def provenance() -> dict[str, Any]:
    """The keys every header carries: format, versions, code revision, modalities, time."""
    return {
        "format": FORMAT,
        "versions": package_versions(),
        "code_revision": code_revision(),
        "modalities": list(MODALITY_NAMES),
        "encoders": list(ENCODERS),
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def make_header(
    config: Mapping[str, Any], manifest_hash: str, epoch: int, **extra: Any
) -> dict[str, Any]:
    """A checkpoint header: provenance plus ``config`` (the train config as a dict, with the
    model's under ``"model"``), ``manifest_hash``, ``epoch`` and any ``extra`` JSON-able keys."""
    return {
        **provenance(),
        "config": dict(config),
        "manifest_hash": manifest_hash,
        "epoch": int(epoch),
        **extra,
    }


def _check_safe(obj: Any, where: str) -> None:
    """Raise naming the first value ``torch.load(weights_only=True)`` would refuse."""
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            if not isinstance(k, str | int):
                raise CheckpointError(f"{where}: key {k!r} must be a str or int")
            _check_safe(v, f"{where}[{k!r}]")
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            _check_safe(v, f"{where}[{i}]")
    elif not isinstance(obj, _LEAVES):
        raise CheckpointError(
            f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}; a checkpoint holds "
            "only tensors, numbers, strings, None and dicts/lists/tuples of them (convert it)"
        )


def save_checkpoint(
    path: str | os.PathLike[str], state: Mapping[str, Any], header: Mapping[str, Any]
) -> Path:
    """Write ``state`` and ``header`` atomically to ``path``.

    Missing provenance keys (format, versions, code_revision, modalities, created_at) are
    added to the header. The header must be JSON-able; the state must hold only tensors and
    plain values (the offending entry is named otherwise).
    """
    path = Path(path)
    if "model" not in state:
        raise CheckpointError(f"{path}: state must have a 'model' state dict, got {sorted(state)}")
    _check_safe(dict(state), f"{path}: state")
    full = {**provenance(), **dict(header)}
    try:
        header_json = json.dumps(full, sort_keys=True, allow_nan=True)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: header is not JSON-able: {e}") from e
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, "header": header_json, "state": dict(state)}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read ``(state, header)`` with ``torch.load(weights_only=True)`` on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is not ours
        raise CheckpointError(
            f"{path}: not a checkpoint (clerc writes .pt files as torch "
            "zip archives; this file is not one)"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{path}: refused: loading it needs arbitrary unpickling, which could run code "
            f"from the file; only CLERC checkpoints (tensors and plain values) are loaded "
            f"({first})"
        ) from e
    except RuntimeError as e:
        raise CheckpointError(f"{path}: not a readable torch checkpoint: {e}") from e
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        found = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(
            f"{path}: not a CLERC checkpoint (expected format {FORMAT!r}, found {found})"
        )
    return obj["state"], json.loads(obj["header"])


def load_model(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[Any, dict[str, Any]]:
    """Moved to ``clerc.model.load.load_model`` (kept here for old imports)."""
    from clerc.model.load import load_model as load

    return load(path, device)
