"""S2D, the video teacher: a ViT-B/16 image model adapted to 16-frame face clips (Chen et al., IEEE TAC 2024).

Built from the project's description of the network (``shared/specs/s2d.md``) and timm's ViT parts.

Data flow, for clips B × 3 × T × S × S (T = 16, S = 224 at full size, patch 16 -> a g × g = 14 × 14 grid):

1. frames flattened to (B·T, 3, S, S), t fastest; the frozen MobileFaceNet branch turns each frame, resized to
   ``landmark_size`` = 8·g (112), into a landmark map L of (B·T, 128, g, g);
2. ``x = patch_embed(frames)``, ``a = patch_embed_prompt(L)``: (B·T, g², D) each;
3. layer-0 prompt, before positional embeddings and without the class token: ``(s, t) =
   prompt_blocks[0](prompt_norms[0](x), prompt_norms[0](a))``, ``x += t + s``, ``a = s``;
4. class token prepended, ``pos_embed`` added, ``temporal_embedding[t]`` added to all g² + 1 tokens of frame t;
5. for block i: if i ≥ 1, ``(s, t) = prompt_blocks[i](prompt_norms[i-1](x)[:, 1:], prompt_norms[0](a))``,
   ``a = s``, patch tokens of x += t + s; then ``x = blocks[i](x)``;
6. ``ln_post``, each frame's class token averaged over the T frames, dropout, ``head.fc_cls`` -> (B, C) logits.

A prompt block is an MCP (multi-view complementary prompter, ``conv1x1(Fovea(conv0_0(img)) + conv0_1(lmk))``)
and a TMA (temporal-modelling adapter: attention over the T frames of each patch position, then a spatial
bottleneck), both reading the same normalised image tokens. ``prompt_norms[depth-1]`` exists, as in the
published weights, but is never used.

State dict. ``S2D.state_dict()`` holds exactly the tensors of the published S2D checkpoints: 419 for the full
size (~95.06 M parameters with C = 7, ``pos_embed`` included: it is frozen but saved). The MobileFaceNet branch is
**not** part of it: its weights come from their own file (``liser.models.s2d_checkpoint.load_mobilefacenet``).
The branch is held outside the module tree (``S2D.landmark``), so it is absent from ``state_dict()``,
``parameters()`` (an optimiser never sees it) and ``train()``, while ``.to()``, ``.half()`` etc. still move it.

Sizes. :meth:`S2DConfig.full` is the published network; :meth:`S2DConfig.small` is a CPU-trainable one for the
demo. MobileFaceNet has a total stride of 8, so the branch's input is always resized to 8 × the patch grid
(112 for 224 / 16, 56 for the small model's 112 / 16) and its map lines up with the patch tokens one to one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Attention, Block
from torch import nn

from liser.models.mobilefacenet import OUT_CHANNELS, STRIDE, MobileFaceNet

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "S2DConfig",
    "pad_clip",
    "preprocess_frames",
    "preprocess_clip",
    "Fovea",
    "TMA",
    "PromptBlock",
    "S2D",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class S2DConfig:
    """Sizes of an S2D network; the defaults are the published one (FERV39k / DFEW: 7 classes, MAFW: 11)."""

    classes: int = 7  # C
    width: int = 768  # D
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    frames: int = 16  # T
    image_size: int = 224
    patch_size: int = 16
    adapter_width: int = 192  # TMA bottleneck
    adapter_heads: int = 8
    prompt_hidden: int = 8  # MCP bottleneck
    landmark_channels: int = OUT_CHANNELS
    drop_rate: float = 0.5  # before head.fc_cls; the spec gives no value, 0.5 is the usual video fine-tuning choice

    def __post_init__(self) -> None:
        problems = []
        for name in (
            "classes",
            "width",
            "depth",
            "heads",
            "frames",
            "image_size",
            "patch_size",
            "adapter_width",
            "adapter_heads",
            "prompt_hidden",
        ):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.width % self.heads:
            problems.append(f"width {self.width} is not a multiple of heads {self.heads}")
        if self.adapter_width % self.adapter_heads:
            problems.append(
                f"adapter_width {self.adapter_width} is not a multiple of adapter_heads {self.adapter_heads}"
            )
        if self.image_size % self.patch_size:
            problems.append(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.landmark_channels != OUT_CHANNELS:
            problems.append(
                f"landmark_channels must be {OUT_CHANNELS} (MobileFaceNet's conv_4), got {self.landmark_channels}"
            )
        if not 0.0 <= self.drop_rate < 1.0:
            problems.append(f"drop_rate must be in [0, 1), got {self.drop_rate}")
        if problems:
            raise ValueError("invalid S2DConfig: " + "; ".join(problems))

    @classmethod
    def full(cls, classes: int = 7) -> S2DConfig:
        """The published network: ViT-B/16 at 224, 16 frames."""
        return cls(classes=classes)

    @classmethod
    def small(cls, classes: int = 7) -> S2DConfig:
        """A few-hundred-clip, 2-core-CPU network: width 96, 3 blocks, 112 × 112 frames (a 7 × 7 grid).

        Three blocks rather than two, so that a later layer reads a prompt norm other than ``prompt_norms[0]``.
        """
        return cls(classes=classes, width=96, depth=3, heads=4, image_size=112, adapter_width=24, adapter_heads=2)

    @property
    def grid(self) -> int:
        """Patches per side, g."""
        return self.image_size // self.patch_size

    @property
    def tokens(self) -> int:
        """Patch tokens per frame, g²."""
        return self.grid**2

    @property
    def landmark_size(self) -> int:
        """Side of the MobileFaceNet input, so that its stride-8 map is g × g (112 at full size)."""
        return self.grid * STRIDE


# --- preprocessing -------------------------------------------------------------------------------------------


def pad_clip(frames: np.ndarray | torch.Tensor, length: int) -> np.ndarray | torch.Tensor:
    """(n, ...) frames -> (max(n, length), ...), repeating the last frame.

    A clip of ``length`` frames or more is returned as it is.
    """
    if len(frames) == 0:
        raise ValueError("an empty clip has no last frame to repeat")
    missing = length - len(frames)
    if missing <= 0:
        return frames
    if isinstance(frames, torch.Tensor):
        return torch.cat([frames, frames[-1:].expand(missing, *frames.shape[1:])])
    return np.concatenate([frames, np.repeat(frames[-1:], missing, axis=0)])


def preprocess_frames(frames: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """(T, H, W, 3) RGB uint8 -> (3, T, size, size) float32: bilinear resize (no crop), /255, ImageNet mean/std.

    Downsizing is antialiased, as PIL's and torchvision's resizes are; 224 × 224 face crops pass unresized to
    the full-size model.
    """
    x = frames if isinstance(frames, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(frames))
    if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != torch.uint8:
        raise ValueError(f"expected (T, H, W, 3) uint8 RGB frames, got {tuple(x.shape)} {x.dtype}")
    x = x.permute(0, 3, 1, 2).float()
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((x / 255.0 - mean) / std).transpose(0, 1).contiguous()


def preprocess_clip(frames: np.ndarray | torch.Tensor, config: S2DConfig) -> torch.Tensor:
    """(n ≤ T, H, W, 3) RGB uint8 -> (3, T, S, S): padded to T frames by repeating the last, then preprocessed."""
    if len(frames) > config.frames:
        raise ValueError(f"a clip of {len(frames)} frames is longer than {config.frames}: cut it into windows first")
    return preprocess_frames(pad_clip(frames, config.frames), config.image_size)


# --- the pieces of a prompt block ------------------------------------------------------------------------------


class TokenConv1x1(nn.Conv2d):
    """A 1×1 convolution (weight ``out × in × 1 × 1`` as saved) applied per token: (N, L, in) -> (N, L, out)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, kernel_size=1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.linear(tokens, self.weight.flatten(1), self.bias)


