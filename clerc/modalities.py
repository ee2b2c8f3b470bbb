"""The eight modalities: four diagnostic tests and the four text reports that describe them.

Each modality is one ``Modality`` record registered once (``register_modality``); what a
sample of it *is* (reader, views, encoder...) is its kind's record in ``clerc.kinds``.
``MODALITY_NAMES``, ``DIAGNOSTIC`` and ``ENCODERS`` are live views of the registry, so a
modality registered later (a plugin, a test) is seen by every stage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import overload

from clerc.kinds import KINDS
from clerc.registry import Registry


@dataclass(frozen=True)
class Modality:
    """One modality.

    ``native_shape`` is the shape a reader returns (``None`` = variable length):
    video ``(T, H, W)`` grayscale uint8, waveform ``(12, 5000)`` float32 mV at 500 Hz,
    image ``(256, 256)`` grayscale uint8, text a ``str``.
    ``test`` groups the modality with its report: echo, ecg, angio or cxr.
    ``describes`` is, for a report, the diagnostic modality it is written about.
    ``encoder`` is the key of the encoder in the model (all reports share ``text``).
    """

    name: str
    kind: str
    native_shape: tuple[int | None, ...] | None
    test: str
    describes: str | None
    encoder: str
    label: str

    @property
    def is_text(self) -> bool:
        return self.kind == "text"


MODALITIES: Registry[Modality] = Registry("modality")


def register_modality(modality: Modality) -> Modality:
    """Register ``modality``; its kind must be registered (``clerc.kinds.register_kind``)."""
    KINDS.get(modality.kind)
    if not modality.is_text and modality.describes is not None:
        raise ValueError(f"modality {modality.name!r}: only a text modality describes another")
    return MODALITIES.add(modality.name, modality)


for _m in (
    Modality("echo_video", "video", (None, 112, 112), "echo", None, "echo_video", "Echo video"),
    Modality("echo_text", "text", None, "echo", "echo_video", "text", "Echo text"),
    Modality("ecg_waveform", "waveform", (12, 5000), "ecg", None, "ecg_waveform", "EKG waveform"),
    Modality("ecg_text", "text", None, "ecg", "ecg_waveform", "text", "EKG text"),
    Modality("angio_video", "video", (None, 112, 112), "angio", None, "angio_video", "Angio video"),
    Modality("angio_text", "text", None, "angio", "angio_video", "text", "Angio text"),
    Modality("cxr_image", "image", (256, 256), "cxr", None, "cxr_image", "CXR image"),
    Modality("cxr_text", "text", None, "cxr", "cxr_image", "text", "CXR text"),
):
    register_modality(_m)


class Names(Sequence[str]):
    """A read-only tuple-like view of registry names, recomputed on every use."""

    def __init__(self, compute: Callable[[], tuple[str, ...]]) -> None:
        self._compute = compute

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[str]: ...
    def __getitem__(self, i: int | slice) -> str | Sequence[str]:
        return self._compute()[i]

    def __len__(self) -> int:
        return len(self._compute())

    def __iter__(self) -> Iterator[str]:
        return iter(self._compute())

    def __contains__(self, name: object) -> bool:
        return name in self._compute()

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, Names) else other)

    def __hash__(self) -> int:
        return hash(self._compute())

    def __repr__(self) -> str:
        return repr(self._compute())


def _diagnostic() -> tuple[str, ...]:
    return tuple(n for n, m in MODALITIES.items() if not m.is_text)


def _encoders() -> tuple[str, ...]:
    ms = [m for _, m in MODALITIES.items()]
    return tuple(
        dict.fromkeys(
            [m.encoder for m in ms if not m.is_text] + [m.encoder for m in ms if m.is_text]
        )
    )


#: Modality names in the paper's table order (registration order).
MODALITY_NAMES: Names = Names(lambda: tuple(MODALITIES.names()))
#: The diagnostic (non-text) modalities.
DIAGNOSTIC: Names = Names(_diagnostic)
#: Encoder keys of the model: one per diagnostic modality plus the shared text encoder.
ENCODERS: Names = Names(_encoders)
#: ECG lead order used everywhere in the harness.
ECG_LEADS: tuple[str, ...] = (
    "I",
    "II",
    "III",
    "aVR",
    "aVL",
    "aVF",
    "V1",
    "V2",
    "V3",
    "V4",
    "V5",
    "V6",
)


def get_modality(name: str) -> Modality:
    """Look up a modality by name; unknown names answer with close matches."""
    return MODALITIES.get(name)


def encoder_modality(key: str) -> Modality:
    """The first modality embedded by encoder ``key`` (its kind builds the encoder)."""
    for _, m in MODALITIES.items():
        if m.encoder == key:
            return m
    raise KeyError(f"unknown encoder {key!r}; expected one of {tuple(ENCODERS)}")


def report_of(diagnostic: str) -> str:
    """The report modality describing a diagnostic modality (``echo_video`` -> ``echo_text``)."""
    for name, m in MODALITIES.items():
        if m.describes == diagnostic:
            return name
    raise KeyError(f"{diagnostic!r} is not a diagnostic modality; expected one of {DIAGNOSTIC}")
