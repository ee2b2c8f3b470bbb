"""Residual 1D CNN for 12-lead ECG waveforms (random initialisation, as in the paper).

A ResNet-18-style network over time: a strided stem (kernel 15, stride 2, max-pool 2),
four stages of basic residual blocks (two ``kernel``-wide convolutions with batch norm;
stages 2-4 halve the length and widen), global average pooling and a linear projection.

Input normalisation (on the model's device): each lead has its mean over the crop removed
(baseline wander / DC offset) and is divided by a fixed ``scale_mv`` (1 mV by default).
A fixed scale, unlike per-lead standardisation, keeps absolute voltages, which carry
diagnostic information (e.g. voltage criteria for hypertrophy, low-voltage QRS).
"""

from __future__ import annotations

from torch import Tensor, nn


class BasicBlock1d(nn.Module):
    """Two same-padded 1D convolutions with batch norm and an identity (or 1x1) shortcut."""

    def __init__(self, inplanes: int, planes: int, kernel: int, stride: int) -> None:
        super().__init__()
        pad = kernel // 2
        self.conv1 = nn.Conv1d(inplanes, planes, kernel, stride=stride, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm1d(planes)
        self.conv2 = nn.Conv1d(planes, planes, kernel, padding=pad, bias=False)
        self.bn2 = nn.BatchNorm1d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv1d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm1d(planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.downsample(x))


class ECGEncoder(nn.Module):
    """float32 mV ``(B, 12, L)`` -> ``(B, embed_dim)``."""

    def __init__(
        self,
        length: int,
        widths: tuple[int, ...],
        blocks: tuple[int, ...],
        kernel: int,
        embed_dim: int,
        scale_mv: float = 1.0,
        leads: int = 12,
    ) -> None:
        super().__init__()
        self.length, self.leads, self.scale_mv = length, leads, scale_mv
        self.stem = nn.Sequential(
            nn.Conv1d(leads, widths[0], 15, stride=2, padding=7, bias=False),
            nn.BatchNorm1d(widths[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool1d(3, stride=2, padding=1),
        )
        stages, inplanes = [], widths[0]
        for i, (planes, n) in enumerate(zip(widths, blocks, strict=True)):
            stride = 1 if i == 0 else 2
            stage = [BasicBlock1d(inplanes, planes, kernel, stride)]
            stage += [BasicBlock1d(planes, planes, kernel, 1) for _ in range(1, n)]
            stages.append(nn.Sequential(*stage))
            inplanes = planes
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(inplanes, embed_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm1d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def normalize(self, x: Tensor) -> Tensor:
        """Remove each lead's mean and divide by the fixed ``scale_mv``."""
        if x.dim() != 3 or x.shape[1] != self.leads:
            raise ValueError(
                f"ECG input must be (B, {self.leads}, L) float mV, got shape {tuple(x.shape)}"
            )
        x = x.to(self.fc.weight.dtype)
        return (x - x.mean(dim=-1, keepdim=True)) / self.scale_mv

    def forward(self, x: Tensor) -> Tensor:
        x = self.stages(self.stem(self.normalize(x)))
        return self.fc(self.pool(x).flatten(1))
