"""Training data held as tensors on the training device, and mini-batches drawn from it with no per-item Python.

Log-Mels of many utterances (or segments) live in one flat ``(mels, total frames)`` tensor with each item's offset
and length; the window softmaxes of the unlabeled segments in one padded ``(segments, windows, classes)`` tensor
with the windows' midpoints.  A batch's random 3 s crops, the silence padding of short items and each teacher's
target (the mean softmax of the windows a crop covers, :mod:`liser.students.data`) are then a few
tensor gathers.  Unlabeled log-Mels too large to hold (VoxCeleb2's are about 70 GB) stay in their feature store:
a :class:`StreamedBank` reads each drawn crop's frames and gives the same crops.

:class:`BatchOrder` decides which items each batch of an epoch holds (``train.batch_composition``): ``pooled``
shuffles labeled and unlabeled items together, so a distilled run takes as many more steps as it has unlabeled
items; ``fixed`` puts ``labeled_per_batch`` labeled items in every batch and fills it with unlabeled ones, so an
epoch is one pass over the labeled items whatever the configuration.

:class:`BatchPlan` draws a batch exactly as the item-by-item loop it replaces did: the epoch's order from
:class:`BatchOrder` over labeled then unlabeled items, and, in batch order, one uniform crop start for each item
longer than a crop (NumPy draws an array of bounds as it draws them one by one), so the same generator gives the
same crops and targets.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from liser.students.data import UnlabeledSet, frame_counts, frame_span, item_lengths
from liser.training import shuffled_batches

__all__ = [
    "BatchOrder",
    "epoch_batches",
    "FeatureBank",
    "StreamedBank",
    "WindowTargets",
    "window_targets",
    "BatchPlan",
    "plan_batch",
]


def epoch_batches(
    n_labeled: int,
    n_unlabeled: int,
    batch_size: int,
    composition: Literal["pooled", "fixed"] = "pooled",
    labeled_per_batch: int = 1,
) -> int:
    """Batches in one epoch of :class:`BatchOrder`: one pass over labeled and unlabeled items (``pooled``, or
    without labeled items), or over the labeled items, ``labeled_per_batch`` at a time (``fixed``)."""
    if composition == "fixed" and n_labeled > 0:
        return math.ceil(n_labeled / (min(labeled_per_batch, batch_size) if n_unlabeled else labeled_per_batch))
    return math.ceil((n_labeled + n_unlabeled) / batch_size)


class BatchOrder:
    """The items of each batch of an epoch, as indices over the labeled items then the unlabeled ones.

    ``pooled``: one shuffled pass over labeled and unlabeled items together, ``batch_size`` at a time.
    ``fixed``: the labeled items shuffled, ``labeled_per_batch`` of them in each batch, the batch filled up to
    ``batch_size`` with unlabeled items drawn in turn from a shuffled pass over them that carries on across
    epochs; the epoch ends with the labeled items (its last batch may hold fewer).  Without unlabeled items a
    batch holds the labeled items alone, so supervised and distilled runs take the same steps; without labeled
    items (distillation alone) both are one pass over the unlabeled items.

    ``batches_per_epoch`` stretches or cuts an epoch to that many batches (further passes shuffled anew): a
    supervised control trained for as many steps as a distilled run.
    """

    def __init__(
        self,
        n_labeled: int,
        n_unlabeled: int,
        batch_size: int,
        rng: np.random.Generator,
        composition: Literal["pooled", "fixed"] = "pooled",
        labeled_per_batch: int = 1,
        batches_per_epoch: int | None = None,
    ):
        if n_labeled + n_unlabeled == 0:
            raise ValueError("nothing to train on: no labeled and no unlabeled items")
        self.n_labeled, self.n_unlabeled, self.batch_size, self.rng = n_labeled, n_unlabeled, batch_size, rng
        self.fixed = composition == "fixed" and n_labeled > 0
        self.labeled_per_batch = min(labeled_per_batch, batch_size) if n_unlabeled else labeled_per_batch
        self.batches_per_epoch = batches_per_epoch or epoch_batches(
            n_labeled, n_unlabeled, batch_size, composition, labeled_per_batch
        )
        self._unlabeled_order = np.zeros(0, dtype=np.int64)

    def epoch(self) -> Iterator[np.ndarray]:
        produced = 0
        while produced < self.batches_per_epoch:
            for batch in self._fixed_pass() if self.fixed else self._pooled_pass():
                yield batch
                produced += 1
                if produced == self.batches_per_epoch:
                    return

    def _pooled_pass(self) -> Iterator[np.ndarray]:
        return shuffled_batches(self.n_labeled + self.n_unlabeled, self.batch_size, self.rng)

    def _fixed_pass(self) -> Iterator[np.ndarray]:
        unlabeled_per_batch = self.batch_size - self.labeled_per_batch if self.n_unlabeled else 0
        for labeled in shuffled_batches(self.n_labeled, self.labeled_per_batch, self.rng):
            yield np.concatenate([labeled, self.n_labeled + self._next_unlabeled(unlabeled_per_batch)])

    def _next_unlabeled(self, count: int) -> np.ndarray:
        while len(self._unlabeled_order) < count:
            self._unlabeled_order = np.concatenate([self._unlabeled_order, self.rng.permutation(self.n_unlabeled)])
        taken, self._unlabeled_order = self._unlabeled_order[:count], self._unlabeled_order[count:]
        return taken


class FeatureBank:
    """Log-Mels ``(mels, frames_i)`` of many items in one flat tensor on ``device``."""

    def __init__(self, features: Sequence[np.ndarray], device: torch.device | str = "cpu"):
        if not features:
            raise ValueError("a feature bank needs at least one item")
        lengths = np.array([f.shape[1] for f in features], dtype=np.int64)
        self.lengths = lengths  # on the host: crop starts are drawn there
        self.lengths_on_device = torch.from_numpy(lengths).to(device)
        self.offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(lengths)[:-1]])).to(device)
        self.flat = torch.from_numpy(np.concatenate(features, axis=1).astype(np.float32, copy=False)).to(device)
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


class StreamedBank:
    """Log-Mels of many items left where they are: the items of ``sources`` (sequences such as a feature store's
    items, :class:`liser.students.data.UnlabeledSet`'s ``features``) in turn are its rows, and a batch's crops read
    only the frames they cover, so its memory does not grow with the items.  Its crops are :class:`FeatureBank`'s,
    value for value; each costs a read of its frames on the host and the batch one copy to ``device``."""

    def __init__(self, sources: Sequence[Sequence[np.ndarray]], device: torch.device | str = "cpu"):
        if not any(len(source) for source in sources):
            raise ValueError("a feature bank needs at least one item")
        self.sources = list(sources)
        self.lengths = np.concatenate([frame_counts(source) for source in self.sources])  # read from no frames
        self.first_rows = np.cumsum([0] + [len(source) for source in self.sources])
        self.device = torch.device(device)

    def __len__(self) -> int:
        return len(self.lengths)

    def crops(self, rows: torch.Tensor, starts: torch.Tensor, frames: int, pad_value: float) -> torch.Tensor:
        """``(len(rows), mels, frames)``: item ``rows[i]`` from frame ``starts[i]``, padded past its end."""
        rows_, starts_ = rows.cpu().numpy(), starts.cpu().numpy()
        sources = np.searchsorted(self.first_rows, rows_, side="right") - 1
        spans = [
            frame_span(self.sources[source], int(row - self.first_rows[source]), int(start), int(start) + frames)
            for row, start, source in zip(rows_, starts_, sources)
        ]
        crops = np.full((len(spans), spans[0].shape[0], frames), pad_value, dtype=np.float32)
        for crop, span in zip(crops, spans):
            crop[:, : span.shape[1]] = span
        return torch.from_numpy(crops).to(self.device)


class WindowTargets:
    """One teacher's window softmaxes of the unlabeled segments, padded to the longest segment (or to ``longest``
    windows)."""

    def __init__(
        self,
        probabilities: Sequence[np.ndarray],
        midpoints: Sequence[np.ndarray],
        device: torch.device | str = "cpu",
        valid: Sequence[np.ndarray] | None = None,
        longest: int | None = None,
    ):
        longest = max(len(m) for m in midpoints) if longest is None else longest
        classes = probabilities[0].shape[1]
        padded = np.zeros((len(probabilities), longest, classes), dtype=np.float32)
        centres = np.full((len(midpoints), longest), np.inf)
        usable = np.zeros((len(midpoints), longest), dtype=bool)
        for row, (p, m) in enumerate(zip(probabilities, midpoints)):
            padded[row, : len(p)] = p
            centres[row, : len(m)] = m
            usable[row, : len(m)] = True if valid is None else valid[row]
        self.probabilities = torch.from_numpy(padded).to(device)
        self.midpoints = torch.from_numpy(centres).to(device)  # float64: the comparisons match NumPy's
        self.valid = torch.from_numpy(usable).to(device)

    def targets(self, rows: torch.Tensor, starts: torch.Tensor, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(len(rows), classes)``: the mean softmax of the valid windows whose midpoint lies in each crop (a crop
        that covers no midpoint takes the nearest window, if valid), and ``(len(rows),)`` whether a crop has any
        such window (its target is zeros when not)."""
        midpoints = self.midpoints[rows]  # (B, W)
        start = starts[:, None].to(midpoints.dtype)
        covered = (midpoints >= start) & (midpoints < start + frames)
        nearest = torch.argmin((midpoints - (start + frames / 2)).abs(), dim=1)
        fallback = torch.zeros_like(covered).scatter_(1, nearest[:, None], True)
        covered = torch.where(covered.any(dim=1, keepdim=True), covered, fallback) & self.valid[rows]
        weights = covered.to(self.probabilities.dtype)
        summed = (self.probabilities[rows] * weights[..., None]).sum(dim=1)
        count = weights.sum(dim=1, keepdim=True)
        return summed / count.clamp(min=1), count[:, 0] > 0


