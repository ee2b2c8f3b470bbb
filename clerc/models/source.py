"""What an embedding file is made from: a CLERC checkpoint or a protocol model.

A source has ``identity()`` (the embedding cache key part: everything in the model that
changes an embedding), ``load(device) -> (model, config, modalities)``, ``has_text`` and
``header()`` (fields stored in the embeddings file and the results' provenance).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import sys
from dataclasses import dataclass
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Any

from clerc.evaluate.results import file_hash
from clerc.modalities import MODALITY_NAMES

#: Packages whose code shapes a protocol model's embedding (their versions join the key).
_VERSIONED = ("torch", "open_clip_torch", "numpy")


@dataclass(frozen=True)
class CheckpointSource:
    """A CLERC checkpoint file: every modality, a text side."""

    path: Path
    has_text = True

    @cached_property
    def _hash(self) -> str:
        return file_hash(self.path)

    def identity(self) -> str:
        return self._hash

    def load(self, device: str) -> tuple[Any, Any, tuple[str, ...]]:
        from clerc.model.load import load_model

        model, _ = load_model(self.path, device)
        return model, model.cfg, tuple(MODALITY_NAMES)

    def header(self) -> dict[str, Any]:
        return {"checkpoint": str(self.path), "checkpoint_hash": self._hash}

    def __str__(self) -> str:
        return str(self.path)


def parse_model_args(pairs: list[str] | tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """``["weights=/w.pt", "arch=tiny"]`` -> sorted ``(key, value)`` pairs."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--model-arg {pair!r}: expected KEY=VALUE with KEY a Python name")
        out[key] = value
    return tuple(sorted(out.items()))


def _code_hash(obj: Any) -> str:
    """SHA-256 of the source file defining a module or class (``"no-source"`` if none)."""
    try:
        f = inspect.getsourcefile(obj)
    except TypeError:
        f = None
    return file_hash(f) if f and Path(f).is_file() else "no-source"


def _weights_hash(model: Any) -> str:
    """SHA-256 over the state dict's names, shapes and values (``"none"`` without one)."""
    import torch

    state = getattr(model, "state_dict", None)
    if not callable(state):
        return "none"
    h = hashlib.sha256()
    for name, t in sorted(state().items()):
        t = t.detach().cpu()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\n".encode())
        h.update((t.float() if t.dtype == torch.bfloat16 else t).contiguous().numpy().tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class ModelSource:
    """A protocol model: ``spec`` is ``package.module:factory``, ``args`` its string kwargs."""

    spec: str
    args: tuple[tuple[str, str], ...] = ()

    def _factory(self) -> Any:
        module_name, sep, attr = self.spec.partition(":")
        if not sep or not module_name or not attr:
            raise ValueError(f"--model {self.spec!r}: expected package.module:factory")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ValueError(f"--model {self.spec!r}: cannot import {module_name} ({exc})") from exc
        factory = getattr(module, attr, None)
        if not callable(factory):
            raise ValueError(f"--model {self.spec!r}: {module_name} has no callable {attr!r}")
        return factory

    @cached_property
    def model(self) -> Any:
        """The built model (built once per source object)."""
        factory = self._factory()
        try:
            return factory(**dict(self.args))
        except TypeError as exc:
            raise ValueError(
                f"--model {self.spec!r}: the factory rejected the arguments "
                f"{dict(self.args)} ({exc})"
            ) from exc

    @cached_property
    def adapter(self) -> Any:
        from clerc.models.protocol import ProtocolAdapter

        return ProtocolAdapter(self.model, f"--model {self.spec}")

    @property
    def has_text(self) -> bool:
        from clerc.models.protocol import has_text_side

        return has_text_side(self.model)

    def identity(self) -> str:
        return self._identity

    @cached_property
    def _identity(self) -> str:
        """Hash of the spec, arguments (and the bytes of any file they name), the code of
        the factory's and the model's modules, the weights, the view sizes and versions."""
        a = self.adapter
        h = hashlib.sha256(f"clerc-model-v1\n{self.spec}\n".encode())
        for key, value in self.args:
            h.update(f"{key}={value}\n".encode())
            if value and Path(value).is_file():
                h.update(file_hash(value).encode())
        factory = self._factory()
        h.update(_code_hash(sys.modules[factory.__module__]).encode())
        h.update(_code_hash(type(self.model)).encode())
        h.update(_weights_hash(self.model).encode())
        h.update(repr(sorted(a.cfg.to_dict().items())).encode())
        h.update(repr(a.modalities).encode())
        for pkg in _VERSIONED:
            try:
                h.update(f"{pkg}={metadata.version(pkg)}\n".encode())
            except metadata.PackageNotFoundError:
                h.update(f"{pkg}=none\n".encode())
        return h.hexdigest()

    def load(self, device: str) -> tuple[Any, Any, tuple[str, ...]]:
        model = self.model
        if callable(getattr(model, "to", None)) and callable(getattr(model, "eval", None)):
            model.to(device).eval()
        return self.adapter, self.adapter.cfg, self.adapter.modalities

    def header(self) -> dict[str, Any]:
        return {
            "checkpoint": f"model {self.spec}",
            "checkpoint_hash": self.identity(),
            "model": self.spec,
            "model_args": dict(self.args),
            "modalities": list(self.adapter.modalities),
            "text_side": self.has_text,
        }

    def __str__(self) -> str:
        return f"model {self.spec}"


def as_source(checkpoint: Any) -> Any:
    """A source from a checkpoint path (or a source, unchanged)."""
    return checkpoint if hasattr(checkpoint, "identity") else CheckpointSource(Path(checkpoint))
