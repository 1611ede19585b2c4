"""Training S2D on a FERV39k-layout corpus (the demo's video teacher, or one trained where the published weights
are not used): a random 16-frame span of each training clip per epoch (a shorter clip repeats its last frame),
AdamW with a linear warm-up and a cosine decay, cross-entropy, gradient clipping, and the epoch with the best UAR
on clips held out from the training split kept.  On a CPU, the same seed and thread count repeat a run exactly.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from liser.logs import UserError
from liser.metrics import Scores, score
from liser.models.s2d import S2D
from liser.params import VideoTeacherParams
from liser.runtime import resolve_device
from liser.teachers.video_clips import ClipSource, clip_probabilities
from liser.teachers.video_model import build_video_teacher, check_classes, video_config
from liser.training import seed_everything, shuffled_batches, train_best_epoch

__all__ = ["TooFewClips", "VideoTeacherResult", "train_video_teacher"]

log = logging.getLogger(__name__)


class TooFewClips(UserError, ValueError):
    """A FERV39k-layout corpus with too few training clips to train and select the video teacher."""


def _validation_mask(train: pd.DataFrame, fraction: float, seed: int) -> np.ndarray:
    """Which training clips select the epoch: about ``fraction`` of each class's clips (none of a class of one)."""
    rng = np.random.default_rng([seed, 1])
    held_out = np.zeros(len(train), dtype=bool)
    for label in sorted(train["label"].unique()):
        members = np.flatnonzero(train["label"].to_numpy() == label)
        if len(members) >= 2:
            wanted = min(len(members) - 1, max(1, round(fraction * len(members))))
            held_out[rng.permutation(members)[:wanted]] = True
    if not held_out.any():
        raise TooFewClips("too few training clips to hold any out for validation (each class needs two)")
    return held_out


def _warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """Learning-rate factor per step: linear from near 0 to 1 over ``warmup_steps``, then a cosine down to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


@dataclass
class VideoTeacherResult:
    model: S2D  # holding the best-validation epoch's weights, in eval mode, on the CPU
    best_epoch: int
    history: pd.DataFrame  # epoch, train_loss, validation_uar, validation_war
    validation_clips: list[str]  # the training clips that selected the epoch


def train_video_teacher(
    corpus_table: pd.DataFrame,
    params: VideoTeacherParams,
    *,
    model: S2D | None = None,
    device: str | torch.device | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> VideoTeacherResult:
    """Fine-tune S2D on the ``train`` clips of ``corpus_table`` (a FERV39k-layout clip table) as ``params`` say.

    ``model`` (e.g. from :func:`build_video_teacher` with the published weights) is trained in place; without it a
    fresh S2D of ``params.size`` is built from ``params.seed``.  About ``params.validation_fraction`` of each
    class's training clips are held out to pick the epoch with the best UAR (ties keep the earlier epoch).
    Training runs in float32, on a GPU too.

    ``params.preload`` keeps every training clip, resized, and its landmark maps in memory (about 62 KB a frame for
    the small model, 250 KB at full size): fast, and right for the demo.  Without it each batch is read from disk
    and the landmark branch runs in every forward pass, so memory stays flat on a corpus of FERV39k's size.
    ``on_epoch``: as in :func:`liser.training.train_best_epoch`.
    """
    rng = seed_everything(params.seed, params.threads)
    if model is None:
        model = build_video_teacher(video_config(params), seed=params.seed)
    check_classes(model)
    frames = model.config.frames
    device = resolve_device(device)
    train = corpus_table[corpus_table["split"] == "train"].reset_index(drop=True)
    if train.empty:
        raise TooFewClips("the corpus table has no train clips")
    held_out = _validation_mask(train, params.validation_fraction, params.seed)
    model.to(device)
    fitting = ClipSource(model, train[~held_out], "training", params.preload, device)
    validation = ClipSource(model, train[held_out], "validation", params.preload, device)
    log.info("video teacher: %d training clips, %d validation clips", len(fitting), len(validation))

    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=params.lr, weight_decay=params.weight_decay)
    steps_per_epoch = -(-len(fitting) // params.batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        _warmup_cosine(round(params.warmup_epochs * steps_per_epoch), params.epochs * steps_per_epoch),
    )

    def train_epoch(epoch: int) -> float:
        model.train()
        losses = []
        for batch in shuffled_batches(len(fitting), params.batch_size, rng):
            # a random T-frame span of each clip; a clip of T frames or fewer is taken whole (and padded)
            spans = [(int(i), int(rng.integers(0, max(1, fitting.lengths[i] - frames + 1)))) for i in batch]
            clips, maps = fitting.batch(spans, device)
            loss = F.cross_entropy(model(clips, maps), torch.from_numpy(fitting.labels[batch]).to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if params.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), params.max_grad_norm)
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        return float(np.mean(losses))

    def validate() -> Scores:
        return score(validation.labels, clip_probabilities(model, validation, params.eval_batch_size, device))

    best_epoch, history = train_best_epoch(
        model, params.epochs, train_epoch, validate, name="video teacher", on_epoch=on_epoch
    )
    model.to("cpu")
    model.eval()
    return VideoTeacherResult(model, best_epoch, history, list(validation.clips))
