"""Chest X-ray encoder: open_clip's ``VisionTransformer`` (the paper uses ViT-B/32)."""

from __future__ import annotations

import torch
from open_clip.transformer import QuickGELU, VisionTransformer
from torch import Tensor, nn

#: CLIP's image normalisation (RGB).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class ImageEncoder(nn.Module):
    """uint8 grayscale images ``(B, H, W)`` -> ``(B, embed_dim)``.

    Normalisation on the model's device: ``x / 255`` repeated to three channels, then
    CLIP mean/std per channel. ``H`` and ``W`` must equal ``image_size``.
    """

    scale: Tensor  # buffers: uint8 -> CLIP-normalised float
    shift: Tensor

    def __init__(
        self,
        image_size: int,
        patch_size: int,
        width: int,
        layers: int,
        heads: int,
        embed_dim: int,
        mlp_ratio: float = 4.0,
        quick_gelu: bool = False,
    ) -> None:
        super().__init__()
        self.image_size = image_size
        self.vit = VisionTransformer(
            image_size=image_size,
            patch_size=patch_size,
            width=width,
            layers=layers,
            heads=heads,
            mlp_ratio=mlp_ratio,
            output_dim=embed_dim,
            act_layer=QuickGELU if quick_gelu else nn.GELU,
        )
        mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
        self.register_buffer("scale", 1.0 / (255.0 * std), persistent=False)
        self.register_buffer("shift", -mean / std, persistent=False)

    def normalize(self, x: Tensor) -> Tensor:
        """uint8 ``(B, H, W)`` -> float ``(B, 3, H, W)`` in CLIP units."""
        size = self.image_size
        if x.dim() != 3 or tuple(x.shape[1:]) != (size, size):
            raise ValueError(
                f"image input must be (B, {size}, {size}) uint8, got shape {tuple(x.shape)}"
            )
        return x.to(self.scale.dtype).unsqueeze(1) * self.scale + self.shift

    def forward(self, x: Tensor) -> Tensor:
        return self.vit(self.normalize(x))