class Fovea(nn.Module):
    """(N, L, ch) -> (N, L, ch): per channel, softmax over the L positions of ``smooth · u``, times u."""

    def __init__(self, smooth: float = 10.0):
        super().__init__()
        self.smooth = nn.Parameter(torch.full((1,), smooth))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.smooth * u, dim=1) * u


class TemporalAdapter(nn.Module):
    """(N, T, D) -> (N, T, D): ``D_fc1``, GELU, attention over the T steps (no pre-norm, no residual), ``D_fc2``."""

    def __init__(self, width: int, adapter_width: int, heads: int):
        super().__init__()
        self.D_fc1 = nn.Linear(width, adapter_width)
        self.D_fc2 = nn.Linear(adapter_width, width)
        self.attn = Attention(adapter_width, num_heads=heads, qkv_bias=False)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.D_fc2(self.attn(self.act(self.D_fc1(x))))


class SpatialAdapter(nn.Module):
    """(N, L, D) -> (N, L, D): ``D_fc1``, GELU, ``D_fc2``."""

    def __init__(self, width: int, adapter_width: int):
        super().__init__()
        self.D_fc1 = nn.Linear(width, adapter_width)
        self.D_fc2 = nn.Linear(adapter_width, width)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.D_fc2(self.act(self.D_fc1(x)))


