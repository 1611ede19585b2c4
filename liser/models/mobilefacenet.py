"""The MobileFaceNet landmark branch of S2D, up to stage ``conv_4``.

S2D's landmark prompts come from a frozen MobileFaceNet trained to regress 68 facial landmarks
(``MobileFaceNet([112, 112], 136)``). S2D reads the feature map after ``conv_4``, so only the stages up to
there are built; the later ones in the published weights file (:data:`UNUSED_STAGES`) are skipped by the loader.

| stage      | layers                                                        | output (112 × 112 input) |
|------------|---------------------------------------------------------------|--------------------------|
| `conv1`    | 3×3 conv stride 2 (no bias) + BN + PReLU, 3 → 64              | 64 × 56 × 56             |
| `conv2_dw` | depthwise 3×3 + BN + PReLU on 64                              | 64 × 56 × 56             |
| `conv_23`  | 1×1 expand 64 → 128, depthwise 3×3 stride 2, 1×1 project → 64 | 64 × 28 × 28             |
| `conv_3`   | 4 residual blocks of that kind (expansion 128)                | 64 × 28 × 28             |
| `conv_34`  | 1×1 expand 64 → 256, depthwise 3×3 stride 2, project → 128    | 128 × 14 × 14            |
| `conv_4`   | 6 residual blocks (expansion 256)                             | 128 × 14 × 14            |

The total stride is 8 (:data:`STRIDE`): an S input gives an S/8 map, which is how S2D sizes the branch's input
to match its patch grid (112 for the 14 × 14 grid of 224 / 16).

State-dict keys follow the pattern of the published file: a conv block is ``{conv,bn,prelu}``, a projection
``{conv,bn}``, a depthwise unit ``{conv,conv_dw,project}``, a residual stage ``model.{k}`` (e.g.
``conv_23.conv_dw.prelu.weight``, ``conv_4.model.5.project.bn.running_var``). Every BatchNorm and PReLU is
per channel; BatchNorm eps is PyTorch's default 1e-5.

The module is frozen: its parameters never require grad, it stays in eval mode whatever ``train()`` is called
with, and its forward runs without autograd.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MobileFaceNet", "UNUSED_STAGES", "STRIDE", "OUT_CHANNELS"]

UNUSED_STAGES: tuple[str, ...] = ("conv_45", "conv_5", "conv_6_sep", "output_layer")
"""Top-level stages of the published weights file after ``conv_4``; S2D never runs them."""

STRIDE = 8
OUT_CHANNELS = 128


class ConvBlock(nn.Module):
    """Convolution without bias, BatchNorm, per-channel PReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride, padding=kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.prelu = nn.PReLU(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(self.bn(self.conv(x)))


class LinearBlock(nn.Module):
    """Convolution without bias and BatchNorm, no activation (the projection of an inverted bottleneck)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class DepthWise(nn.Module):
    """Inverted bottleneck: 1×1 expand, depthwise 3×3, 1×1 project; with a skip connection when ``residual``."""

    def __init__(self, in_channels: int, out_channels: int, expansion: int, stride: int = 1, residual: bool = False):
        super().__init__()
        if residual and (stride != 1 or in_channels != out_channels):
            raise ValueError("a residual unit keeps its shape: stride 1 and as many channels out as in")
        self.residual = residual
        self.conv = ConvBlock(in_channels, expansion)
        self.conv_dw = ConvBlock(expansion, expansion, kernel=3, stride=stride, groups=expansion)
        self.project = LinearBlock(expansion, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.conv_dw(self.conv(x)))
        return x + y if self.residual else y


class Residual(nn.Module):
    """``blocks`` residual inverted bottlenecks on ``channels`` channels, held under ``model``."""

    def __init__(self, channels: int, expansion: int, blocks: int):
        super().__init__()
        self.model = nn.Sequential(*(DepthWise(channels, channels, expansion, residual=True) for _ in range(blocks)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class MobileFaceNet(nn.Module):
    """MobileFaceNet up to ``conv_4``: (N, 3, S, S) ImageNet-normalised frames -> (N, 128, S/8, S/8).

    S is 112 for the published weights (a 14 × 14 map); any multiple of 8 runs.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = ConvBlock(3, 64, kernel=3, stride=2)
        self.conv2_dw = ConvBlock(64, 64, kernel=3, groups=64)
        self.conv_23 = DepthWise(64, 64, expansion=128, stride=2)
        self.conv_3 = Residual(64, expansion=128, blocks=4)
        self.conv_34 = DepthWise(64, OUT_CHANNELS, expansion=256, stride=2)
        self.conv_4 = Residual(OUT_CHANNELS, expansion=256, blocks=6)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> MobileFaceNet:
        """Frozen: stays in eval mode (BatchNorm uses its running statistics) whatever ``mode`` is."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[-1] % STRIDE or x.shape[-2] % STRIDE:
            raise ValueError(f"expected (N, 3, H, W) frames with H and W multiples of {STRIDE}, got {tuple(x.shape)}")
        x = self.conv2_dw(self.conv1(x))
        x = self.conv_3(self.conv_23(x))
        return self.conv_4(self.conv_34(x))
