"""What every training loop of the project shares (the student's, the speech teacher's and the video
teacher's): seeding, shuffled mini-batches, and epochs that keep the weights of the epoch with the best
validation UAR (ties keep the earlier epoch)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from liser.runtime import keep_freed_buffers

__all__ = [
    "seed_everything",
    "shuffled_batches",
    "ValidationScores",
    "full_state",
    "trainable_state",
    "train_best_epoch",
]

log = logging.getLogger(__name__)


def seed_everything(seed: int, threads: int) -> np.random.Generator:
    """Seeds torch and returns a seeded NumPy generator; with the same thread count a CPU run repeats exactly."""
    keep_freed_buffers()
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    return np.random.default_rng(seed)


def shuffled_batches(n_items: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Indices of one epoch in a fresh random order, ``batch_size`` at a time (the last batch may be smaller)."""
    order = rng.permutation(n_items)
    for start in range(0, n_items, batch_size):
        yield order[start : start + batch_size]


class ValidationScores(Protocol):
    uar: float
    war: float


def full_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of every weight and buffer."""
    return {name: value.detach().to("cpu", copy=True) for name, value in model.state_dict().items()}


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the weights that train (e.g. LoRA and a head on a frozen base)."""
    return {name: p.detach().to("cpu", copy=True) for name, p in model.named_parameters() if p.requires_grad}


def _restore(model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    with torch.no_grad():
        current = model.state_dict()
        for name, value in state.items():
            current[name].copy_(value)


def train_best_epoch(
    model: torch.nn.Module,
    epochs: int,
    train_epoch: Callable[[int], float],
    validate: Callable[[], ValidationScores],
    *,
    keep: Callable[[torch.nn.Module], dict[str, torch.Tensor]] = full_state,
    name: str = "training",
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> tuple[int, pd.DataFrame]:
    """Run ``epochs`` epochs of ``train_epoch(epoch) -> mean loss``, score ``validate()`` after each, and leave
    ``model`` holding the weights (``keep(model)``) of the epoch with the best validation UAR.  ``on_epoch`` gets
    each epoch's history row as soon as it is scored (e.g. :meth:`liser.tracking.TrainingCurves.logger`).

    Returns that epoch and the history: epoch, train_loss, validation_uar, validation_war.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    best_uar, best_epoch, best_state, rows = -1.0, 0, None, []
    progress = tqdm(range(1, epochs + 1), desc=name, unit="epoch")
    for epoch in progress:
        train_loss = train_epoch(epoch)
        scores = validate()
        rows.append(
            {"epoch": epoch, "train_loss": train_loss, "validation_uar": scores.uar, "validation_war": scores.war}
        )
        if on_epoch is not None:
            on_epoch(dict(rows[-1]))
        if scores.uar > best_uar:
            best_uar, best_epoch, best_state = scores.uar, epoch, keep(model)
        progress.set_postfix(loss=f"{train_loss:.3f}", val_uar=f"{scores.uar:.3f}", best=best_epoch)
        log.info("%s epoch %d: loss %.4f, validation UAR %.4f", name, epoch, train_loss, scores.uar)
    _restore(model, best_state)
    return best_epoch, pd.DataFrame(rows)
