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

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from liser.files import atomic_path, parquet_batches, parquet_described, remove_leftovers
from liser.logs import UserError

__all__ = [
    "FORMAT",
    "WINDOW_KEYS",
    "WINDOW_COLUMNS",
    "Softmaxes",
    "SoftmaxWriter",
    "TableError",
    "probability_columns",
    "softmax_frame",
    "write_softmaxes",
    "read_softmaxes",
    "softmax_batches",
    "earlier_probabilities",
    "WindowTableWriter",
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


WINDOW_SCHEMA = pa.schema(
    [
        ("segment", pa.string()),
        ("window", pa.int64()),
        ("first_frame", pa.int64()),
        ("last_frame", pa.int64()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("speaker", pa.string()),
        ("face_fraction", pa.float64()),
    ]
)


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


def _softmax_schema(frame_columns: list[str], classes, teacher: str, ordered: bool) -> pa.Schema:
    fields = [
        ("segment", pa.string()),
        ("window", pa.int64()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        *((column, pa.float32()) for column in [*probability_columns(classes), "p_max"]),
    ]
    if "face_fraction" in frame_columns:
        fields.append(("face_fraction", pa.float64()))
    # ordered: the rows are in window order, so a reader may take them a part at a time
    described = {"format": FORMAT, "classes": list(classes), "teacher": teacher, "ordered": ordered}
    return pa.schema(fields, metadata={METADATA_KEY: json.dumps(described, sort_keys=True).encode()})


def _check_softmax_columns(path, frame: pd.DataFrame, classes) -> None:
    expected = [*WINDOW_KEYS, *probability_columns(classes), "p_max"]
    if list(frame.columns[: len(expected)]) != expected or set(frame.columns[len(expected) :]) - {"face_fraction"}:
        raise ValueError(f"{path}: columns {list(frame.columns)} are not a window-softmax table of {list(classes)}")


def _in_window_order(frame: pd.DataFrame, after: tuple[str, int] | None) -> bool:
    """Whether ``frame``'s (segment, window) rise strictly, from beyond ``after``."""
    if frame.empty:
        return True
    segments, windows = frame["segment"].to_numpy(dtype=object), frame["window"].to_numpy()
    same = segments[1:] == segments[:-1]
    rising = (segments[1:] > segments[:-1]) | (same & (windows[1:] > windows[:-1]))
    first = (str(segments[0]), int(windows[0]))
    return bool(rising.all()) and (after is None or first > after)


class SoftmaxWriter:
    """A window-softmax table written a part at a time (a Parquet row group each), atomically, in window order
    (segment, then window; the window table's): the file appears, whole, when the ``with`` block ends without an
    error."""

    def __init__(
        self,
        path: str | Path,
        classes: list[str] | tuple[str, ...],
        teacher: str,
        face_fraction: bool,
        ordered: bool = True,
    ):
        self.path, self.classes, self.teacher, self.face_fraction = Path(path), tuple(classes), teacher, face_fraction
        self.ordered = ordered
        self.rows, self._last = 0, None

    def __enter__(self) -> SoftmaxWriter:
        columns = ["face_fraction"] if self.face_fraction else []
        self._schema = _softmax_schema(columns, self.classes, self.teacher, self.ordered)
        remove_leftovers(self.path)  # of a run killed while it wrote this table
        self._staging = atomic_path(self.path)
        self._writer = pq.ParquetWriter(self._staging.__enter__(), self._schema)
        return self

    def write(self, frame: pd.DataFrame) -> None:
        """Rows :func:`softmax_frame` built, following those written before in window order."""
        _check_softmax_columns(self.path, frame, self.classes)
        if ("face_fraction" in frame.columns) != self.face_fraction:
            raise ValueError(f"{self.path}: face_fraction {'missing' if self.face_fraction else 'not expected'}")
        if self.ordered and not _in_window_order(frame, self._last):
            raise ValueError(f"{self.path}: rows out of window order, or a window twice")
        if len(frame):
            self._writer.write_table(pa.Table.from_pandas(frame, self._schema, preserve_index=False))
            self._last = (str(frame["segment"].iloc[-1]), int(frame["window"].iloc[-1]))
            self.rows += len(frame)

    def __exit__(self, kind, error, trace) -> None:
        try:
            if kind is None and self.rows == 0:
                self._writer.write_table(self._schema.empty_table())
            self._writer.close()
        finally:
            self._staging.__exit__(kind, error, trace)


def write_softmaxes(path: str | Path, frame: pd.DataFrame, classes: list[str] | tuple[str, ...], teacher: str) -> None:
    """Write a table :func:`softmax_frame` built, atomically, in its own row order, with the format, classes and
    teacher in its metadata, and whether its rows are in window order (the window table's, as the teachers write
    them), which lets the students read it a part at a time.  A window twice is refused."""
    _check_softmax_columns(path, frame, classes)
    if frame.duplicated(["segment", "window"]).any():
        raise ValueError(f"{path}: a window twice")
    ordered = _in_window_order(frame, None)
    with SoftmaxWriter(path, classes, teacher, "face_fraction" in frame.columns, ordered=ordered) as writer:
        writer.write(frame)


BATCH_ROWS = 65_536


def softmax_batches(
    source: Softmaxes | str | Path, rows: int = BATCH_ROWS
) -> tuple[tuple[str, ...], str, Iterator[pd.DataFrame]]:
    """A window-softmax table's classes, teacher and rows a batch at a time in window order, without reading it
    whole when its rows are in window order (the teachers write them so); another table is read whole and sorted.
    The rows are checked as they come: out of order, or a window twice, is a :class:`TableError`."""
    if isinstance(source, Softmaxes):
        frame = source.frame.sort_values(["segment", "window"], kind="stable", ignore_index=True)
        if frame.duplicated(["segment", "window"]).any():
            raise TableError("a window-softmax table in which a window appears twice")
        return source.classes, source.teacher, (frame.iloc[i : i + rows] for i in range(0, len(frame), rows))
    path = Path(source)
    if not path.is_file():
        raise TableError(f"{path}: no such window-softmax table")
    described = _described(path)
    classes = tuple(described["classes"])
    expected = [*WINDOW_KEYS, *probability_columns(classes), "p_max"]
    parquet = pq.ParquetFile(path)
    missing = [column for column in expected if column not in parquet.schema_arrow.names]
    if missing:
        raise TableError(f"{path}: lacks the columns {missing}")

    if not described.get("ordered"):  # another row order (or an older file): read whole and put in window order
        return softmax_batches(read_softmaxes(path), rows)

    def batches() -> Iterator[pd.DataFrame]:
        last = None
        for frame in parquet_batches(path, rows):
            if not _in_window_order(frame, last):
                raise TableError(f"{path}: rows out of window order, or a window twice: run its stage again")
            if len(frame):
                last = (str(frame["segment"].iloc[-1]), int(frame["window"].iloc[-1]))
            yield frame

    return classes, described["teacher"], batches()


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


def _window_rows(path: str | Path, frame: pd.DataFrame) -> pa.Table:
    missing = [column for column in WINDOW_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(f"{path}: a window table needs the columns {missing}")
    return pa.Table.from_pandas(frame[list(WINDOW_COLUMNS)].astype(_WINDOW_DTYPES), WINDOW_SCHEMA, preserve_index=False)


def write_window_table(path: str | Path, frame: pd.DataFrame) -> None:
    """The window table, atomically, with :data:`WINDOW_COLUMNS` in order."""
    with WindowTableWriter(path) as writer:
        writer.write(frame)


class WindowTableWriter:
    """The window table written a part at a time (one Parquet row group each), atomically: the file appears, whole,
    when the ``with`` block ends without an error."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.rows = 0

    def __enter__(self) -> WindowTableWriter:
        self._staging = atomic_path(self.path)
        tmp = self._staging.__enter__()
        self._writer = pq.ParquetWriter(tmp, WINDOW_SCHEMA)
        return self

    def write(self, frame: pd.DataFrame) -> None:
        if len(frame):
            self._writer.write_table(_window_rows(self.path, frame))
            self.rows += len(frame)

    def __exit__(self, kind, error, trace) -> None:
        try:
            if kind is None and self.rows == 0:  # a file with the columns, and no rows
                self._writer.write_table(WINDOW_SCHEMA.empty_table())
            self._writer.close()
        finally:
            self._staging.__exit__(kind, error, trace)


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
