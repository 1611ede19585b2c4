"""The plain one-student training loop, written for clarity: the oracle the population engine is held to.

The pipeline trains students only through :func:`liser.students.population.train_population`.  This loop does the
same, one student, item by item, with PyTorch's own modules: the batches of
:class:`liser.students.batching.BatchOrder`, one random 3 s crop per item drawn from the student's generator in
batch order, each teacher's target the mean softmax of the windows whose midpoint the crop covers
(:func:`crop_targets`), the loss of eq. (4)/(5) (:func:`batch_loss`), AdamW, and the epoch with the best
validation UAR.  The tests compare the engine with it step by step and to the end.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F
from tqdm import tqdm

from liser.metrics import score
from liser.models.student import Student, StudentConfig, StudentOutput
from liser.params import TrainParams
from liser.runtime import resolve_device, resolve_precision
from liser.students.batching import BatchOrder
from liser.students.crops import crop_start, pad_to, random_crop
from liser.students.data import LabeledSet, UnlabeledSet
from liser.students.evaluate import Windowing, utterance_logits
from liser.students.objective import Objective
from liser.training import full_state, seed_everything, train_best_epoch

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    model: Student  # holding the best-validation epoch's weights
    best_epoch: int
    history: pd.DataFrame  # epoch, train_loss, validation_uar, validation_war


def crop_targets(
    probabilities: np.ndarray, midpoints: np.ndarray, start: int, frames: int, valid: np.ndarray | None = None
) -> np.ndarray | None:
    """Mean softmax of the windows whose midpoint lies in feature frames [start, start + frames) and that are
    ``valid``; None when none of them is."""
    covered = (midpoints >= start) & (midpoints < start + frames)
    if not covered.any():
        covered = np.zeros(len(midpoints), dtype=bool)
        covered[np.argmin(np.abs(midpoints - (start + frames / 2)))] = True
    if valid is not None:
        covered &= valid
        if not covered.any():
            return None
    return probabilities[covered].mean(axis=0)


def distillation_term(logits: torch.Tensor, targets: torch.Tensor, objective: Objective) -> torch.Tensor:
    """(N,) loss of each unlabeled item for one teacher: MAE of softmaxes, or soft-target cross-entropy."""
    if objective.distill_loss == "ce":
        return -(targets * F.log_softmax(logits, dim=-1)).sum(dim=-1)
    errors = (torch.softmax(logits, dim=-1) - targets).abs()
    return errors.mean(dim=-1) if objective.class_reduction == "mean" else errors.sum(dim=-1)


def batch_loss(
    output: StudentOutput,
    labeled: torch.Tensor,
    labels: torch.Tensor,
    unlabeled: torch.Tensor,
    speech_targets: torch.Tensor | None,
    video_targets: torch.Tensor | None,
    objective: Objective,
    video_rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. (4) (eq. (5) with ``objective.confidence``) for one mini-batch.

    ``labeled`` and ``unlabeled`` index the batch rows of ``output``; the speech targets are in the order of
    ``unlabeled``, the video targets in the order of ``video_rows`` (by default ``unlabeled``: the unlabeled
    items that have a video target).  The sum over all terms is divided by the number of items, labeled and
    unlabeled.
    """
    total = F.cross_entropy(output.sup[labeled], labels, reduction="sum") if len(labeled) else output.sup.sum() * 0
    video_rows = unlabeled if video_rows is None else video_rows
    terms = (
        (objective.lambda_sd, output.sd, speech_targets, unlabeled),
        (objective.lambda_vd, output.vd, video_targets, video_rows),
    )
    for weight, logits, targets, rows in terms:
        if weight == 0 or len(rows) == 0:
            continue
        if targets is None:
            raise ValueError("a teacher with a non-zero lambda needs targets")
        losses = distillation_term(logits[rows], targets, objective)
        if objective.confidence:
            losses = losses * targets.max(dim=-1).values
        total = total + weight * losses.sum()
    return total / (len(labeled) + len(unlabeled))


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


def _order(
    n_labeled: int,
    n_unlabeled: int,
    params: TrainParams,
    rng: np.random.Generator,
    batches_per_epoch: int | None = None,
) -> BatchOrder:
    return BatchOrder(
        n_labeled,
        n_unlabeled,
        params.batch_size,
        rng,
        params.batch_composition,
        params.labeled_per_batch,
        batches_per_epoch,
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
    batches_per_epoch: int | None = None,
    seed: int = 0,
) -> TrainResult:
    """Train on labeled crops (and, when ``objective`` distils, unlabeled crops in the same batches);
    keep the epoch with the best validation UAR (ties keep the earlier epoch).

    ``windowing`` sets the crop length and padding; validation utterances are scored with
    ``validation_windowing`` (by default ``windowing``).

    ``initial_state`` starts from given weights instead of the seed's initialisation (two-stage training).
    """
    validation_windowing = validation_windowing or windowing
    rng = seed_everything(seed, params.threads)
    model = Student(config)
    if initial_state is not None:
        model.load_state_dict(initial_state)
    device = resolve_device(params.device)
    precision = resolve_precision(params.precision, device)
    model.to(device)
    optimizer = _optimizer(model, params)
    mixed_in = unlabeled if objective.distils else None
    order = _order(len(train.labels), 0 if mixed_in is None else len(mixed_in), params, rng, batches_per_epoch)
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
    seed: int = 0,
) -> tuple[dict[str, torch.Tensor], pd.DataFrame]:
    """First stage of two-stage training: ``params.epochs`` epochs on the unlabeled items alone (there is
    no label to select an epoch with, so the last is kept); the weights and the loss per epoch."""
    if not objective.distils:
        raise ValueError("distillation alone needs a teacher with a non-zero lambda")
    rng = seed_everything(seed, params.threads)
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
