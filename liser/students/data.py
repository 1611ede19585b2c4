"""What a student learns from: labeled utterances, and unlabeled segments with their teachers' window softmaxes.

An unlabeled item is a segment's log-Mel; each time it is drawn, a random 3 s crop of it goes to the student, and
its target from each teacher is the mean of that teacher's window softmaxes over the windows the crop covers (a
window is covered when its midpoint lies inside the crop; a crop covering no midpoint, possible only for odd window
tables, takes the nearest window): :class:`liser.students.batching.WindowTargets`.  A window in which a face was
found in fewer than ``windows.min_face_fraction`` of its frames gives no video target.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from liser.features import FeatureStore, RowFile
from liser.window_tables import WINDOW_KEYS, Softmaxes, probability_columns, softmax_batches

__all__ = ["LabeledSet", "Ragged", "UnlabeledSet", "unlabeled_set", "frame_counts", "frame_span"]

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


class Ragged(Sequence):
    """Item i is ``values[offsets[i]:offsets[i + 1]]``: many variable-length arrays in one array, or in one
    :class:`liser.features.RowFile` read where asked."""

    def __init__(self, values: np.ndarray | RowFile, offsets: np.ndarray):
        self.values, self.offsets = values, offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, item: int) -> np.ndarray:
        if not -len(self) <= item < len(self):
            raise IndexError(item)
        item %= len(self)
        start, stop = int(self.offsets[item]), int(self.offsets[item + 1])
        return self.values.rows(start, stop) if isinstance(self.values, RowFile) else self.values[start:stop]


class _Names(Ragged):
    """Segment names, stored as their UTF-8 bytes."""

    def __getitem__(self, item: int) -> str:
        return super().__getitem__(item).tobytes().decode()


class _StoreRows(Sequence):
    """The log-Mels of some of a store's utterances, read from the store's file as they are used."""

    def __init__(self, store: FeatureStore, offsets: np.ndarray, frames: np.ndarray):
        self.store, self.offsets, self.frames = store, offsets, frames

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, item: int) -> np.ndarray:
        if not -len(self) <= item < len(self):
            raise IndexError(item)
        return self.store.frames(int(self.offsets[item]), int(self.frames[item]))

    def span(self, item: int, start: int, stop: int) -> np.ndarray:
        """Frames ``start`` to ``stop`` of the item (fewer past its end): only those rows are read."""
        stop = min(stop, int(self.frames[item]))
        return self.store.frames(int(self.offsets[item]) + start, max(0, stop - start))


def frame_counts(features: Sequence[np.ndarray]) -> np.ndarray:
    """Each item's number of frames: from the store's index when the items are a store's, reading no frames."""
    if isinstance(features, _StoreRows):
        return features.frames.astype(np.int64)
    return np.array([f.shape[1] for f in features], dtype=np.int64)


def item_lengths(items: Sequence[np.ndarray]) -> np.ndarray:
    """Each item's length (its first axis): from the offsets when the items are a :class:`Ragged`'s, reading none."""
    if isinstance(items, Ragged):
        return np.diff(np.asarray(items.offsets)).astype(np.int64)
    return np.array([len(item) for item in items], dtype=np.int64)


def frame_span(features: Sequence[np.ndarray], item: int, start: int, stop: int) -> np.ndarray:
    """``features[item][:, start:stop]``, reading only those frames when the items are a store's."""
    if isinstance(features, _StoreRows):
        return features.span(item, start, stop)
    return features[item][:, start:stop]


class _Scratch:
    """Arrays written a part at a time to files of a private temporary folder, then opened as
    :class:`liser.features.RowFile` s (the per-segment ones read into memory): the folder is removed at once (the
    open files keep the data until they are closed), so nothing is left behind."""

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="liser-unlabeled-"))
        self.files: dict[str, tuple] = {}

    def append(self, name: str, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array)
        if name not in self.files:
            self.files[name] = (open(self.folder / name, "wb"), array.dtype, array.shape[1:])
        self.files[name][0].write(array.tobytes())

    def opened(self, in_memory: set[str]) -> dict[str, np.ndarray | RowFile]:
        arrays: dict[str, np.ndarray | RowFile] = {}
        try:
            for name, (handle, dtype, shape) in self.files.items():
                handle.close()
                rows = RowFile(self.folder / name, dtype, shape)
                arrays[name] = rows.rows(0, len(rows)) if name in in_memory else rows
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
        return arrays


def _checked_order(batches: Iterator[pd.DataFrame], what: str) -> Iterator[pd.DataFrame]:
    last = None
    for batch in batches:
        segments = batch["segment"].to_numpy(dtype=object)
        if len(segments) and ((segments[1:] < segments[:-1]).any() or (last is not None and segments[0] < last)):
            raise ValueError(f"{what}: not in segment order")
        if len(segments):
            last = segments[-1]
        yield batch


def _aligned(streams: list[Iterator[pd.DataFrame]], rows: int) -> Iterator[list[pd.DataFrame]]:
    """Parts of several tables sorted by segment, each part holding the same whole segments of every table."""
    buffers = [pd.DataFrame() for _ in streams]
    ended = [False] * len(streams)
    while True:
        for i, stream in enumerate(streams):
            while not ended[i] and (
                len(buffers[i]) < rows or buffers[i]["segment"].iloc[0] == buffers[i]["segment"].iloc[-1]
            ):
                batch = next(stream, None)
                if batch is None:
                    ended[i] = True
                else:
                    buffers[i] = batch if buffers[i].empty else pd.concat([buffers[i], batch], ignore_index=True)
        if all(ended):
            yield buffers
            return
        bound = min(buffer["segment"].iloc[-1] for buffer, done in zip(buffers, ended) if not done)
        parts = [buffer if buffer.empty else buffer[buffer["segment"] < bound] for buffer in buffers]
        buffers = [
            buffer if buffer.empty else buffer[buffer["segment"] >= bound].reset_index(drop=True) for buffer in buffers
        ]
        yield parts