class TMA(nn.Module):
    """Temporal-modelling adapter: (B·T, L, D) image tokens -> (B·T, L, D); no residual inside."""

    def __init__(self, config: S2DConfig):
        super().__init__()
        self.frames = config.frames
        self.T_Adapter = TemporalAdapter(config.width, config.adapter_width, config.adapter_heads)
        self.norm = nn.LayerNorm(config.width, eps=1e-5)
        self.S_Adapter = SpatialAdapter(config.width, config.adapter_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        clips_frames, positions, width = x.shape
        clips = clips_frames // self.frames
        x = x.view(clips, self.frames, positions, width).transpose(1, 2).reshape(clips * positions, self.frames, width)
        x = self.T_Adapter(x)
        x = x.view(clips, positions, self.frames, width).transpose(1, 2).reshape(clips_frames, positions, width)
        return self.S_Adapter(self.norm(x))


class PromptBlock(nn.Module):
    """MCP and TMA of one layer: (img, lmk) normalised tokens (B·T, L, D) -> (spatial, temporal), each (B·T, L, D)."""

    def __init__(self, config: S2DConfig):
        super().__init__()
        self.conv0_0 = TokenConv1x1(config.width, config.prompt_hidden)
        self.conv0_1 = TokenConv1x1(config.width, config.prompt_hidden)
        self.conv1x1 = TokenConv1x1(config.prompt_hidden, config.width)
        self.fovea = Fovea()
        self.TMA = TMA(config)

    def mcp(self, img: torch.Tensor, lmk: torch.Tensor) -> torch.Tensor:
        """Multi-view complementary prompter: ``conv1x1(Fovea(conv0_0(img)) + conv0_1(lmk))``."""
        return self.conv1x1(self.fovea(self.conv0_0(img)) + self.conv0_1(lmk))

    def forward(self, img: torch.Tensor, lmk: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mcp(img, lmk), self.TMA(img)


class ClassifierHead(nn.Module):
    """(B, D) -> (B, C): dropout, then ``fc_cls``."""

    def __init__(self, width: int, classes: int, drop_rate: float):
        super().__init__()
        self.dropout = nn.Dropout(drop_rate)
        self.fc_cls = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_cls(self.dropout(x))


# --- the network ---------------------------------------------------------------------------------------------


class S2D(nn.Module):
    """S2D: (B, 3, T, S, S) ImageNet-normalised clips -> (B, C) logits.

    ``landmark`` is the frozen MobileFaceNet branch (a fresh, randomly initialised one when not given); it is
    kept out of ``state_dict()``, see the module docstring.
    """

    def __init__(self, config: S2DConfig, landmark: MobileFaceNet | None = None):
        super().__init__()
        self.config = config
        width, tokens = config.width, config.tokens
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens + 1, width), requires_grad=False)
        self.temporal_embedding = nn.Parameter(torch.zeros(1, config.frames, width))
        self.patch_embed = PatchEmbed(config.image_size, config.patch_size, 3, width)
        self.patch_embed_prompt = PatchEmbed(config.grid, 1, config.landmark_channels, width)
        self.prompt_norms = nn.ModuleList(nn.LayerNorm(width, eps=1e-6) for _ in range(config.depth))
        self.prompt_blocks = nn.ModuleList(PromptBlock(config) for _ in range(config.depth))
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.blocks = nn.ModuleList(
            Block(width, config.heads, mlp_ratio=config.mlp_ratio, qkv_bias=True, norm_layer=norm)
            for _ in range(config.depth)
        )
        self.ln_post = nn.LayerNorm(width, eps=1e-6)
        self.head = ClassifierHead(width, config.classes, config.drop_rate)
        self._init_weights()
        # object.__setattr__ bypasses nn.Module's registration: the branch stays out of state_dict() and parameters().
        object.__setattr__(self, "_landmark", landmark if landmark is not None else MobileFaceNet())

    def _init_weights(self) -> None:
        """ViT-style initialisation for training from scratch; published weights overwrite all of it."""
        for tensor in (self.cls_token, self.pos_embed, self.temporal_embedding):
            nn.init.trunc_normal_(tensor, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    @property
    def landmark(self) -> MobileFaceNet:
        """The frozen MobileFaceNet branch (not in ``state_dict()``)."""
        return self._landmark

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> S2D:
        # .to(), .double(), .cuda() ... all go through _apply: move the unregistered branch with the rest.
        super()._apply(fn, recurse)
        self._landmark._apply(fn, recurse)
        return self

    def _check_clips(self, clips: torch.Tensor) -> tuple[int, int]:
        c = self.config
        if clips.ndim != 5 or tuple(clips.shape[1:]) != (3, c.frames, c.image_size, c.image_size):
            expected = f"(B, 3, {c.frames}, {c.image_size}, {c.image_size})"
            raise ValueError(f"expected clips {expected}, got {tuple(clips.shape)}")
        return clips.shape[0], c.frames

    def _landmark_maps(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) -> (N, 128, g, g): resized to ``landmark_size`` (bilinear, align_corners), MobileFaceNet."""
        size = self.config.landmark_size
        frames = F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=True)
        return self._landmark(frames)

    def landmark_features(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, S, S) clips -> (B, T, 128, g, g) landmark maps, without autograd (the branch is frozen).

        Computed once per clip, they can be passed to :meth:`forward` in every training epoch.
        """
        batch, frames = self._check_clips(clips)
        size = self.config.image_size
        maps = self._landmark_maps(clips.transpose(1, 2).reshape(batch * frames, 3, size, size))
        return maps.view(batch, frames, *maps.shape[1:])

    def forward(self, clips: torch.Tensor, landmarks: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3, T, S, S) clips -> (B, C) logits; ``landmarks`` (B, T, 128, g, g) skips the landmark branch."""
        c = self.config
        batch, frames = self._check_clips(clips)
        n, width = batch * frames, c.width
        images = clips.transpose(1, 2).reshape(n, 3, c.image_size, c.image_size)  # (b t), t fastest
        if landmarks is None:
            maps = self._landmark_maps(images)
        elif tuple(landmarks.shape) != (batch, frames, c.landmark_channels, c.grid, c.grid):
            raise ValueError(
                f"expected landmarks ({batch}, {frames}, {c.landmark_channels}, {c.grid}, {c.grid}), "
                f"got {tuple(landmarks.shape)}"
            )
        else:
            maps = landmarks.reshape(n, c.landmark_channels, c.grid, c.grid)

        x = self.patch_embed(images)  # (n, g², D)
        a = self.patch_embed_prompt(maps)  # (n, g², D)
        spatial, temporal = self.prompt_blocks[0](self.prompt_norms[0](x), self.prompt_norms[0](a))
        x = x + temporal + spatial
        a = spatial

        x = torch.cat([self.cls_token.expand(n, -1, -1), x], dim=1) + self.pos_embed  # (n, g² + 1, D)
        # temporal_embedding[t] on all g² + 1 tokens of frame t
        x = x.view(batch, frames, -1, width) + self.temporal_embedding.unsqueeze(2)
        x = x.view(n, -1, width)

        for i, block in enumerate(self.blocks):
            if i >= 1:
                normed = self.prompt_norms[i - 1](x)
                spatial, temporal = self.prompt_blocks[i](normed[:, 1:], self.prompt_norms[0](a))
                a = spatial
                x = torch.cat([x[:, :1], x[:, 1:] + temporal + spatial], dim=1)
            x = block(x)

        x = self.ln_post(x)
        per_clip = x[:, 0].view(batch, frames, width).mean(dim=1)  # (B, D)
        return self.head(per_clip)

    @torch.no_grad()
    def predict_proba(self, clips: torch.Tensor, landmarks: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C) class probabilities, without autograd; call ``eval()`` first so that dropout is off."""
        return torch.softmax(self(clips, landmarks), dim=-1)
