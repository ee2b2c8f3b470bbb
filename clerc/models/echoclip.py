"""Example protocol model: an open_clip image-text model applied to echo videos frame by frame.

As EchoCLIP does, every frame of a clip is embedded by the image tower and the frame
embeddings (each L2-normalised) are averaged; reports and prompts go through the text
tower. Built with random weights (``open_clip.create_model(arch)`` without ``pretrained``:
nothing downloads); pass trained weights by path::

    clerc benchmark --model clerc.models.echoclip:build \\
        --model-arg arch=ViT-B-32 --model-arg weights=/models/echoclip.pt --data DIR

``weights`` is a state dict file (``torch.load(weights_only=True)``; a ``{"state_dict": ...}``
wrapper is unwrapped). ``arch=tiny`` builds a small CLIP for tests and CPU demos.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from clerc.models.protocol import InputSpec

#: CLIP's image normalisation (OpenAI mean and std).
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def _tiny_clip(embed_dim: int = 64) -> nn.Module:
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    return CLIP(
        embed_dim,
        CLIPVisionCfg(layers=2, width=64, head_width=32, patch_size=16, image_size=64),
        CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=2, layers=2),
    )


class FrameAveragingCLIP(nn.Module):
    """``clip`` (an open_clip CLIP) on ``echo_video`` frames and ``echo_text`` reports."""

    modalities = ("echo_video", "echo_text")
    clip: Any  # an open_clip CLIP (its methods are not typed for nn.Module attributes)
    mean: torch.Tensor  # buffers
    std: torch.Tensor

    def __init__(self, clip: Any, image_size: int, video_frames: int = 16) -> None:
        super().__init__()
        self.clip = clip
        self.image_size = int(image_size)
        self.embed_dim = int(clip.text_projection.shape[1])
        self.inputs = InputSpec(
            video_frames=video_frames, video_size=self.image_size, embed_dim=self.embed_dim
        )
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    @property
    def logit_scale(self) -> float:
        return float(self.clip.logit_scale.detach().exp())

    def encode(self, modality: str, batch: torch.Tensor) -> torch.Tensor:
        """``(B, F, S, S)`` uint8 grey clips -> mean of the normalised frame embeddings."""
        if modality != "echo_video":
            raise ValueError(f"FrameAveragingCLIP encodes echo_video, not {modality}")
        b, f = batch.shape[:2]
        x = batch.reshape(b * f, 1, *batch.shape[2:]).float().div(255).expand(-1, 3, -1, -1)
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(
                x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False
            )
        z = F.normalize(self.clip.encode_image((x - self.mean) / self.std), dim=-1)
        return z.reshape(b, f, -1).mean(dim=1)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        import open_clip

        tokens = open_clip.tokenize(list(texts)).to(self.clip.logit_scale.device)
        return self.clip.encode_text(tokens)


def build(
    arch: str = "ViT-B-32",
    weights: str | None = None,
    video_frames: str | int = 16,
    seed: str | int = 0,
) -> FrameAveragingCLIP:
    """A ``FrameAveragingCLIP`` of open_clip architecture ``arch`` (or ``tiny``), random
    weights (seeded) unless ``weights`` names a state dict file."""
    import open_clip

    torch.manual_seed(int(seed))
    if arch == "tiny":
        clip, size = _tiny_clip(), 64
    else:
        clip = open_clip.create_model(arch, pretrained=None)
        size = int(
            clip.visual.image_size[0]
            if isinstance(clip.visual.image_size, tuple)
            else clip.visual.image_size
        )
    if weights:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(2, "no such weights file", str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
        clip.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
    return FrameAveragingCLIP(clip.eval(), size, int(video_frames))
