"""Distillation from the two teachers over unlabeled audio-visual segments (sections 2.4 and 3.4).

An unlabeled item is a segment's log-Mel; each time it is drawn, a random 3 s crop of it goes to the
student, and its target from each teacher is the mean of that teacher's window softmaxes over the
windows the crop covers (a window is covered when its midpoint lies inside the crop; a crop covering no
midpoint, possible only for odd window tables, takes the nearest window).  A window in which a face was
found in fewer than ``windows.min_face_fraction`` of its frames gives no video target: a crop's video
target is the mean over its windows that pass, and a crop with none has no video term.

The mini-batch loss is eq. (4), or eq. (5) with ``confidence``:

    L = ( sum_labeled CE(g_sup, y)
          + sum_unlabeled [ lambda_sd * w_sd * D(g_sd, t_s) + lambda_vd * w_vd * D(g_vd, t_v) ] ) / (N_l + N_u)

where D is the MAE between the head's softmax and the teacher's target (the mean over classes, or the sum
with ``class_reduction="sum"``) or, for the distill-ce ablation, the cross-entropy against the soft
target; w is the target's maximum probability under eq. (5) and 1 under eq. (4).  A teacher whose lambda
is 0 takes no part, and without any teacher the unlabeled items are not drawn at all, so such a run is
exactly the supervised one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch.nn import functional as F

from liser.features import FeatureStore
from liser.models.student import StudentOutput
from liser.window_tables import WINDOW_KEYS, Softmaxes, probability_columns

__all__ = ["Objective", "UnlabeledSet", "unlabeled_set", "crop_targets", "distillation_term", "batch_loss"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Objective:
    """Which teachers the student learns from, and how."""

    lambda_sd: float = 0.0  # weight of the speech teacher's term; 0 leaves it out
    lambda_vd: float = 0.0  # weight of the video teacher's term
    confidence: bool = False  # eq. (5): each term also weighted by the teacher's maximum probability
    distill_loss: Literal["mae", "ce"] = "mae"
    class_reduction: Literal["mean", "sum"] = "mean"  # MAE over the classes of one item

    def __post_init__(self):
        if self.lambda_sd < 0 or self.lambda_vd < 0:
            raise ValueError(f"lambdas must be >= 0, got {self.lambda_sd} and {self.lambda_vd}")

    @property
    def distils(self) -> bool:
        return self.lambda_sd > 0 or self.lambda_vd > 0


@dataclass(frozen=True)
class UnlabeledSet:
    """Unlabeled segments: their log-Mels and, per teacher, the softmaxes of their windows."""

    segments: Sequence[str]
    features: Sequence[np.ndarray]  # (mels, frames) each
    window_midpoints: Sequence[np.ndarray]  # (windows,) midpoints in feature frames
    speech: Sequence[np.ndarray] | None  # (windows, K_S) each, or None without the speech teacher
    video: Sequence[np.ndarray] | None  # (windows, K_V) each
    video_valid: Sequence[np.ndarray] | None = None  # (windows,) bool each: the window may give a video target

    def __post_init__(self):
        n = len(self.segments)
        lengths = [len(self.features), len(self.window_midpoints)]
        lengths += [len(t) for t in (self.speech, self.video, self.video_valid) if t is not None]
        if any(length != n for length in lengths):
            raise ValueError("segments, features, midpoints and teacher softmaxes must have the same length")
        if n == 0:
            raise ValueError("an unlabeled set needs at least one segment")

    def __len__(self) -> int:
        return len(self.segments)


def unlabeled_set(
    store: FeatureStore,
    hop_s: float,
    speech: Softmaxes | None = None,
    video: Softmaxes | None = None,
    min_face_fraction: float = 0.0,
) -> UnlabeledSet:
    """The segments that have features and every given teacher's window softmaxes.

    ``speech`` and ``video`` are window-softmax tables (:mod:`liser.window_tables`; the video teacher's with
    ``face_fraction``); a window counts only when every given teacher scored it.  Video windows with a
    ``face_fraction`` under ``min_face_fraction`` are kept for their place but marked as giving no target.
    """
    tables = {name: t for name, t in (("speech", speech), ("video", video)) if t is not None}
    if not tables:
        raise ValueError("an unlabeled set needs the window softmaxes of at least one teacher")
    keys = list(WINDOW_KEYS)
    windows = None
    for name, table in tables.items():
        extra = []
        if name == "video" and min_face_fraction > 0:
            if "face_fraction" not in table.frame.columns:
                raise ValueError(
                    "the video teacher's window softmaxes have no face_fraction column: run stage video_softmaxes "
                    "again, or set windows.min_face_fraction: 0"
                )
            extra = ["face_fraction"]
        probabilities = probability_columns(table.classes)
        columns = {c: f"{name}:{c}" for c in probabilities}
        renamed = table.frame[keys + probabilities + extra].rename(columns=columns)
        windows = renamed if windows is None else windows.merge(renamed, on=keys, how="inner")
    windows = windows[windows["segment"].isin(set(store.index["utterance"]))].sort_values(["segment", "window"])
    if windows.empty:
        raise ValueError("no window has both features and teacher softmaxes")
    segments, features, midpoints, valid = [], [], [], []
    per_teacher: dict[str, list[np.ndarray]] = {name: [] for name in tables}
    for segment, members in windows.groupby("segment", sort=True):
        segments.append(segment)
        features.append(store[segment])
        midpoints.append(((members["start_s"] + members["end_s"]).to_numpy() / 2 / hop_s).astype(np.float64))
        for name in tables:
            columns = [c for c in members.columns if c.startswith(f"{name}:")]
            per_teacher[name].append(members[columns].to_numpy(dtype=np.float32))
        if "face_fraction" in members.columns:
            valid.append(members["face_fraction"].to_numpy() >= min_face_fraction)
    if valid:
        kept = sum(int(v.sum()) for v in valid)
        log.info(
            "%d of %d video windows have a face in at least %.0f%% of their frames and give video targets",
            kept,
            sum(len(v) for v in valid),
            100 * min_face_fraction,
        )
    return UnlabeledSet(
        segments, features, midpoints, per_teacher.get("speech"), per_teacher.get("video"), valid or None
    )


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
