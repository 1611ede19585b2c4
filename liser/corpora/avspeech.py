"""AVSpeech as distributed: CSV files without a header (``avspeech_train.csv``, ``avspeech_test.csv``), one row per
segment: ``YouTube id, start seconds, end seconds, x, y``, where x and y are the speaker's face centre as a fraction
of the frame's width and height at the segment's first frame.

A segment is named ``<YouTube id>_<start in ms, 8 digits>`` (``AvWWVOgaMlk_00090023``) and its video is fetched
from ``https://www.youtube.com/watch?v=<id>``.  The listed face position picks the speaker's face when several are
seen.  AVSpeech names no speakers: each video stands in for one (``speaker`` is its id), and genders are
``unknown``.  Every row that cannot be used is a problem with its line and reason: a wrong field count, a
malformed id, a time or position that is not a number or out of range, a segment listed twice.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from liser.corpora.audiovisual import VIDEO_COLUMNS, AudioVisualCorpus, Problems, segments_frame

__all__ = ["read_corpus", "watch_url"]

YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")
NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def watch_url(video: str) -> str:
    return f"https://www.youtube.com/watch?v={video}"


def _number(text: str, what: str, low: float, high: float) -> float | str:
    if not NUMBER.fullmatch(text):
        return f"{what} {text!r} is not a number"
    value = float(text)
    if not (math.isfinite(value) and low <= value <= high):
        return f"{what} {text} is out of range [{low:g}, {high:g}]"
    return value


def read_corpus(table: str | Path) -> AudioVisualCorpus:
    """The segments of an AVSpeech CSV, with their videos to download."""
    table = Path(table)
    if not table.is_file():
        raise FileNotFoundError(f"{table}: AVSpeech table not found (unlabeled.table)")
    problems = Problems()
    rows, seen = [], {}
    text = table.read_text(encoding="utf-8-sig", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 5:
            problems.add(table.name, number, f"expected 5 comma-separated fields, got {len(fields)}")
            continue
        video, *numbers = fields
        if not YOUTUBE_ID.fullmatch(video):
            problems.add(table.name, number, f"{video!r} is not a YouTube id (11 of A-Z a-z 0-9 _ -)")
            continue
        start, end = (_number(value, what, 0, 1e6) for value, what in zip(numbers[:2], ("start", "end")))
        x, y = (_number(value, what, 0, 1) for value, what in zip(numbers[2:], ("face x", "face y")))
        reason = next((value for value in (start, end, x, y) if isinstance(value, str)), None)
        if reason is None and not start < end:
            reason = f"end {numbers[1]} is not after start {numbers[0]}"
        segment = f"{video}_{round(start * 1000):08d}" if reason is None else ""
        if reason is None and segment in seen:
            reason = f"{video} from {numbers[0]} s listed again (first on line {seen[segment]})"
        if reason is not None:
            problems.add(table.name, number, reason)
            continue
        seen[segment] = number
        rows.append(
            {"segment": segment, "source": video, "start_s": start, "end_s": end, "speaker": video}
            | {"face_x": x, "face_y": y}
        )
    segments = segments_frame(rows)
    videos = sorted(set(segments["source"]))
    table_of_videos = pd.DataFrame(
        [(video, watch_url(video), watch_url(video)) for video in videos], columns=list(VIDEO_COLUMNS)
    )
    return AudioVisualCorpus(segments, table_of_videos, problems.table())
