"""Any folder of video files as an unlabeled corpus (``unlabeled.reader: folder``), read in place.

Without a table, every video file under ``root`` (``.mp4``, ``.mkv``, ``.webm``, ``.mov``, ``.avi``, ``.m4v``, in
sub-folders too) is one segment, whole, of an unknown speaker.  With ``table``, a CSV with the columns ``path``
(relative to ``root``), ``speaker`` and optionally ``gender`` (male / female / m / f), ``start`` and ``end``
(seconds; a file may hold several segments), only the rows listed are read.

A segment is named after its path: ``/`` becomes ``__``, every character but letters, digits, ``_`` and ``-``
becomes ``_``, and ``_<start in ms, 8 digits>`` is added when it has times (``talks__day_1`` for
``talks/day 1.mp4``).  Every file or row that cannot be used is a problem with its reason: an absolute path or one
that leaves ``root``, a missing or empty file, a link leading out of ``root``, times that are not numbers or not in
order, a name another segment already has.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from liser.corpora.audiovisual import (
    GENDERS,
    AudioVisualCorpus,
    Problems,
    check_id,
    inside_root,
    no_videos,
    segments_frame,
)
from liser.corpora.manifest import inside

__all__ = ["VIDEO_SUFFIXES", "read_corpus", "segment_name"]

VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v"})
UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def segment_name(relative: str, start_s: float | None = None) -> str:
    """The segment id of a file's path (relative to the corpus folder) and, when it has times, its start."""
    stem = relative.rsplit(".", 1)[0] if "." in relative.rsplit("/", 1)[-1] else relative
    name = "__".join(UNSAFE.sub("_", part) for part in stem.split("/"))
    return name if start_s is None else f"{name}_{round(start_s * 1000):08d}"


def _seconds(text: str, what: str) -> float | None | str:
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return f"{what} {text!r} is not a number"
    return value if math.isfinite(value) and value >= 0 else f"{what} {text!r} is not a time in seconds"


def _listed_rows(root: Path, table: Path, problems: Problems) -> list[dict]:
    frame = pd.read_csv(table, dtype=str, keep_default_na=False)
    frame.columns = [str(column).strip().lower() for column in frame.columns]
    missing = [column for column in ("path", "speaker") if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{table}: missing column(s) {', '.join(missing)}; the table has path, speaker[, gender, start, end]"
        )
    rows = []
    for number, row in enumerate(frame.to_dict("records"), start=2):  # line 1 is the header
        row = {key: str(value).strip() for key, value in row.items()}
        found = inside(root, row["path"])
        start, end = _seconds(row.get("start", ""), "start"), _seconds(row.get("end", ""), "end")
        gender = GENDERS.get(row.get("gender", "").lower(), "unknown" if not row.get("gender") else None)
        reason = found if isinstance(found, str) else inside_root(root, found)
        reason = reason or next((value for value in (start, end) if isinstance(value, str)), None)
        if reason is None and not row["speaker"]:
            reason = "no speaker"
        if reason is None and gender is None:
            reason = f"gender {row['gender']!r} is not male, female (m, f) or empty"
        if reason is None and (start is None) != (end is None):
            reason = "give both start and end, or neither"
        if reason is None and start is not None and not start < end:
            reason = f"end {end} is not after start {start}"
        if reason is not None:
            problems.add(table.name, number, reason)
            continue
        relative = found.relative_to(root).as_posix()
        rows.append(
            {
                "segment": segment_name(relative, start),
                "source": str(found),
                "start_s": start or 0.0,
                "end_s": float("nan") if end is None else end,
                "speaker": row["speaker"],
                "gender": gender,
                "_line": (table.name, number),
            }
        )
    return rows


def _found_rows(root: Path, problems: Problems) -> list[dict]:
    rows = []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in VIDEO_SUFFIXES or path.is_dir():
            continue
        relative = path.relative_to(root).as_posix()
        reason = inside_root(root, path)
        if reason:
            problems.add(relative, 0, reason)
            continue
        rows.append(
            {"segment": segment_name(relative), "source": str(path), "start_s": 0.0, "speaker": "unknown"}
            | {"_line": (relative, 0)}
        )
    return rows


def read_corpus(root: str | Path, table: str | Path | None = None) -> AudioVisualCorpus:
    """The video files under ``root`` (or those ``table`` lists) as segments."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: folder of videos not found (unlabeled.root)")
    problems = Problems()
    if table is not None and not Path(table).is_file():
        raise FileNotFoundError(f"{table}: table of the videos not found (unlabeled.table)")
    candidates = _found_rows(root, problems) if table is None else _listed_rows(root, Path(table), problems)
    rows, first = [], {}
    for row in candidates:
        file, line = row.pop("_line")
        try:
            check_id(row["segment"])
        except ValueError as error:
            problems.add(file, line, str(error))
            continue
        if row["segment"] in first:
            problems.add(file, line, f"segment name {row['segment']} is already {first[row['segment']]}'s")
            continue
        first[row["segment"]] = row["source"]
        rows.append(row)
    return AudioVisualCorpus(segments_frame(rows), no_videos(), problems.table())
