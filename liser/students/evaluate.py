"""Whole-utterance prediction: average the supervised head's logits over sliding 3 s windows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from liser.features import LogMel
from liser.metrics import Scores, score
from liser.models.student import Student
from liser.params import EvaluateParams, FeatureParams
from liser.students.crops import pad_to, window_starts

__all__ = ["Windowing", "windowing", "utterance_logits", "Scores", "score"]


@dataclass(frozen=True)
class Windowing:
    window_frames: int  # 94 for 3 s
    stride_frames: float  # 3.125 for 0.1 s at a 32 ms hop
    pad_value: float  # log-Mel of silence
    batch_size: int = 64


def windowing(features: FeatureParams, evaluate: EvaluateParams, stride_s: float | None = None) -> Windowing:
    """Sliding windows at ``stride_s`` (by default ``evaluate.stride_s``, the test stride)."""
    return Windowing(
        window_frames=features.crop_frames,
        stride_frames=(evaluate.stride_s if stride_s is None else stride_s) / features.hop_s,
        pad_value=LogMel.silence_of(features),
        batch_size=evaluate.eval_batch_size,
    )


@torch.inference_mode()
def utterance_logits(model: Student, utterances: Sequence[np.ndarray], windowing: Windowing) -> np.ndarray:
    """(N, K_S) logits, each the mean over that utterance's windows."""
    model.eval()
    device = next(model.parameters()).device if isinstance(model, torch.nn.Module) else torch.device("cpu")
    padded = [pad_to(u, windowing.window_frames, windowing.pad_value) for u in utterances]
    spans = [
        (i, start)
        for i, signal in enumerate(padded)
        for start in window_starts(signal.shape[1], windowing.window_frames, windowing.stride_frames)
    ]
    owner = np.array([i for i, _ in spans])
    # Windows are built a batch at a time into one reused buffer, and logits written into one array: a long file
    # then needs no more memory than a short one, whatever the allocator keeps.
    mels = padded[0].shape[0]
    buffer = np.empty((min(windowing.batch_size, len(spans)), mels, windowing.window_frames), dtype=np.float32)
    window_logits = None
    for first in range(0, len(spans), windowing.batch_size):
        chunk = spans[first : first + windowing.batch_size]
        batch = buffer[: len(chunk)]
        for row, (i, start) in enumerate(chunk):
            batch[row] = padded[i][:, start : start + windowing.window_frames]
        logits = model.classify(torch.from_numpy(batch).unsqueeze(1).to(device)).float().cpu().numpy()
        if window_logits is None:
            window_logits = np.empty((len(spans), logits.shape[1]), dtype=np.float32)
        window_logits[first : first + len(chunk)] = logits
    totals = np.zeros((len(utterances), window_logits.shape[1]), dtype=np.float64)
    np.add.at(totals, owner, window_logits)
    return (totals / np.bincount(owner, minlength=len(utterances))[:, None]).astype(np.float32)
