"""The eight modalities: four diagnostic tests and the four text reports that describe them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from clerc.registry import Registry

Kind = Literal["video", "waveform", "image", "text"]


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
    kind: Kind
    native_shape: tuple[int | None, ...] | None
    test: str
    describes: str | None
    encoder: str
    label: str

    @property
    def is_text(self) -> bool:
        return self.kind == "text"


MODALITIES: Registry[Modality] = Registry("modality")

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
    MODALITIES.add(_m.name, _m)

#: Modality names in the paper's table order.
MODALITY_NAMES: tuple[str, ...] = tuple(MODALITIES.names())
#: The four diagnostic (non-text) modalities.
DIAGNOSTIC: tuple[str, ...] = tuple(n for n in MODALITY_NAMES if not MODALITIES.get(n).is_text)
#: Encoder keys of the model: one per diagnostic modality plus the shared text encoder.
ENCODERS: tuple[str, ...] = (*DIAGNOSTIC, "text")
#: ECG lead order used everywhere in the harness.
ECG_LEADS: tuple[str, ...] = (
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
)


def get_modality(name: str) -> Modality:
    """Look up a modality by name; unknown names answer with close matches."""
    return MODALITIES.get(name)


def report_of(diagnostic: str) -> str:
    """The report modality describing a diagnostic modality (``echo_video`` -> ``echo_text``)."""
    for name in MODALITY_NAMES:
        if MODALITIES.get(name).describes == diagnostic:
            return name
    raise KeyError(f"{diagnostic!r} is not a diagnostic modality; expected one of {DIAGNOSTIC}")
