"""Training the student: random 3 s crops, AdamW, the mini-batch loss of :mod:`liser.distill` (plain
cross-entropy on the supervised head for ``no-dstl``), and the epoch with the best validation UAR kept."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from liser.metrics import score
from liser.models.student import Student, StudentConfig
from liser.params import TrainParams
from liser.runtime import resolve_device, resolve_precision
from liser.students.batching import BatchOrder
from liser.students.crops import crop_start, pad_to, random_crop
from liser.students.distill import Objective, UnlabeledSet, batch_loss, crop_targets
from liser.students.evaluate import Windowing, utterance_logits
from liser.training import full_state, seed_everything, train_best_epoch

__all__ = ["LabeledSet", "TrainResult", "train_student", "distil_only"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabeledSet:
    utterances: Sequence[str]
    features: Sequence[np.ndarray]  # (mels, frames) each
    labels: np.ndarray

    def __post_init__(self):
        if not (len(self.utterances) == len(self.features) == len(self.labels)):
            raise ValueError("utterances, features and labels must have the same length")
        if len(self.labels) == 0:
            raise ValueError("a labeled set needs at least one utterance")


@dataclass
class TrainResult:
    model: Student  # holding the best-validation epoch's weights
    best_epoch: int
    history: pd.DataFrame  # epoch, train_loss, validation_uar, validation_war


def _unlabeled_crop(
    unlabeled: UnlabeledSet, row: int, frames: int, rng: np.random.Generator, pad_value: float
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """A random crop of an unlabeled segment and each teacher's target for it."""
    logmel = unlabeled.features[row]
    start = crop_start(logmel.shape[1], frames, rng)
    crop = pad_to(logmel[:, start : start + frames], frames, pad_value)
    midpoints = unlabeled.window_midpoints[row]
    speech = None if unlabeled.speech is None else crop_targets(unlabeled.speech[row], midpoints, start, frames)
    valid = None if unlabeled.video_valid is None else unlabeled.video_valid[row]
    video = None if unlabeled.video is None else crop_targets(unlabeled.video[row], midpoints, start, frames, valid)
    return crop, speech, video


def _stacked(targets: list[np.ndarray | None], device: torch.device) -> torch.Tensor | None:
    if not targets or targets[0] is None:
        return None
    return torch.from_numpy(np.stack(targets).astype(np.float32)).to(device)


def _epoch(
    model: Student,
    optimizer: torch.optim.Optimizer,
    labeled: LabeledSet | None,
    unlabeled: UnlabeledSet | None,
    objective: Objective,
    order: BatchOrder,
    windowing: Windowing,
    rng: np.random.Generator,
    precision: str = "float32",
) -> float:
    """One epoch of ``order``'s batches over the labeled then unlabeled items; the mean batch loss.

    With ``precision="bfloat16"`` the forward pass runs under CPU autocast; the loss is taken in float32."""
    model.train()
    n_labeled = 0 if labeled is None else len(labeled.labels)
    frames, pad = windowing.window_frames, windowing.pad_value
    losses = []
    for batch in order.epoch():
        crops, labeled_rows, labels, unlabeled_rows, speech, video, video_rows = [], [], [], [], [], [], []
        for position, item in enumerate(batch):
            if item < n_labeled:
                crops.append(random_crop(labeled.features[item], frames, rng, pad))
                labeled_rows.append(position)
                labels.append(labeled.labels[item])
            else:
                crop, speech_target, video_target = _unlabeled_crop(unlabeled, item - n_labeled, frames, rng, pad)
                crops.append(crop)
                unlabeled_rows.append(position)
                speech.append(speech_target)
                if video_target is not None:
                    video.append(video_target)
                    video_rows.append(position)
        device = next(model.parameters()).device
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16"):
            output = model(torch.from_numpy(np.stack(crops)).unsqueeze(1).to(device))
        output = output.float()
        loss = batch_loss(
            output,
            torch.tensor(labeled_rows, dtype=torch.long, device=device),
            torch.tensor(labels, dtype=torch.long, device=device),
            torch.tensor(unlabeled_rows, dtype=torch.long, device=device),
            _stacked(speech, device),
            _stacked(video, device),
            objective,
            torch.tensor(video_rows, dtype=torch.long, device=device),
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return float(np.mean(losses))


def _order(n_labeled: int, n_unlabeled: int, params: TrainParams, rng: np.random.Generator) -> BatchOrder:
    return BatchOrder(
        n_labeled, n_unlabeled, params.batch_size, rng, params.batch_composition, params.labeled_per_batch
    )


def _optimizer(model: Student, params: TrainParams) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)


def train_student(
    train: LabeledSet,
    validation: LabeledSet,
    config: StudentConfig,
    params: TrainParams,
    windowing: Windowing,
    *,
    validation_windowing: Windowing | None = None,
    unlabeled: UnlabeledSet | None = None,
    objective: Objective = Objective(),
    initial_state: dict[str, torch.Tensor] | None = None,
) -> TrainResult:
    """Train on labeled crops (and, when ``objective`` distils, unlabeled crops in the same batches);
    keep the epoch with the best validation UAR (ties keep the earlier epoch).

    ``windowing`` sets the crop length and padding; validation utterances are scored with
    ``validation_windowing`` (by default ``windowing``).

    ``initial_state`` starts from given weights instead of the seed's initialisation (two-stage training).
    """
    validation_windowing = validation_windowing or windowing
    rng = seed_everything(params.seed, params.threads)
    model = Student(config)
    if initial_state is not None:
        model.load_state_dict(initial_state)
    device = resolve_device(params.device)
    precision = resolve_precision(params.precision, device)
    model.to(device)
    optimizer = _optimizer(model, params)
    mixed_in = unlabeled if objective.distils else None
    order = _order(len(train.labels), 0 if mixed_in is None else len(mixed_in), params, rng)
    best_epoch, history = train_best_epoch(
        model,
        params.epochs,
        lambda epoch: _epoch(model, optimizer, train, mixed_in, objective, order, windowing, rng, precision),
        lambda: score(validation.labels, utterance_logits(model, validation.features, validation_windowing)),
        name="student",
    )
    return TrainResult(model=model.cpu(), best_epoch=best_epoch, history=history)


def distil_only(
    unlabeled: UnlabeledSet,
    config: StudentConfig,
    params: TrainParams,
    windowing: Windowing,
    objective: Objective,
) -> tuple[dict[str, torch.Tensor], pd.DataFrame]:
    """First stage of two-stage training: ``params.epochs`` epochs on the unlabeled items alone (there is
    no label to select an epoch with, so the last is kept); the weights and the loss per epoch."""
    if not objective.distils:
        raise ValueError("distillation alone needs a teacher with a non-zero lambda")
    rng = seed_everything(params.seed, params.threads)
    device = resolve_device(params.device)
    precision = resolve_precision(params.precision, device)
    model = Student(config).to(device)
    optimizer = _optimizer(model, params)
    order = _order(0, len(unlabeled), params, rng)
    rows = []
    for epoch in tqdm(range(1, params.epochs + 1), desc="distillation epochs", unit="epoch"):
        rows.append(
            {
                "epoch": epoch,
                "train_loss": _epoch(model, optimizer, None, unlabeled, objective, order, windowing, rng, precision),
            }
        )
        log.info("distillation epoch %d: loss %.4f", epoch, rows[-1]["train_loss"])
    return full_state(model), pd.DataFrame(rows)
