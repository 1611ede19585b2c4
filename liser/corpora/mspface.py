"""MSP-Face, the unlabeled audio-visual corpus, as its four published lists describe it.

The corpus is distributed as lists, not media: ``link_videos.txt`` (video -> YouTube URL;
a path relative to the lists' folder, as the embedded demo writes, becomes a file:// URL),
``segments_data.txt`` (start and end in seconds of each segment of a video),
``speaker_id_segments.txt`` (segment -> speaker) and ``speaker_id_gender.txt``
(speaker -> Male/Female).  :func:`read_lists` turns them into a videos table and a
segments table; every line that cannot be used is listed with its file, line number and
reason instead of stopping the read.  :func:`read_corpus` gives them as any unlabeled
corpus reader does (:mod:`liser.corpora.audiovisual`).

Ids later become file names (``videos/<video>.mp4``, ``segments/<segment>.wav``), so they
are checked against a strict pattern here, before they can reach a path.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from liser.corpora.audiovisual import AudioVisualCorpus, InvalidId, Problems, segments_frame

__all__ = [
    "LIST_FILES",
    "SEGMENT_COLUMNS",
    "VIDEO_COLUMNS",
    "InvalidId",
    "MspFaceLists",
    "check_segment_id",
    "check_video_id",
    "read_corpus",
    "read_lists",
]

VIDEOS_FILE = "link_videos.txt"
SEGMENTS_FILE = "segments_data.txt"
SPEAKERS_FILE = "speaker_id_segments.txt"
GENDERS_FILE = "speaker_id_gender.txt"
LIST_FILES = (VIDEOS_FILE, SEGMENTS_FILE, SPEAKERS_FILE, GENDERS_FILE)

VIDEO_COLUMNS = ("video", "url", "listed")  # url: what is fetched; listed: as the list gives it
SEGMENT_COLUMNS = ("segment", "video", "start", "end", "duration", "speaker", "gender")

# [0-9], not \d: \d also matches non-ASCII digits.  fullmatch, not $: $ also matches
# before a trailing newline.
VIDEO_ID = re.compile(r"MSP-FACE_[0-9]{4}")
SEGMENT_ID = re.compile(r"(MSP-FACE_[0-9]{4})_[0-9]{4}")
SPEAKER_ID = re.compile(r"Speaker_[0-9]+")
URL = re.compile(r"(?:https?|file)://\S+")
# A path relative to the lists' folder, as the embedded demo writes them: no "..", no root.
RELATIVE_URL = re.compile(r"(?:[A-Za-z0-9_-]+/)*[A-Za-z0-9_-][A-Za-z0-9_.-]*\.mp4")
NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
GENDERS = {"male": "male", "female": "female"}


def check_video_id(text: str) -> str:
    """``text`` if it is a video id like ``MSP-FACE_0001``; otherwise raise :class:`InvalidId`."""
    if not isinstance(text, str) or not VIDEO_ID.fullmatch(text):
        raise InvalidId(f"{text!r} is not a video id (MSP-FACE_ and 4 digits)")
    return text


def check_segment_id(text: str) -> str:
    """``text`` if it is a segment id like ``MSP-FACE_0001_0001``; otherwise raise :class:`InvalidId`."""
    if not isinstance(text, str) or not SEGMENT_ID.fullmatch(text):
        raise InvalidId(f"{text!r} is not a segment id (MSP-FACE_, 4 digits, _, 4 digits)")
    return text


@dataclass(frozen=True)
class MspFaceLists:
    videos: pd.DataFrame  # VIDEO_COLUMNS, one row per listed video
    segments: pd.DataFrame  # SEGMENT_COLUMNS, one row per usable segment
    problems: pd.DataFrame  # file, line, reason: every line or segment that was left out

    def summary(self) -> dict:
        speakers = self.segments.drop_duplicates("speaker")
        return {
            "videos": len(self.videos),
            "segments": len(self.segments),
            "hours": float(self.segments["duration"].sum() / 3600),
            "speakers": len(speakers),
            "speakers_female": int((speakers["gender"] == "female").sum()),
            "problems": len(self.problems),
        }


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text without surrounding whitespace) of every non-blank line.

    The published lists mix CRLF and LF endings and some lines end in a space.  Bytes that
    are not UTF-8 become U+FFFD, so such a line fails its pattern instead of the whole read.
    """
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped:
            yield number, stripped