def unlabeled_set(
    store: FeatureStore,
    hop_s: float,
    speech: Softmaxes | str | Path | None = None,
    video: Softmaxes | str | Path | None = None,
    min_face_fraction: float = 0.0,
    rows: int = 65_536,
) -> UnlabeledSet:
    """The segments that have features and every given teacher's window softmaxes.

    ``speech`` and ``video`` are window-softmax tables (:mod:`liser.window_tables`, read or a file's path; the
    video teacher's with ``face_fraction``); a window counts only when every given teacher scored it.  Video
    windows with a ``face_fraction`` under ``min_face_fraction`` are kept for their place but marked as giving no
    target.  The tables and the store's index are read ``rows`` at a time and joined as they come; the set's
    per-window arrays stay in private temporary files and its log-Mels in the store's, each item read when it is
    asked for, so building and drawing from it take about the same memory for a thousand segments or a million.
    """
    given = {name: table for name, table in (("speech", speech), ("video", video)) if table is not None}
    if not given:
        raise ValueError("an unlabeled set needs the window softmaxes of at least one teacher")
    keys = list(WINDOW_KEYS)
    streams, columns = [], {}
    for name, table in given.items():
        classes, _, batches = softmax_batches(table, rows)
        probabilities = probability_columns(classes)
        wanted = keys + probabilities
        if name == "video" and min_face_fraction > 0:
            wanted.append("face_fraction")
        columns[name] = [f"{name}:{c}" for c in probabilities]

        def renamed(batches=batches, wanted=wanted, name=name, probabilities=probabilities):
            for batch in batches:
                if "face_fraction" in wanted and "face_fraction" not in batch.columns:
                    raise ValueError(
                        "the video teacher's window softmaxes have no face_fraction column: run stage "
                        "video_softmaxes again, or set windows.min_face_fraction: 0"
                    )
                yield batch[wanted].rename(columns={c: f"{name}:{c}" for c in probabilities})

        streams.append(renamed())
    index = store.index_batches(rows)
    streams.append(_checked_order((b.rename(columns={"utterance": "segment"}) for b in index), str(store.folder)))

    scratch = _Scratch()
    counts = {"segments": 0, "windows": 0, "valid": 0}
    for *parts, index_part in _aligned(streams, rows):
        if any(part.empty for part in (*parts, index_part)):
            continue  # a segment missing from one of them has no window
        windows = parts[0]
        for part in parts[1:]:
            windows = windows.merge(part, on=keys, how="inner", sort=False)
        windows = windows.merge(index_part[["segment", "offset", "frames"]], on="segment", how="inner")
        if windows.empty:
            continue
        windows = windows.sort_values(["segment", "window"], kind="stable", ignore_index=True)
        first = np.flatnonzero(windows["segment"].to_numpy(dtype=object)[1:] != windows["segment"].to_numpy()[:-1])
        starts = np.concatenate([[0], first + 1])
        lengths = np.diff(np.concatenate([starts, [len(windows)]]))
        names = [str(name).encode() for name in windows["segment"].to_numpy()[starts]]
        scratch.append("name_bytes", np.frombuffer(b"".join(names), dtype=np.uint8))
        scratch.append("name_lengths", np.array([len(name) for name in names], dtype=np.int64))
        scratch.append("window_counts", lengths.astype(np.int64))
        scratch.append("feature_offsets", windows["offset"].to_numpy()[starts].astype(np.int64))
        scratch.append("feature_frames", windows["frames"].to_numpy()[starts].astype(np.int64))
        scratch.append("midpoints", ((windows["start_s"] + windows["end_s"]).to_numpy() / 2 / hop_s).astype(np.float64))
        for name in given:
            scratch.append(name, windows[columns[name]].to_numpy(dtype=np.float32))
        if "face_fraction" in windows.columns:
            valid = windows["face_fraction"].to_numpy() >= min_face_fraction
            scratch.append("video_valid", valid)
            counts["valid"] += int(valid.sum())
        counts["segments"] += len(starts)
        counts["windows"] += len(windows)
    if counts["segments"] == 0:
        raise ValueError("no window has both features and teacher softmaxes")
    # per segment (a few numbers each) in memory; per window, and the names, read where asked
    arrays = scratch.opened({"window_counts", "name_lengths", "feature_offsets", "feature_frames"})
    segment_offsets = np.concatenate([[0], np.cumsum(arrays["window_counts"])])
    name_offsets = np.concatenate([[0], np.cumsum(arrays["name_lengths"])])
    if "video_valid" in arrays:
        log.info(
            "%d of %d video windows have a face in at least %.0f%% of their frames and give video targets",
            counts["valid"],
            counts["windows"],
            100 * min_face_fraction,
        )
    return UnlabeledSet(
        _Names(arrays["name_bytes"], name_offsets),
        _StoreRows(store, arrays["feature_offsets"], arrays["feature_frames"]),
        Ragged(arrays["midpoints"], segment_offsets),
        Ragged(arrays["speech"], segment_offsets) if "speech" in arrays else None,
        Ragged(arrays["video"], segment_offsets) if "video" in arrays else None,
        Ragged(arrays["video_valid"], segment_offsets) if "video_valid" in arrays else None,
    )
