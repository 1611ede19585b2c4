"""Whole-utterance prediction: average the supervised head's logits over sliding 3 s windows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from liser.features import LogMel
from liser.metrics import Scores, score
from liser.models.student import Student
from liser.params import Params
from liser.students.crops import sliding_windows

__all__ = ["Windowing", "windowing", "utterance_logits", "Scores", "score"]


@dataclass(frozen=True)
class Windowing:
    window_frames: int  # 94 for 3 s
    stride_frames: float  # 3.125 for 0.1 s at a 32 ms hop
    pad_value: float  # log-Mel of silence
    batch_size: int = 64


def windowing(params: Params, stride_s: float | None = None) -> Windowing:
    """Sliding windows at ``stride_s`` (by default ``evaluate.stride_s``, the test stride)."""
    features = params.features
    return Windowing(
        window_frames=features.crop_frames,
        stride_frames=(params.evaluate.stride_s if stride_s is None else stride_s) / features.hop_s,
        pad_value=LogMel.silence_of(features),
        batch_size=params.evaluate.eval_batch_size,
    )


@torch.inference_mode()
def utterance_logits(model: Student, utterances: Sequence[np.ndarray], windowing: Windowing) -> np.ndarray:
    """(N, K_S) logits, each the mean over that utterance's windows."""
    model.eval()
    device = next(model.parameters()).device if isinstance(model, torch.nn.Module) else torch.device("cpu")
    windows = [
        sliding_windows(u, windowing.window_frames, windowing.stride_frames, windowing.pad_value) for u in utterances
    ]
    owner = np.concatenate([np.full(len(w), i) for i, w in enumerate(windows)])
    stacked = np.concatenate(windows)
    logits = []
    for start in range(0, len(stacked), windowing.batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(stacked[start : start + windowing.batch_size])).unsqueeze(1)
        logits.append(model.classify(batch.to(device)).float().cpu().numpy())
    window_logits = np.concatenate(logits)
    totals = np.zeros((len(utterances), window_logits.shape[1]), dtype=np.float64)
    np.add.at(totals, owner, window_logits)
    return (totals / np.bincount(owner, minlength=len(utterances))[:, None]).astype(np.float32)