def _fields(line: str, separator: str, count: int) -> list[str] | str:
    fields = [field.strip() for field in line.split(separator)]
    if len(fields) != count:
        name = "tab" if separator == "\t" else "comma"
        return f"expected {count} {name}-separated fields, got {len(fields)}"
    return fields


def _media_name_id(name: str, pattern: re.Pattern) -> str | None:
    """The id in ``<id>.mp4``, or None if ``name`` is not exactly that."""
    if not name.endswith(".mp4"):
        return None
    stem = name[: -len(".mp4")]
    return stem if pattern.fullmatch(stem) else None


def _seconds(text: str, what: str) -> float | str:
    if not NUMBER.fullmatch(text):
        return f"{what} {text!r} is not a number"
    value = float(text)
    if not math.isfinite(value):
        return f"{what} {text!r} is not finite"
    if value < 0:
        return f"{what} {text} is negative"
    return value


def _read_videos(path: Path, problems: Problems) -> dict[str, tuple[str, str]]:
    """video -> (URL to fetch, the URL or relative path as listed)."""
    urls: dict[str, tuple[str, str]] = {}
    first_line: dict[str, int] = {}
    for number, line in _lines(path):
        fields = _fields(line, "\t", 2)
        if isinstance(fields, str):
            problems.add(path.name, number, fields)
            continue
        name, url = fields
        video = _media_name_id(name, VIDEO_ID)
        if video is None:
            problems.add(path.name, number, f"{name!r} is not a video file name MSP-FACE_NNNN.mp4")
        elif not (URL.fullmatch(url) or RELATIVE_URL.fullmatch(url)):
            problems.add(path.name, number, f"{url!r} is not an http(s):// or file:// URL, nor a relative .mp4 path")
        elif video in urls:
            problems.add(path.name, number, f"{video} listed again (first on line {first_line[video]})")
        else:
            urls[video] = (url if URL.fullmatch(url) else (path.parent / url).resolve().as_uri(), url)
            first_line[video] = number
    return urls


def _read_segment_times(path: Path, problems: Problems) -> tuple[dict[str, tuple[int, float, float]], set[str]]:
    """segment -> (line, start, end) for usable lines, and every well-formed segment id seen."""
    times: dict[str, tuple[int, float, float]] = {}
    seen: set[str] = set()
    for number, line in _lines(path):
        fields = _fields(line, "\t", 3)
        if isinstance(fields, str):
            problems.add(path.name, number, fields)
            continue
        start_text, end_text, name = fields
        segment = _media_name_id(name, SEGMENT_ID)
        if segment is None:
            problems.add(path.name, number, f"{name!r} is not a segment file name MSP-FACE_NNNN_NNNN.mp4")
            continue
        if segment in seen:
            problems.add(path.name, number, f"{segment} listed again")
            continue
        seen.add(segment)
        start, end = _seconds(start_text, "start"), _seconds(end_text, "end")
        if isinstance(start, str) or isinstance(end, str):
            problems.add(path.name, number, start if isinstance(start, str) else end)
        elif not start < end:
            problems.add(path.name, number, f"end {end_text} is not after start {start_text}")
        else:
            times[segment] = (number, start, end)
    return times, seen