class StreamedWindowTargets:
    """:class:`WindowTargets` of segments left where they are (an unlabeled set's files): a batch's segments are
    read when drawn and padded to the longest segment of all, as :class:`WindowTargets` pads them, so the targets
    are the same bits and the memory does not grow with the set."""

    def __init__(
        self,
        probabilities: Sequence[np.ndarray],
        midpoints: Sequence[np.ndarray],
        device: torch.device | str = "cpu",
        valid: Sequence[np.ndarray] | None = None,
    ):
        self.probabilities, self.midpoints, self.valid = probabilities, midpoints, valid
        self.longest = int(item_lengths(midpoints).max())  # from the set's offsets: nothing read
        self.device = torch.device(device)

    def targets(self, rows: torch.Tensor, starts: torch.Tensor, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """As :meth:`WindowTargets.targets`."""
        drawn = [int(row) for row in rows.cpu()]
        batch = WindowTargets(
            [self.probabilities[row] for row in drawn],
            [self.midpoints[row] for row in drawn],
            self.device,
            None if self.valid is None else [self.valid[row] for row in drawn],
            longest=self.longest,
        )
        return batch.targets(torch.arange(len(drawn), device=self.device), starts, frames)


def window_targets(
    unlabeled: UnlabeledSet, device: torch.device | str, streamed: bool = False
) -> dict[str, WindowTargets | StreamedWindowTargets | None]:
    """Each teacher's window targets of an unlabeled set (None for a teacher it does not have): held in memory, or
    ``streamed`` (read a batch's segments at a time)."""
    kind = StreamedWindowTargets if streamed else WindowTargets
    return {
        name: None if table is None else kind(table, unlabeled.window_midpoints, device, valid)
        for name, table, valid in (
            ("speech", unlabeled.speech, None),
            ("video", unlabeled.video, unlabeled.video_valid),
        )
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
