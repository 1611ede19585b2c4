"""What a student learns from: labeled utterances, and unlabeled segments with their teachers' window softmaxes.

An unlabeled item is a segment's log-Mel; each time it is drawn, a random 3 s crop of it goes to the student, and
its target from each teacher is the mean of that teacher's window softmaxes over the windows the crop covers (a
window is covered when its midpoint lies inside the crop; a crop covering no midpoint, possible only for odd window
tables, takes the nearest window): :class:`liser.students.batching.WindowTargets`.  A window in which a face was
found in fewer than ``windows.min_face_fraction`` of its frames gives no video target.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from liser.features import FeatureStore
from liser.window_tables import WINDOW_KEYS, Softmaxes, probability_columns

__all__ = ["LabeledSet", "UnlabeledSet", "unlabeled_set"]

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
