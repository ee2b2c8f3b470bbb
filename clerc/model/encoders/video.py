"""R(2+1)D-18 video encoder (echo and angiography), built from torchvision's own blocks.

At widths ``(64, 128, 256, 512)`` the network is torchvision's ``r2plus1d_18`` parameter for
parameter (same names and shapes), so Kinetics-400 state dicts load; narrower widths give a
tiny model through the same code path. The classifier ``fc`` is a projection to
``embed_dim``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models.video.resnet import BasicBlock, Conv2Plus1D

#: Kinetics-400 normalisation used by torchvision's video models (RGB).
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)


def _stem(width: int) -> nn.Sequential:
    """torchvision's ``R2Plus1dStem`` (45 mid-channels at width 64), scaled to ``width``."""
    mid = 45 if width == 64 else max(1, 45 * width // 64)
    return nn.Sequential(
        nn.Conv3d(3, mid, kernel_size=(1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
        nn.BatchNorm3d(mid),
        nn.ReLU(inplace=True),
        nn.Conv3d(mid, width, kernel_size=(3, 1, 1), padding=(1, 0, 0), bias=False),
        nn.BatchNorm3d(width),
        nn.ReLU(inplace=True),
    )


def _layer(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """One stage, as ``torchvision.models.video.VideoResNet._make_layer``."""
    downsample = None
    if stride != 1 or inplanes != planes:
        downsample = nn.Sequential(
            nn.Conv3d(inplanes, planes, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm3d(planes),
        )
    layers = [BasicBlock(inplanes, planes, Conv2Plus1D, stride, downsample)]
    layers += [BasicBlock(planes, planes, Conv2Plus1D) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class R2Plus1D(nn.Module):
    """R(2+1)D-18 with stage widths ``widths`` and an ``fc`` head of ``out_dim``."""

    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def __init__(self, widths: tuple[int, ...], out_dim: int) -> None:
        super().__init__()
        self.stem = _stem(widths[0])
        inplanes = widths[0]
        for i, planes in enumerate(widths, start=1):
            setattr(self, f"layer{i}", _layer(inplanes, planes, 2, 1 if i == 1 else 2))
            inplanes = planes
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.fc = nn.Linear(widths[-1], out_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        """torchvision's VideoResNet initialisation."""
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


class VideoEncoder(nn.Module):
    """uint8 grayscale clips ``(B, T, H, W)`` -> ``(B, embed_dim)``.

    Normalisation runs on the model's device: ``x / 255``, repeated to three channels,
    Kinetics mean/std per channel, giving ``(B, 3, T, H, W)``.
    """

    scale: Tensor  # buffers: uint8 -> normalised float
    shift: Tensor
    channels_last: bool

    def __init__(self, frames: int, size: int, widths: tuple[int, ...], embed_dim: int) -> None:
        super().__init__()
        self.frames, self.size = frames, size
        self.net = R2Plus1D(widths, embed_dim)
        self.channels_last = False
        mean = torch.tensor(KINETICS_MEAN).view(1, 3, 1, 1, 1)
        std = torch.tensor(KINETICS_STD).view(1, 3, 1, 1, 1)
        self.register_buffer("scale", 1.0 / (255.0 * std), persistent=False)
        self.register_buffer("shift", -mean / std, persistent=False)

    def normalize(self, x: Tensor) -> Tensor:
        """uint8 ``(B, T, H, W)`` -> float ``(B, 3, T, H, W)`` in Kinetics units."""
        if x.dim() != 4:
            raise ValueError(f"video input must be (B, T, H, W) uint8, got shape {tuple(x.shape)}")
        x = x.to(self.scale.dtype).unsqueeze(1) * self.scale + self.shift
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.normalize(x))
