"""Tasks a model cannot serve: reported as not applicable (a value-less record whose note
says why), not as errors.

An embeddings header may list the ``modalities`` a model encodes and whether it has a
``text_side``; a CLERC checkpoint's header lists neither (every modality, a text side). A
record is not applicable when a modality it scores is not encoded, or when it is a zero-shot
cell and the model has no text side. Supervised baseline records do not depend on the model
and are kept.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from clerc.evaluate.results import Record

NOT_APPLICABLE = "not applicable"


def reason(rec: Record, header: dict[str, Any]) -> str | None:
    """Why the model of ``header`` cannot serve ``rec``'s cell, or None if it can."""
    if rec.setting == "supervised":
        return None
    model = header.get("model") or "the model"
    encoded = header.get("modalities")
    if encoded is not None:
        for m in (rec.query_modality, rec.gallery_modality, rec.modality):
            if m is not None and m not in encoded:
                return f"{NOT_APPLICABLE}: {model} does not encode {m}"
    if rec.setting == "zero_shot" and header.get("text_side") is False:
        return f"{NOT_APPLICABLE}: {model} has no text side to embed the prompt"
    return None


def is_not_applicable(rec: dict[str, Any] | Record) -> bool:
    note = rec["note"] if isinstance(rec, dict) else rec.note
    return rec_value(rec) is None and note is not None and note.startswith(NOT_APPLICABLE)


def rec_value(rec: dict[str, Any] | Record) -> float | None:
    return rec["value"] if isinstance(rec, dict) else rec.value


def mark_not_applicable(records: list[Record], header: dict[str, Any]) -> list[Record]:
    """``records`` with every cell the model cannot serve replaced by a not-applicable one."""
    out = []
    for rec in records:
        why = reason(rec, header)
        out.append(
            rec
            if why is None
            else dataclasses.replace(
                rec, value=None, ci_low=None, ci_high=None, n=0, n_undefined=0, note=why
            )
        )
    return out