def _read_speakers(path: Path, problems: Problems, segments_seen: set[str]) -> dict[str, str]:
    speakers: dict[str, str] = {}
    for number, line in _lines(path):
        fields = _fields(line, ",", 2)
        if isinstance(fields, str):
            problems.add(path.name, number, fields)
            continue
        name, speaker = fields
        segment = _media_name_id(name, SEGMENT_ID)
        if segment is None:
            problems.add(path.name, number, f"{name!r} is not a segment file name MSP-FACE_NNNN_NNNN.mp4")
        elif not SPEAKER_ID.fullmatch(speaker):
            problems.add(path.name, number, f"{speaker!r} is not a speaker id Speaker_N")
        elif segment not in segments_seen:
            problems.add(path.name, number, f"{segment} is not in {SEGMENTS_FILE}")
        elif segment in speakers and speakers[segment] != speaker:
            problems.add(path.name, number, f"{segment} already given to {speakers[segment]}")
        else:
            speakers[segment] = speaker
    return speakers


def _read_genders(path: Path, problems: Problems) -> dict[str, str]:
    genders: dict[str, str] = {}
    for number, line in _lines(path):
        fields = _fields(line, ",", 2)
        if isinstance(fields, str):
            problems.add(path.name, number, fields)
            continue
        speaker, gender = fields
        if not SPEAKER_ID.fullmatch(speaker):
            problems.add(path.name, number, f"{speaker!r} is not a speaker id Speaker_N")
        elif gender.lower() not in GENDERS:
            problems.add(path.name, number, f"gender {gender!r} is not Male or Female")
        elif speaker in genders and genders[speaker] != GENDERS[gender.lower()]:
            problems.add(path.name, number, f"{speaker} already listed as {genders[speaker]}")
        else:
            genders[speaker] = GENDERS[gender.lower()]
    return genders


def read_lists(folder: str | Path) -> MspFaceLists:
    """Read the four MSP-Face lists in ``folder`` into videos, segments and problems tables.

    A segment is kept only if its line is well formed, its video has a URL and its
    speaker has a gender; every other line or segment is a row of ``problems``.
    """
    folder = Path(folder)
    missing = [name for name in LIST_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: MSP-Face list file(s) not found: {', '.join(missing)}")

    problems = Problems()
    urls = _read_videos(folder / VIDEOS_FILE, problems)
    times, segments_seen = _read_segment_times(folder / SEGMENTS_FILE, problems)
    speakers = _read_speakers(folder / SPEAKERS_FILE, problems, segments_seen)
    genders = _read_genders(folder / GENDERS_FILE, problems)

    rows = []
    for segment, (number, start, end) in times.items():
        video = SEGMENT_ID.fullmatch(segment).group(1)
        speaker = speakers.get(segment)
        if video not in urls:
            problems.add(SEGMENTS_FILE, number, f"video {video} of {segment} is not in {VIDEOS_FILE}")
        elif speaker is None:
            problems.add(SEGMENTS_FILE, number, f"{segment} has no speaker in {SPEAKERS_FILE}")
        elif speaker not in genders:
            problems.add(SEGMENTS_FILE, number, f"speaker {speaker} of {segment} has no gender in {GENDERS_FILE}")
        else:
            rows.append((segment, video, start, end, end - start, speaker, genders[speaker]))

    videos = pd.DataFrame([(video, *urls[video]) for video in sorted(urls)], columns=list(VIDEO_COLUMNS))
    segments = pd.DataFrame(sorted(rows), columns=list(SEGMENT_COLUMNS)).astype(
        {"start": "float64", "end": "float64", "duration": "float64"}
    )
    return MspFaceLists(videos=videos, segments=segments, problems=problems.table())


def read_corpus(folder: str | Path) -> AudioVisualCorpus:
    """The lists in ``folder`` as an unlabeled corpus: each segment's source is its video, to download."""
    lists = read_lists(folder)
    rows = [
        {"segment": row.segment, "source": row.video, "start_s": row.start, "end_s": row.end}
        | {"speaker": row.speaker, "gender": row.gender}
        for row in lists.segments.itertuples()
    ]
    return AudioVisualCorpus(segments_frame(rows), lists.videos, lists.problems)
