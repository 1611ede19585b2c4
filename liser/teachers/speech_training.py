"""Fine-tuning the speech teacher on a fold's labeled utterances: which speakers train it and which pick its epoch
(:func:`teacher_split`), and the training loop (:func:`train_speech_teacher`).

A run repeats exactly on a CPU with the same seed and thread count: torch is seeded, crops and batches come from
a NumPy generator of the seed, and the time masks transformers' encoders draw for SpecAugment while training come
from NumPy's global generator (``_compute_mask_indices``), which is seeded for the run and put back after it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from peft import PeftModel
from torch.nn import functional as F

from liser.logs import UserError
from liser.metrics import Scores
from liser.params import SpeechTeacherParams
from liser.runtime import resolve_device
from liser.teachers.speech_evaluation import evaluate_speech_teacher
from liser.teachers.speech_input import SAMPLE_RATE, padded_batch, random_crop, waveform_input
from liser.training import shuffled_batches, train_best_epoch, trainable_state

__all__ = ["TooFewUtterances", "teacher_split", "SpeechTeacherResult", "train_speech_teacher"]


class TooFewUtterances(UserError, ValueError):
    """A fold whose labeled utterances cannot train and select a teacher."""


def teacher_split(
    train_utterances: pd.DataFrame,
    fraction: float,
    seed: int,
    *,
    folds: pd.DataFrame | None = None,
    fold: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a fold's training utterances by speaker into the teacher's training and selection sets.

    About ``1 - fraction`` of the speakers (at least one, never all) select the epoch; each
    gender gives its share of them, so both parts stay gender-balanced where the speakers
    allow.  Given the fold table (``folds``, ``fold``), every speaker must be one of the
    fold's non-test speakers.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    if folds is not None:
        _check_no_test_speakers(train_utterances, folds, fold)
    speakers = train_utterances.drop_duplicates("speaker")
    if len(speakers) < 2:
        raise TooFewUtterances(f"{len(speakers)} speaker(s) cannot be split into training and selection speakers")
    genders = speakers["gender"] if "gender" in speakers else pd.Series("any", index=speakers.index)
    by_gender = {g: sorted(map(str, speakers.loc[genders == g, "speaker"])) for g in sorted(genders.unique())}
    wanted = min(len(speakers) - 1, max(1, math.floor((1 - fraction) * len(speakers) + 0.5)))
    shares = {g: wanted * len(members) / len(speakers) for g, members in by_gender.items()}
    counts = {g: math.floor(share) for g, share in shares.items()}
    by_remainder = sorted(by_gender, key=lambda g: (-(shares[g] - counts[g]), g))
    for g in by_remainder[: wanted - sum(counts.values())]:
        counts[g] += 1
    rng = np.random.default_rng(seed)
    selection = {s for g, members in by_gender.items() for s in rng.permutation(members)[: counts[g]]}
    held_out = train_utterances["speaker"].astype(str).isin(selection)
    return train_utterances[~held_out].reset_index(drop=True), train_utterances[held_out].reset_index(drop=True)


def _check_no_test_speakers(utterances: pd.DataFrame, folds: pd.DataFrame, fold: int | None) -> None:
    if fold is None:
        raise ValueError("checking against the fold table needs the fold number")
    members = folds.loc[folds["fold"] == fold]
    if members.empty:
        raise ValueError(f"the fold table has no fold {fold}")
    roles = dict(zip(members["speaker"].astype(str), members["role"]))
    speakers = set(utterances["speaker"].astype(str))
    unknown = sorted(speakers - set(roles))
    tested = sorted(s for s in speakers & set(roles) if roles[s] == "test")
    if unknown:
        raise ValueError(f"fold {fold}: speakers not in the fold table: {unknown}")
    if tested:
        raise ValueError(f"fold {fold}: test speakers must not train or select the teacher: {tested}")


@contextlib.contextmanager
def _numpy_global_generator(seed: int) -> Iterator[None]:
    """NumPy's global generator seeded with ``seed`` inside, and as it was outside."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


@dataclass
class SpeechTeacherResult:
    model: PeftModel  # holding the best-selection epoch's weights, in eval mode
    best_epoch: int
    history: pd.DataFrame  # epoch, train_loss, validation_uar, validation_war


def train_speech_teacher(
    train_items: Sequence[tuple[np.ndarray, int]],
    validation_items: Sequence[tuple[np.ndarray, int]],
    model: PeftModel,
    params: SpeechTeacherParams,
    *,
    seed: int,
    device: str | torch.device | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> SpeechTeacherResult:
    """Fine-tune ``model``'s trainable weights for ``params.epochs`` with AdamW (``params.lr``,
    ``params.weight_decay``) and cross-entropy on random crops of at most ``params.max_seconds`` (shorter
    utterances are zero-padded, masked where the model takes a mask, each crop normalised where the input
    convention says), ``params.batch_size`` at a time; keep the epoch with the best UAR on ``validation_items``
    (whole utterances; ties keep the earlier epoch).  ``on_epoch``: as in :func:`liser.training.train_best_epoch`."""
    if not train_items or not validation_items:
        raise TooFewUtterances("the teacher needs training and validation utterances")
    device = resolve_device(device)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model.to(device)
    convention = waveform_input(model)
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=params.lr, weight_decay=params.weight_decay)
    crop = round(params.max_seconds * SAMPLE_RATE)
    labels = np.array([label for _, label in train_items], dtype=np.int64)

    def train_epoch(epoch: int) -> float:
        model.train()
        losses = []
        for batch in shuffled_batches(len(train_items), params.batch_size, rng):
            crops = [random_crop(train_items[i][0], crop, rng) for i in batch]
            waveforms, mask = padded_batch(crops, convention, device)
            scores = model(input_values=waveforms, attention_mask=mask).logits
            loss = F.cross_entropy(scores, torch.from_numpy(labels[batch]).to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return float(np.mean(losses))

    def validate() -> Scores:
        return evaluate_speech_teacher(model, validation_items, params.eval_batch_size, device)[0]

    with _numpy_global_generator(seed):
        best_epoch, history = train_best_epoch(
            model, params.epochs, train_epoch, validate, keep=trainable_state, name="speech teacher", on_epoch=on_epoch
        )
    model.eval()
    return SpeechTeacherResult(model=model, best_epoch=best_epoch, history=history)
