"""The speech teacher on whole labeled utterances: their logits, and UAR / WAR (each fold's validation while it
trains, and its test speakers after)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from liser.metrics import Scores, score
from liser.runtime import resolve_device
from liser.teachers.speech_input import padded_batch, waveform_input
from liser.teachers.speech_model import logits

__all__ = ["teacher_logits", "evaluate_speech_teacher"]


@torch.inference_mode()
def teacher_logits(
    model: torch.nn.Module,
    waveforms: Sequence[np.ndarray],
    batch_size: int,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """(N, K) logits of whole utterances.

    Utterances are batched in order of length, so padding stays small; the attention mask, for a model that takes
    one, keeps it out of attention and pooling.
    """
    device = resolve_device(device)
    model.eval().to(device)
    convention = waveform_input(model)
    order = np.argsort([len(w) for w in waveforms], kind="stable")
    scores = np.zeros((len(waveforms), model.config.num_labels), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch, mask = padded_batch([waveforms[i] for i in rows], convention, device)
        scores[rows] = logits(model, batch, mask).cpu().numpy()
    return scores


def evaluate_speech_teacher(
    model: torch.nn.Module,
    items: Sequence[tuple[np.ndarray, int]],
    batch_size: int,
    device: str | torch.device | None = None,
) -> tuple[Scores, np.ndarray]:
    """UAR / WAR (and confusion) of whole utterances, and their logits."""
    scores = teacher_logits(model, [w for w, _ in items], batch_size, device)
    return score(np.array([label for _, label in items]), scores), scores
