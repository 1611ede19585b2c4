"""What every reader of an unlabeled audio-visual corpus gives: its segments, what to download, what it left out.

A reader (:mod:`liser.corpora.mspface`, :mod:`~liser.corpora.voxceleb2`, :mod:`~liser.corpora.avspeech`,
:mod:`~liser.corpora.folder`) turns a corpus as distributed into an :class:`AudioVisualCorpus`:

- ``segments`` (:data:`SEGMENT_COLUMNS`), one row per segment: its id, its ``source`` (the id of a video to
  download, or the path of a file of the corpus), its span in that source (``end_s`` NaN: to the end), its speaker
  and gender (``unknown`` when the corpus does not say), the listed face position (``face_x``, ``face_y``: a
  fraction of the frame, NaN when none) and the file of listed face boxes (``boxes``, empty when none);
- ``videos`` (``video``, ``url``, ``listed``), the videos to download, for corpora of YouTube videos (empty for
  corpora of files);
- ``problems`` (``file``, ``line``, ``reason``): every line or file that was left out, and why.

Ids become file names (``segments/<segment>.wav``, ``tracks/<segment>.npz``), so every id is checked by
:func:`check_id` before any path is built from it: letters, digits, ``_`` and ``-`` only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

__all__ = [
    "GENDERS",
    "PROBLEM_COLUMNS",
    "SEGMENT_COLUMNS",
    "VIDEO_COLUMNS",
    "AudioVisualCorpus",
    "InvalidId",
    "Problems",
    "check_id",
    "inside_root",
    "no_videos",
    "segments_frame",
]

# fullmatch, not $: $ also matches before a trailing newline.  [0-9], not \d: \d also matches other digits.
ID = re.compile(r"[A-Za-z0-9_-]{1,200}")
SEGMENT_COLUMNS = ("segment", "source", "start_s", "end_s", "speaker", "gender", "face_x", "face_y", "boxes")
VIDEO_COLUMNS = ("video", "url", "listed")
PROBLEM_COLUMNS = ("file", "line", "reason")
GENDERS = {"male": "male", "m": "male", "female": "female", "f": "female"}


class InvalidId(ValueError):
    """An id that cannot name a file: not letters, digits, ``_`` and ``-`` only, or longer than 200."""


def check_id(text: object, what: str = "segment") -> str:
    """``text`` if it can name a file (letters, digits, ``_``, ``-``; 1 to 200); otherwise raise :class:`InvalidId`."""
    if not isinstance(text, str) or not ID.fullmatch(text):
        raise InvalidId(f"{text!r} is not a {what} id (letters, digits, _ and - only)")
    return text


def inside_root(root: Path, path: Path) -> str | None:
    """Why ``path`` (under ``root``) cannot be read as part of the corpus, or None: no such file, a link leading out
    of ``root``, not a regular file, an empty file."""
    try:
        if not path.exists() and not path.is_symlink():
            return "listed file not found"
        if not path.resolve().is_relative_to(root.resolve()):
            return f"a link to {path.resolve()}, outside the corpus folder"
        if not path.is_file():
            return "not a regular file"
        if path.stat().st_size == 0:
            return "empty file"
    except OSError as error:
        return f"cannot be read: {error.strerror or error}"
    return None


class Problems:
    """Collects (file, line, reason) for everything a reader left out."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, file: str, line: int, reason: str) -> None:
        self.rows.append({"file": file, "line": line, "reason": reason})

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(PROBLEM_COLUMNS)).astype({"line": "int64"})


def segments_frame(rows: list[dict]) -> pd.DataFrame:
    """The segments table from rows holding :data:`SEGMENT_COLUMNS` (missing optional ones filled), by segment."""
    defaults = {"end_s": float("nan"), "gender": "unknown", "face_x": float("nan"), "face_y": float("nan")}
    frame = pd.DataFrame([{**defaults, "boxes": "", **row} for row in rows], columns=list(SEGMENT_COLUMNS))
    frame = frame.astype({"start_s": "float64", "end_s": "float64", "face_x": "float64", "face_y": "float64"})
    return frame.sort_values("segment", ignore_index=True)


def no_videos() -> pd.DataFrame:
    """The videos table of a corpus of files: nothing to download."""
    return pd.DataFrame(columns=list(VIDEO_COLUMNS))


@dataclass(frozen=True)
class AudioVisualCorpus:
    segments: pd.DataFrame  # SEGMENT_COLUMNS
    videos: pd.DataFrame  # VIDEO_COLUMNS: what to download (empty for a corpus of files)
    problems: pd.DataFrame  # PROBLEM_COLUMNS

    @property
    def downloads(self) -> bool:
        """Whether the segments' sources are videos to download (else files of the corpus)."""
        return len(self.videos) > 0

    def without_speakers(self, speakers: list[str]) -> AudioVisualCorpus:
        """The corpus without the segments of ``speakers``, each listed as a problem."""
        excluded = self.segments["speaker"].isin(set(speakers))
        if not excluded.any():
            return self
        left_out = pd.DataFrame(
            {
                "file": self.segments.loc[excluded, "segment"],
                "line": 0,
                "reason": "speaker " + self.segments.loc[excluded, "speaker"] + " is in unlabeled.exclude_speakers",
            }
        )
        problems = pd.concat([self.problems, left_out], ignore_index=True)
        return AudioVisualCorpus(self.segments[~excluded].reset_index(drop=True), self.videos, problems)
