"""Non-overlapping 16-frame windows of the unlabeled segments: the unit both teachers score.

A kept segment of T face frames at ``fps`` gives T // 16 windows (frames 0-15, 16-31, ...);
the trailing frames that do not fill a window are left out, as the paper's sliding window of
length and stride 16 does.  Times are seconds from the segment's start.  ``face_fraction``
is the share of the window's frames in which a face was detected (the others hold a nearby
box), so a teacher or a student can leave out windows with little face.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from liser.unlabeled.faces import read_face_mask
from liser.window_tables import WINDOW_COLUMNS

__all__ = ["segment_windows", "window_table"]


def segment_windows(segment: str, speaker: str, face_mask: np.ndarray, frames: int, fps: float) -> pd.DataFrame:
    """The windows of one segment whose frames carry ``face_mask`` (True where a face was found)."""
    count = len(face_mask) // frames
    first = np.arange(count) * frames
    return pd.DataFrame(
        {
            "segment": segment,
            "window": np.arange(count),
            "first_frame": first,
            "last_frame": first + frames - 1,
            "start_s": first / fps,
            "end_s": (first + frames) / fps,
            "speaker": speaker,
            "face_fraction": [float(face_mask[f : f + frames].mean()) for f in first],
        },
        columns=list(WINDOW_COLUMNS),
    )


def window_table(segments: pd.DataFrame, faces: Path, frames: int = 16, fps: float = 30.0) -> pd.DataFrame:
    """Windows of every segment (``segment``, ``speaker`` columns) that has a face clip in ``faces``."""
    parts = [
        segment_windows(row.segment, row.speaker, read_face_mask(faces / f"{row.segment}.mp4"), frames, fps)
        for row in segments.itertuples()
        if (faces / f"{row.segment}.mp4").is_file()
    ]
    if not parts:
        raise RuntimeError(f"{faces}: no face clip for any of the {len(segments)} segments")
    return pd.concat(parts, ignore_index=True)
