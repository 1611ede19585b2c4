"""Non-overlapping 16-frame windows of the unlabeled segments: the unit both teachers score.

A kept segment of T face frames at ``fps`` gives T // 16 windows (frames 0-15, 16-31, ...);
the trailing frames that do not fill a window are left out, as the paper's sliding window of
length and stride 16 does.  Times are seconds from the segment's start.  ``face_fraction``
is the share of the window's frames in which a face was detected (the others hold a nearby
box), so a teacher or a student can leave out windows with little face.

Stage ``windows`` reads the kept segments' face masks (``face_masks.parquet`` of stage faces) a batch at a time and
writes the window table the same way, so its memory does not grow with the corpus.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from liser.files import atomic_path, parquet_batches
from liser.logs import UserError
from liser.window_tables import WINDOW_COLUMNS, WindowTableWriter

__all__ = ["FACE_MASKS", "FACE_MASK_SCHEMA", "MANIFEST_SCHEMA", "NoWindows", "cut_windows", "segment_windows"]

log = logging.getLogger(__name__)

FACE_MASKS = "face_masks.parquet"  # in stage faces' folder: the kept segments' face masks, what this stage reads
# its rows: a kept segment, its output frames, its face mask ("1" where a face was found, "0" elsewhere), and
# its speaker, gender, duration and sound file
FACE_MASK_SCHEMA = pa.schema(
    [
        ("segment", pa.string()),
        ("frames", pa.int64()),
        ("face", pa.string()),
        ("speaker", pa.string()),
        ("gender", pa.string()),
        ("duration", pa.float64()),
        ("audio_file", pa.string()),
    ]
)
BATCH_SEGMENTS = 10_000
# the segments with windows, for the log-Mel features (liser.features)
MANIFEST_SCHEMA = pa.schema(
    [
        ("utterance", pa.string()),
        ("path", pa.string()),
        ("speaker", pa.string()),
        ("gender", pa.string()),
        ("duration", pa.float64()),
    ]
)


class NoWindows(UserError, RuntimeError):
    """No kept segment is long enough for one window."""


def segment_windows(segment: str, speaker: str, face_mask: np.ndarray, frames: int, fps: float) -> pd.DataFrame:
    """The windows of one segment whose frames carry ``face_mask`` (True where a face was found)."""
    count = len(face_mask) // frames
    first = np.arange(count) * frames
    fraction = np.asarray(face_mask[: count * frames], dtype=float).reshape(count, frames).mean(axis=1)
    return pd.DataFrame(
        {
            "segment": segment,
            "window": np.arange(count),
            "first_frame": first,
            "last_frame": first + frames - 1,
            "start_s": first / fps,
            "end_s": (first + frames) / fps,
            "speaker": speaker,
            "face_fraction": fraction,
        },
        columns=list(WINDOW_COLUMNS),
    )


def _batch_windows(batch: pd.DataFrame, frames: int, fps: float) -> pd.DataFrame:
    """The windows of a batch of face_masks.parquet's rows, in segment order."""
    counts = (batch["frames"].to_numpy() // frames).astype(np.int64)
    total = int(counts.sum())
    segment_of = np.repeat(np.arange(len(batch)), counts)
    window = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    first = window * frames
    fractions = [
        (np.frombuffer(mask.encode("ascii"), dtype=np.uint8)[: count * frames] == ord("1"))
        .reshape(count, frames)
        .mean(axis=1)
        for mask, count in zip(batch["face"], counts)
    ]
    return pd.DataFrame(
        {
            "segment": batch["segment"].to_numpy()[segment_of],
            "window": window,
            "first_frame": first,
            "last_frame": first + frames - 1,
            "start_s": first / fps,
            "end_s": (first + frames) / fps,
            "speaker": batch["speaker"].to_numpy()[segment_of],
            "face_fraction": np.concatenate(fractions) if fractions else np.zeros(0),
        },
        columns=list(WINDOW_COLUMNS),
    )


def cut_windows(face_masks: str | Path, frames: int, fps: float, windows_out: str | Path, manifest_out: str | Path):
    """Write the window table of every kept segment (``face_masks``: segment, frames, face, speaker, gender,
    duration, audio_file) and the manifest (utterance, path, speaker, gender, duration) of those with windows, a
    batch of segments at a time; return the summary.  Stops with :class:`NoWindows` when no segment has one."""
    face_masks = Path(face_masks)
    windows = segments = face_total = 0
    speakers: set[str] = set()
    with WindowTableWriter(windows_out) as table, atomic_path(manifest_out) as manifest_tmp:
        with pq.ParquetWriter(manifest_tmp, MANIFEST_SCHEMA) as manifest:
            for batch in parquet_batches(face_masks, BATCH_SEGMENTS):
                rows = _batch_windows(batch, frames, fps)
                table.write(rows)
                with_windows = batch[batch["frames"].to_numpy() >= frames]
                part = pd.DataFrame(
                    {
                        "utterance": with_windows["segment"],
                        "path": with_windows["audio_file"].astype(str),
                        "speaker": with_windows["speaker"].astype(str),
                        "gender": with_windows["gender"].astype(str),
                        "duration": with_windows["duration"].astype(float),
                    }
                )
                manifest.write_table(pa.Table.from_pandas(part, MANIFEST_SCHEMA, preserve_index=False))
                windows += len(rows)
                segments += len(with_windows)
                face_total += float(rows["face_fraction"].sum())
                speakers.update(with_windows["speaker"].unique())
        if windows == 0:
            raise NoWindows(
                f"{face_masks}: no kept segment has {frames} frames, one window: nothing for the teachers to score"
            )
    log.info("%d windows of %d segments -> %s", windows, segments, windows_out)
    return {
        "windows": windows,
        "segments": segments,
        "speakers": len(speakers),
        "hours": float(windows * frames / fps / 3600),
        "mean_face_fraction": face_total / windows,
    }
