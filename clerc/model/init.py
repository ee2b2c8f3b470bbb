"""Pretrained initialisation from local files (nothing is downloaded).

- ``echo_video`` / ``angio_video``: a torchvision Kinetics-400 ``r2plus1d_18`` state dict
  (e.g. ``r2plus1d_18-91a641e6.pth``); its ``fc`` classifier is skipped, every other
  parameter must match.
- ``cxr_image``: an open_clip / OpenAI CLIP state dict; ``visual.*`` keys feed the ViT.
- ``text``: the same kind of file; ``transformer.*``, ``token_embedding``,
  ``positional_embedding``, ``ln_final`` and ``text_projection`` feed the text tower.

Files are read with ``torch.load(weights_only=True)``; a state dict nested under
``"state_dict"`` (open_clip training checkpoints) and a DDP ``module.`` prefix are
unwrapped. OpenAI's TorchScript ``.pt`` archives are refused with a way to convert them.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from clerc.errors import UserError

#: Encoders that have pretrained weights in the paper (the ECG encoder starts random).
PRETRAINED = ("echo_video", "angio_video", "cxr_image", "text")
_TEXT_TOP = ("token_embedding.", "positional_embedding", "ln_final.", "text_projection")


class PretrainedError(UserError, ValueError):
    """A pretrained-weight file that does not fit; the message names file and parameter."""


@dataclass(frozen=True)
class LoadReport:
    """What one file gave one encoder: parameters loaded and file keys skipped."""

    encoder: str
    path: str
    loaded: int
    skipped: tuple[str, ...]


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist())


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """A flat ``{name: tensor}`` from a weights file (see the module doc for accepted forms)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such pretrained-weight file")
    if _is_torchscript(path):
        raise PretrainedError(
            f"{path}: is a TorchScript archive (OpenAI's JIT CLIP file), which cannot be read "
            "without running its code. If you trust it, convert it once with: python -c "
            "\"import torch; torch.save(torch.jit.load('IN.pt', map_location='cpu')"
            ".state_dict(), 'OUT.pt')\" and pass OUT.pt"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle.UnpicklingError, RuntimeError from torch's reader
        raise PretrainedError(f"{path}: cannot be read as a weights-only state dict: {e}") from e
    return extract_state_dict(obj, path)


def extract_state_dict(obj: object, path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Unwrap ``{"state_dict": sd}`` and a common ``module.`` prefix; keep tensors only."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise PretrainedError(f"{path}: expected a state dict, got {type(obj).__name__}")
    sd = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
    if not sd:
        raise PretrainedError(f"{path}: holds no tensors")
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def _strip(sd: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def _video_keys(sd: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    keep = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    return keep, sorted(set(sd) - set(keep))


def _image_keys(sd: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    if any(k.startswith("visual.") for k in sd):
        keep = _strip(sd, "visual.")
        return keep, sorted(k for k in sd if not k.startswith("visual."))
    return dict(sd), []


def _text_keys(sd: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    if any(k.startswith("text.") for k in sd):  # open_clip CustomTextCLIP
        sd = _strip(sd, "text.")
    keep = {k: v for k, v in sd.items() if k.startswith(("transformer.", *_TEXT_TOP))}
    return keep, sorted(set(sd) - set(keep))


def _names(keys: list[str], limit: int = 20) -> str:
    more = f", ... ({len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_into(
    module: nn.Module, sd: Mapping[str, Tensor], path: str, skip: tuple[str, ...] = ()
) -> int:
    """Copy ``sd`` into ``module``: every key not under a ``skip`` prefix must match by name
    and shape. Returns the number of tensors loaded."""
    target = {k: v for k, v in module.state_dict().items() if not k.startswith(skip)}
    missing = sorted(set(target) - set(sd))
    unexpected = sorted(set(sd) - set(target))
    wrong = [
        f"{k} (file {tuple(sd[k].shape)} vs model {tuple(target[k].shape)})"
        for k in sorted(set(sd) & set(target))
        if sd[k].shape != target[k].shape
    ]
    problems = []
    if wrong:
        problems.append("shape mismatch: " + "; ".join(wrong))
    if missing:
        problems.append(f"missing from the file ({len(missing)}): {_names(missing)}")
    if unexpected:
        problems.append(f"not in the model ({len(unexpected)}): {_names(unexpected)}")
    if problems:
        raise PretrainedError(
            f"{path}: does not fit {type(module).__name__}: " + " | ".join(problems)
        )
    module.load_state_dict(dict(sd), strict=False)
    return len(sd)


def load_pretrained(
    model: nn.Module, paths: Mapping[str, str | os.PathLike[str]]
) -> dict[str, LoadReport]:
    """Initialise ``model.encoders[key]`` from ``paths[key]`` for keys in ``PRETRAINED``.

    Files shared by several encoders (one CLIP file for ``cxr_image`` and ``text``) are read
    once. Raises :class:`PretrainedError` naming the file and every mismatching parameter.
    """
    unknown = sorted(set(paths) - set(PRETRAINED))
    if unknown:
        raise PretrainedError(
            f"no pretrained weights for {unknown}; expected keys among "
            f"{PRETRAINED} (the ECG encoder starts from random weights)"
        )
    cache: dict[Path, dict[str, Tensor]] = {}
    reports: dict[str, LoadReport] = {}
    for key, p in paths.items():
        path = Path(p)
        if path not in cache:
            cache[path] = read_state_dict(path)
        encoder = model.get_submodule(f"encoders.{key}")
        reports[key] = _load_encoder(encoder, key, cache[path], str(path))
    return reports


def _load_encoder(enc: nn.Module, key: str, sd: dict[str, Tensor], path: str) -> LoadReport:
    if key in ("echo_video", "angio_video"):
        keep, skipped = _video_keys(sd)
        n = load_into(enc.get_submodule("net"), keep, path, skip=("fc.",))
    elif key == "cxr_image":
        keep, skipped = _image_keys(sd)
        n = load_into(enc.get_submodule("vit"), keep, path)
    else:
        keep, skipped = _text_keys(sd)
        n = load_into(enc.get_submodule("tower"), keep, path)
    return LoadReport(key, path, n, tuple(skipped))


def random_init_warning(
    model_cfg: object,
    cfg_modalities: tuple[str, ...],
    init: Mapping[str, str],
    *,
    allow_random: bool,
) -> str | None:
    """Check that the paper's architecture starts from the paper's pretrained weights.

    With the paper's encoders (``ModelConfig.paper()``), every encoder of :data:`PRETRAINED`
    the run trains (``text`` when any report modality is trained) should have an ``--init``
    file: the paper starts the video encoders from Kinetics-400 and the CXR and text
    encoders from CLIP. Raises ``ValueError`` naming the missing ones unless
    ``allow_random``; then returns the loud warning to print (None when nothing is missing).
    """
    from clerc.modalities import get_modality
    from clerc.model.config import ModelConfig

    if model_cfg != ModelConfig.paper():
        return None
    wanted = {m for m in cfg_modalities if m in PRETRAINED}
    if any(get_modality(m).is_text for m in cfg_modalities):
        wanted.add("text")
    missing = [e for e in PRETRAINED if e in wanted and e not in init]
    if not missing:
        return None
    what = (
        f"the paper's encoders without pretrained weights for {', '.join(missing)} "
        "(the paper starts echo/angio from Kinetics-400 r2plus1d_18 and CXR/text from "
        "CLIP; give them with --init ENCODER=PATH, see docs/CONTRACTS.md)"
    )
    if not allow_random:
        raise ValueError(
            f"refusing to train {what}; pass --allow-random-init to train "
            "them from random weights anyway"
        )
    return (
        f"WARNING: training {what}; they start from RANDOM weights "
        "(--allow-random-init), so results are not comparable with the paper's"
    )
