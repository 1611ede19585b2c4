"""The tables that pass over the unlabeled windows from one sub-pipeline to the next.

- The **window table** (stage ``windows``): one row per 16-frame window of a kept segment, the unit both teachers
  score: :data:`WINDOW_COLUMNS`.
- A teacher's **window-softmax table** (stages ``video_softmaxes`` and ``speech_softmaxes``): one row per window
  the teacher scored: the window's keys (:data:`WINDOW_KEYS`), one probability column ``p_<class>`` per class in
  the teacher's order, ``p_max`` (their maximum, the confidence weight of eq. (5)) and, in the video teacher's,
  the window's ``face_fraction``.  The Parquet file's metadata names the format version, the teacher (a
  fingerprint of its weights) and its classes.

Teachers write softmax tables and students read them only through this module, which sits below both.  A table
from another version of the format is refused with a message naming the file and the stage that rewrites it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from liser.files import parquet_described, write_parquet
from liser.logs import UserError

__all__ = [
    "FORMAT",
    "WINDOW_KEYS",
    "WINDOW_COLUMNS",
    "Softmaxes",
    "TableError",
    "probability_columns",
    "softmax_frame",
    "write_softmaxes",
    "read_softmaxes",
    "earlier_probabilities",
    "write_window_table",
    "read_window_table",
]

FORMAT = 1  # the version of the window-softmax table's layout; a table of another is refused
METADATA_KEY = b"liser_window_softmaxes"
WINDOW_KEYS = ("segment", "window", "start_s", "end_s")  # a window, as both teachers and the students know it
# segment and speaker ids, the window's number in its segment, its frames in the face clip, its span in seconds
# from the segment's start, and the share of its frames in which a face was detected
WINDOW_COLUMNS = ("segment", "window", "first_frame", "last_frame", "start_s", "end_s", "speaker", "face_fraction")
_KEY_DTYPES = {"segment": "str", "window": np.int64, "start_s": np.float64, "end_s": np.float64}
_WINDOW_DTYPES = {
    **_KEY_DTYPES,
    "first_frame": np.int64,
    "last_frame": np.int64,
    "speaker": "str",
    "face_fraction": np.float64,
}


class TableError(UserError, ValueError):
    """A window or window-softmax table that cannot be used, with the file and the problem in the message."""


def probability_columns(classes: list[str] | tuple[str, ...]) -> list[str]:
    """``p_<class>`` for each class, in the teacher's order."""
    if len(set(classes)) != len(classes):
        raise ValueError(f"class names must be distinct (got {list(classes)})")
    return [f"p_{name}" for name in classes]


@dataclass(frozen=True)
class Softmaxes:
    """One teacher's window-softmax table as read: its rows, classes and fingerprint."""

    frame: pd.DataFrame  # WINDOW_KEYS, p_<class>..., p_max[, face_fraction]
    classes: tuple[str, ...]
    teacher: str  # SHA-256 of the teacher's weights (liser.teachers.window_scores.teacher_fingerprint)

    @property
    def probabilities(self) -> np.ndarray:
        """(windows, classes) float32."""
        return self.frame[probability_columns(self.classes)].to_numpy(dtype=np.float32)

    def __len__(self) -> int:
        return len(self.frame)


def softmax_frame(
    windows: pd.DataFrame,
    probabilities: np.ndarray,
    classes: list[str] | tuple[str, ...],
    face_fraction: np.ndarray | None = None,
) -> pd.DataFrame:
    """The table's rows: ``windows``' keys with the probabilities (one row each, in order), ``p_max`` and
    optionally ``face_fraction``."""
    probabilities = np.asarray(probabilities, dtype=np.float32)
    if probabilities.shape != (len(windows), len(classes)):
        raise ValueError(f"probabilities of shape {probabilities.shape} for {len(windows)} windows x {len(classes)}")
    frame = windows[list(WINDOW_KEYS)].reset_index(drop=True).astype(_KEY_DTYPES)
    for k, column in enumerate(probability_columns(classes)):
        frame[column] = probabilities[:, k]
    frame["p_max"] = probabilities.max(axis=1) if len(frame) else np.zeros(0, np.float32)
    if face_fraction is not None:
        frame["face_fraction"] = np.asarray(face_fraction, dtype=np.float64)
    return frame


