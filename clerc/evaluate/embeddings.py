"""Embeddings of every sample of a manifest, plus prompt embeddings and the logit scale.

Saved as a single ``.npz`` with plain arrays and a JSON header string, loadable with
``allow_pickle=False``. Scoring needs only this object and the manifest's labels.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Columns of ``Embeddings.samples``, in order.
SAMPLE_COLUMNS: tuple[str, ...] = (
    "sample_id",
    "patient_id",
    "study_id",
    "modality",
    "acquired_at",
    "split",
)
_STRING_COLUMNS: tuple[str, ...] = ("sample_id", "patient_id", "study_id", "modality", "split")
_NORM_TOL = 1e-3


def _check_unit_rows(name: str, x: np.ndarray) -> None:
    if x.ndim != 2:
        raise ValueError(f"Embeddings.{name} must be 2-D (N, D), got shape {x.shape}")
    if len(x) and not np.isfinite(x).all():
        raise ValueError(f"Embeddings.{name} contains non-finite values")
    norms = np.linalg.norm(x, axis=1)
    bad = np.flatnonzero(np.abs(norms - 1.0) > _NORM_TOL)
    if bad.size:
        raise ValueError(
            f"Embeddings.{name} rows must be L2-normalised; "
            f"row {bad[0]} has norm {norms[bad[0]]:.4f}"
        )


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Float32 rows scaled to unit length (a zero row is an error)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError("cannot normalise a zero embedding")
    return (x / norms).astype(np.float32)


@dataclass(frozen=True)
class Embeddings:
    """Sample table, unit vectors ``(N, D)``, prompts ``(P, D)``, logit scale (multiplier)."""

    samples: pd.DataFrame
    vectors: np.ndarray
    prompt_texts: list[str]
    prompt_vectors: np.ndarray
    logit_scale: float
    header: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [c for c in SAMPLE_COLUMNS if c not in self.samples.columns]
        if missing:
            raise ValueError(f"Embeddings.samples lacks columns {missing}")
        samples = (
            self.samples[list(SAMPLE_COLUMNS)]
            .reset_index(drop=True)
            .astype({c: "string" for c in _STRING_COLUMNS})
        )
        samples["acquired_at"] = pd.to_datetime(samples["acquired_at"]).astype("datetime64[ns]")
        object.__setattr__(self, "samples", samples)
        vectors = np.ascontiguousarray(self.vectors, dtype=np.float32)
        prompts = np.ascontiguousarray(self.prompt_vectors, dtype=np.float32).reshape(
            len(self.prompt_texts), -1 if len(self.prompt_texts) else vectors.shape[-1]
        )
        object.__setattr__(self, "vectors", vectors)
        object.__setattr__(self, "prompt_vectors", prompts)
        object.__setattr__(self, "prompt_texts", list(self.prompt_texts))
        object.__setattr__(self, "logit_scale", float(self.logit_scale))
        self._validate()

    def _validate(self) -> None:
        _check_unit_rows("vectors", self.vectors)
        _check_unit_rows("prompt_vectors", self.prompt_vectors)
        if len(self.vectors) != len(self.samples):
            raise ValueError(
                f"Embeddings: {len(self.vectors)} vectors for {len(self.samples)} samples"
            )
        if self.prompt_vectors.shape[1] != self.vectors.shape[1]:
            raise ValueError(
                f"Embeddings: prompt dimension {self.prompt_vectors.shape[1]} "
                f"!= sample dimension {self.vectors.shape[1]}"
            )
        if self.samples["sample_id"].duplicated().any():
            dup = self.samples.loc[self.samples["sample_id"].duplicated(), "sample_id"].iloc[0]
            raise ValueError(f"Embeddings: sample_id {dup!r} appears twice")
        if not (np.isfinite(self.logit_scale) and self.logit_scale > 0):
            raise ValueError(f"Embeddings.logit_scale must be positive, got {self.logit_scale}")

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def rows(self, modality: str, split: str | None = None) -> np.ndarray:
        """Integer positions of the samples of ``modality`` (and ``split``)."""
        mask = (self.samples["modality"] == modality).to_numpy(dtype=bool)
        if split is not None:
            mask &= (self.samples["split"] == split).to_numpy(dtype=bool, na_value=False)
        return np.flatnonzero(mask)

    def prompt_vector(self, text: str) -> np.ndarray:
        """The embedding of one prompt text (unknown text names the known count)."""
        try:
            return self.prompt_vectors[self.prompt_texts.index(text)]
        except ValueError:
            raise KeyError(
                f"prompt {text!r} was not embedded ({len(self.prompt_texts)} prompts are)"
            ) from None

    def save(self, path: str | Path) -> Path:
        """Write one ``.npz`` (no pickled objects); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {f"s_{c}": _str_array(self.samples[c]) for c in _STRING_COLUMNS}
        arrays.update({f"na_{c}": self.samples[c].isna().to_numpy() for c in _STRING_COLUMNS})
        arrays["s_acquired_at"] = self.samples["acquired_at"].to_numpy().astype("int64")
        arrays["na_acquired_at"] = self.samples["acquired_at"].isna().to_numpy()
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(
            tmp,
            vectors=self.vectors,
            prompt_vectors=self.prompt_vectors,
            prompt_texts=np.array(self.prompt_texts, dtype=str),
            logit_scale=np.float64(self.logit_scale),
            header=np.array(json.dumps(self.header)),
            **arrays,
        )
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Embeddings:
        """Read a file written by :meth:`save` (``allow_pickle=False``); any other file is a
        ``ValueError`` naming it."""
        path = Path(path)
        what = f"{path}: not an embeddings file written by `clerc embed`"
        try:
            z = np.load(path, allow_pickle=False)
        except (ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{what} ({exc})") from exc
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError(f"{what} (a single array, not an .npz archive)")
        try:
            return cls._from_npz(z)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{what} ({exc})") from exc
        finally:
            z.close()

    @classmethod
    def _from_npz(cls, z: Any) -> Embeddings:
        """The object from the arrays of an open ``.npz`` written by :meth:`save`."""
        cols: dict[str, Any] = {}
        for c in _STRING_COLUMNS:
            s = pd.Series(z[f"s_{c}"], dtype="string")
            s[z[f"na_{c}"]] = pd.NA
            cols[c] = s
        t = pd.Series(pd.to_datetime(z["s_acquired_at"].astype("datetime64[ns]")))
        t[z["na_acquired_at"]] = pd.NaT
        cols["acquired_at"] = t
        return cls(
            samples=pd.DataFrame(cols)[list(SAMPLE_COLUMNS)],
            vectors=z["vectors"],
            prompt_texts=[str(x) for x in z["prompt_texts"]],
            prompt_vectors=z["prompt_vectors"],
            logit_scale=float(z["logit_scale"]),
            header=json.loads(str(z["header"])),
        )


def _str_array(s: pd.Series) -> np.ndarray:
    return np.array(s.fillna("").astype(str).tolist(), dtype=str)
