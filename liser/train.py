"""Supervised training of the student (the paper's ``no-dstl``): random 3 s crops, AdamW,
cross-entropy on the supervised head, and the epoch with the best validation UAR kept."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F
from tqdm import tqdm

from .evaluate import Windowing, score, utterance_logits
from .models.student import Student, StudentConfig
from .params import TrainParams
from .runtime import keep_freed_buffers
from .segments import random_crop

__all__ = ["LabeledSet", "TrainResult", "seed_everything", "shuffled_batches", "train_supervised"]

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


def train_supervised(
    train: LabeledSet,
    validation: LabeledSet,
    config: StudentConfig,
    params: TrainParams,
    windowing: Windowing,
) -> TrainResult:
    rng = seed_everything(params.seed, params.threads)
    model = Student(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    best_uar, best_epoch, best_state, rows = -1.0, 0, None, []
    epochs = tqdm(range(1, params.epochs + 1), desc="epochs", unit="epoch")
    for epoch in epochs:
        model.train()
        losses = []
        for batch in shuffled_batches(len(train.labels), params.batch_size, rng):
            crops = np.stack([random_crop(train.features[i], windowing.window_frames, rng, windowing.pad_value) for i in batch])
            logits = model.classify(torch.from_numpy(crops).unsqueeze(1))
            loss = F.cross_entropy(logits, torch.from_numpy(train.labels[batch]).long())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        scores = score(validation.labels, utterance_logits(model, validation.features, windowing))
        rows.append({"epoch": epoch, "train_loss": float(np.mean(losses)),
                     "validation_uar": scores.uar, "validation_war": scores.war})  # fmt: skip
        if scores.uar > best_uar:
            best_uar, best_epoch, best_state = scores.uar, epoch, copy.deepcopy(model.state_dict())
        epochs.set_postfix(loss=f"{rows[-1]['train_loss']:.3f}", val_uar=f"{scores.uar:.3f}", best=best_epoch)
        log.info("epoch %d: loss %.4f, validation UAR %.4f", epoch, rows[-1]["train_loss"], scores.uar)
    model.load_state_dict(best_state)
    return TrainResult(model=model, best_epoch=best_epoch, history=pd.DataFrame(rows))