def write_softmaxes(path: str | Path, frame: pd.DataFrame, classes: list[str] | tuple[str, ...], teacher: str) -> None:
    """Write a table :func:`softmax_frame` built, atomically, with the format, classes and teacher in its metadata."""
    expected = [*WINDOW_KEYS, *probability_columns(classes), "p_max"]
    if list(frame.columns[: len(expected)]) != expected or set(frame.columns[len(expected) :]) - {"face_fraction"}:
        raise ValueError(f"{path}: columns {list(frame.columns)} are not a window-softmax table of {list(classes)}")
    write_parquet(path, frame, {METADATA_KEY: {"format": FORMAT, "classes": list(classes), "teacher": teacher}})


def _described(path: Path) -> dict:
    try:
        described = parquet_described(path, METADATA_KEY)
    except (OSError, pa.ArrowException) as problem:
        raise TableError(f"{path}: not a readable Parquet file ({problem})") from None
    if described is None:
        raise TableError(
            f"{path}: a window-softmax table without LiSER's format marker (written by an older version): run its "
            "stage again (dvc repro -f video_softmaxes, or speech_softmaxes@<corpus>)"
        )
    if described.get("format") != FORMAT:
        raise TableError(
            f"{path}: window-softmax table format {described.get('format')}, this version reads {FORMAT}: run its "
            "stage again"
        )
    return described


def read_softmaxes(path: str | Path) -> Softmaxes:
    """A window-softmax table, checked: its format version, its columns for its classes, no window twice."""
    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: no such window-softmax table")
    described = _described(path)
    classes = tuple(described["classes"])
    frame = pd.read_parquet(path)
    expected = [*WINDOW_KEYS, *probability_columns(classes), "p_max"]
    missing = [column for column in expected if column not in frame.columns]
    if missing:
        raise TableError(f"{path}: lacks the columns {missing}")
    if frame.duplicated(["segment", "window"]).any():
        raise TableError(f"{path}: a window appears twice")
    return Softmaxes(frame, classes, described["teacher"])


def earlier_probabilities(
    windows: pd.DataFrame, path: str | Path | None, classes: list[str] | tuple[str, ...], teacher: str
) -> np.ndarray:
    """(windows, classes) probabilities that the same teacher wrote into ``path`` for the same windows (same
    segment, number and span); NaN for the others, and everywhere when ``path`` is absent, unreadable, of another
    format, or another teacher's."""
    reused = np.full((len(windows), len(classes)), np.nan, dtype=np.float32)
    if path is None or not Path(path).is_file():
        return reused
    try:
        earlier = read_softmaxes(path)
    except TableError:
        return reused
    if earlier.teacher != teacher or earlier.classes != tuple(classes):
        return reused
    keys = list(WINDOW_KEYS)
    matched = (
        windows[keys]
        .astype(_KEY_DTYPES)
        .reset_index(drop=True)
        .reset_index()
        .merge(earlier.frame[[*keys, *probability_columns(classes)]], on=keys, how="inner")
    )
    reused[matched["index"].to_numpy()] = matched[probability_columns(classes)].to_numpy(dtype=np.float32)
    return reused


def write_window_table(path: str | Path, frame: pd.DataFrame) -> None:
    """The window table, atomically, with :data:`WINDOW_COLUMNS` in order."""
    missing = [column for column in WINDOW_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(f"{path}: a window table needs the columns {missing}")
    write_parquet(path, frame[list(WINDOW_COLUMNS)].astype(_WINDOW_DTYPES))


def read_window_table(path: str | Path) -> pd.DataFrame:
    """The window table, checked for its columns and for windows listed twice."""
    path = Path(path)
    try:
        frame = pd.read_parquet(path)
    except (OSError, pa.ArrowException) as problem:
        raise TableError(f"{path}: not a readable window table ({problem})") from None
    missing = [column for column in WINDOW_COLUMNS if column not in frame.columns]
    if missing:
        raise TableError(f"{path}: a window table lacks the columns {missing} (run stage windows again)")
    if frame.duplicated(["segment", "window"]).any():
        raise TableError(f"{path}: a window appears twice")
    return frame
