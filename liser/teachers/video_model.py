"""The video teacher's model (section 3.2): S2D for the seven FERV39k classes, built fresh or from its published
files, saved as one safetensors file and loaded again."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from liser.corpora.ferv39k import CLASSES
from liser.models.s2d import S2D, S2DConfig
from liser.models.s2d_checkpoint import load_mobilefacenet, load_s2d, load_s2d_checkpoint, save_s2d
from liser.params import VideoTeacherParams

__all__ = [
    "VIDEO_CLASSES",
    "VIDEO_TEACHER_FILE",
    "video_config",
    "check_classes",
    "build_video_teacher",
    "save_video_teacher",
    "load_video_teacher",
    "logits",
]

log = logging.getLogger(__name__)

VIDEO_CLASSES = tuple(name.lower() for name in CLASSES)  # FERV39k's, in its order: the window tables' p_<class>
VIDEO_TEACHER_FILE = "teacher.safetensors"  # the saved teacher, in stage video_teacher's folder


def video_config(params: VideoTeacherParams) -> S2DConfig:
    """The S2D of ``params.size``: the demo's small one, or the published full size."""
    return S2DConfig.small() if params.size == "small" else S2DConfig.full()


def check_classes(model: S2D) -> None:
    if model.config.classes != len(CLASSES):
        raise ValueError(f"the video teacher has {len(CLASSES)} FERV39k classes; this S2D has {model.config.classes}")


def build_video_teacher(
    config: S2DConfig,
    *,
    seed: int,
    checkpoint: str | Path | None = None,
    mobilefacenet: str | Path | None = None,
    allow_missing: Sequence[str] = (),
) -> S2D:
    """S2D of ``config`` for the seven FERV39k classes, its fresh weights drawn from ``seed``.

    ``checkpoint``, a published S2D file (``cyinen/S2D``), is loaded strictly (``allow_missing``: patterns of keys
    the file may lack, see :func:`load_s2d_checkpoint`); ``mobilefacenet``, the landmark branch's published file.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = S2D(config)
    check_classes(model)
    if mobilefacenet is not None:
        load_mobilefacenet(mobilefacenet, model.landmark)
    if checkpoint is not None:
        info = load_s2d_checkpoint(checkpoint, model, allow_missing)
        log.info("video teacher: %s checkpoint %s (epoch %s)", info.layout, checkpoint, info.epoch)
    return model


def save_video_teacher(path: str | Path, model: S2D, **info: object) -> None:
    """One safetensors file: S2D, its landmark branch, the configuration, the class names and ``info``."""
    check_classes(model)
    save_s2d(path, model, classes=list(CLASSES), **info)


def load_video_teacher(path: str | Path) -> tuple[S2D, dict]:
    """A teacher written by :func:`save_video_teacher`, in eval mode, and its recorded info."""
    model, classes, info = load_s2d(path)
    if classes != list(CLASSES):
        raise ValueError(f"{path}: classes {classes} are not the FERV39k classes {list(CLASSES)}")
    return model, info


def logits(model: S2D, clips: torch.Tensor, landmarks: torch.Tensor | None = None) -> torch.Tensor:
    """Float32 logits; half precision under autocast on a GPU, float32 on a CPU."""
    if clips.device.type == "cuda":
        with torch.autocast(device_type="cuda", dtype=torch.float16):
            return model(clips, landmarks).float()
    return model(clips, landmarks)
