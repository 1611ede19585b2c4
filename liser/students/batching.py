"""Training data held as tensors on the training device, and mini-batches drawn from it with no per-item Python.

Log-Mels of many utterances (or segments) live in one flat ``(mels, total frames)`` tensor with each item's offset
and length; the window softmaxes of the unlabeled segments in one padded ``(segments, windows, classes)`` tensor
with the windows' midpoints.  A batch's random 3 s crops, the silence padding of short items and each teacher's
target (the mean softmax of the windows a crop covers, :func:`liser.students.distill.crop_targets`) are then a few
tensor gathers.

:class:`BatchPlan` draws a batch exactly as the item-by-item loop it replaces did: the epoch's order from
:func:`liser.training.shuffled_batches` over labeled then unlabeled items, and, in batch order, one uniform crop
start for each item longer than a crop (NumPy draws an array of bounds as it draws them one by one), so the same
generator gives the same crops and targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from liser.students.distill import UnlabeledSet

__all__ = ["FeatureBank", "WindowTargets", "window_targets", "BatchPlan", "plan_batch"]


class FeatureBank:
    """Log-Mels ``(mels, frames_i)`` of many items in one flat tensor on ``device``."""

    def __init__(self, features: Sequence[np.ndarray], device: torch.device | str = "cpu"):
        if not features:
            raise ValueError("a feature bank needs at least one item")
        lengths = np.array([f.shape[1] for f in features], dtype=np.int64)
        self.lengths = lengths  # on the host: crop starts are drawn there
        self.lengths_on_device = torch.from_numpy(lengths).to(device)
        self.offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(lengths)[:-1]])).to(device)
        self.flat = torch.from_numpy(np.concatenate(features, axis=1).astype(np.float32)).to(device)
        self.device = self.flat.device

    def __len__(self) -> int:
        return len(self.lengths)

    def crops(self, rows: torch.Tensor, starts: torch.Tensor, frames: int, pad_value: float) -> torch.Tensor:
        """``(len(rows), mels, frames)``: item ``rows[i]`` from frame ``starts[i]``, padded past its end."""
        steps = torch.arange(frames, device=self.device)
        positions = starts[:, None] + steps[None, :]  # (B, frames) within each item
        inside = positions < self.lengths_on_device[rows][:, None]
        columns = (self.offsets[rows][:, None] + positions).clamp(max=self.flat.shape[1] - 1)
        crops = self.flat[:, columns].permute(1, 0, 2)  # (B, mels, frames)
        return torch.where(inside[:, None, :], crops, torch.full_like(crops, pad_value))


class WindowTargets:
    """One teacher's window softmaxes of the unlabeled segments, padded to the longest segment."""

    def __init__(
        self, probabilities: Sequence[np.ndarray], midpoints: Sequence[np.ndarray], device: torch.device | str = "cpu"
    ):
        longest = max(len(m) for m in midpoints)
        classes = probabilities[0].shape[1]
        padded = np.zeros((len(probabilities), longest, classes), dtype=np.float32)
        centres = np.full((len(midpoints), longest), np.inf)
        for row, (p, m) in enumerate(zip(probabilities, midpoints)):
            padded[row, : len(p)] = p
            centres[row, : len(m)] = m
        self.probabilities = torch.from_numpy(padded).to(device)
        self.midpoints = torch.from_numpy(centres).to(device)  # float64: the comparisons match NumPy's

    def targets(self, rows: torch.Tensor, starts: torch.Tensor, frames: int) -> torch.Tensor:
        """``(len(rows), classes)``: the mean softmax of the windows whose midpoint lies in each crop; a crop
        that covers no midpoint takes the nearest window."""
        midpoints = self.midpoints[rows]  # (B, W)
        start = starts[:, None].to(midpoints.dtype)
        covered = (midpoints >= start) & (midpoints < start + frames)
        nearest = torch.argmin((midpoints - (start + frames / 2)).abs(), dim=1)
        fallback = torch.zeros_like(covered).scatter_(1, nearest[:, None], True)
        covered = torch.where(covered.any(dim=1, keepdim=True), covered, fallback)
        weights = covered.to(self.probabilities.dtype)
        summed = (self.probabilities[rows] * weights[..., None]).sum(dim=1)
        return summed / weights.sum(dim=1, keepdim=True)


def window_targets(unlabeled: UnlabeledSet, device: torch.device | str) -> dict[str, WindowTargets | None]:
    """Each teacher's :class:`WindowTargets` of an unlabeled set (None for a teacher it does not have)."""
    return {
        name: None if table is None else WindowTargets(table, unlabeled.window_midpoints, device)
        for name, table in (("speech", unlabeled.speech), ("video", unlabeled.video))
    }


@dataclass(frozen=True)
class BatchPlan:
    """Which items one batch holds and where each crop starts, in batch order."""

    labeled: np.ndarray  # (B,) bool: the item is labeled (else unlabeled)
    items: np.ndarray  # (B,) index into the labeled items, or into the unlabeled items
    starts: np.ndarray  # (B,) first feature frame of each crop

    def __len__(self) -> int:
        return len(self.items)


def plan_batch(
    batch: np.ndarray,
    n_labeled: int,
    labeled_lengths: np.ndarray,
    unlabeled_lengths: np.ndarray | None,
    frames: int,
    rng: np.random.Generator,
) -> BatchPlan:
    """Crop starts of ``batch`` (indices over labeled then unlabeled items), drawn from ``rng`` in batch order."""
    labeled = batch < n_labeled
    items = np.where(labeled, batch, batch - n_labeled)
    lengths = np.empty(len(batch), dtype=np.int64)
    lengths[labeled] = labeled_lengths[items[labeled]]
    if not labeled.all():
        lengths[~labeled] = unlabeled_lengths[items[~labeled]]
    extra = lengths - frames
    starts = np.zeros(len(batch), dtype=np.int64)
    longer = extra > 0
    if longer.any():
        starts[longer] = rng.integers(0, extra[longer] + 1)
    return BatchPlan(labeled, items, starts)
