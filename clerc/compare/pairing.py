"""Pseudonymous pairing keys, so that two runs' predictions can be paired by patient without
patient identifiers in any written file.

``predictions.parquet`` rows carry ``pair_patient`` (the patient) and ``pair_unit`` (the
study, or the query patient for retrieval): the first 16 hex digits of HMAC-SHA256 keyed by
a hash of the manifest's full set of patient ids. The same manifest gives the same keys in
every run; without the manifest they cannot be computed or reversed, and they differ
between cohorts.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

import numpy as np

from clerc.evaluate.results import PAIRING_COLUMNS as PAIR_COLUMNS

__all__ = ["PAIR_COLUMNS", "pairing_key", "pseudonyms"]

_DIGITS = 16


def pairing_key(patient_ids: Iterable[object]) -> bytes:
    """The HMAC key of a cohort: SHA-256 of its sorted, de-duplicated patient ids."""
    ids = sorted({str(p) for p in patient_ids})
    return hashlib.sha256(("clerc-pairing-v1\n" + "\n".join(ids)).encode()).digest()


def pseudonyms(key: bytes, values: Iterable[object]) -> np.ndarray:
    """One pseudonym per value (equal values, equal pseudonyms), as an object array."""
    memo: dict[str, str] = {}
    out = []
    for v in values:
        s = str(v)
        if s not in memo:
            memo[s] = hmac.new(key, s.encode(), hashlib.sha256).hexdigest()[:_DIGITS]
        out.append(memo[s])
    return np.asarray(out, dtype=object)
