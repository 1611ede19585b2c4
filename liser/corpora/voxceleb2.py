"""VoxCeleb2 as distributed: ``<set>/mp4/<speaker>/<YouTube id>/<clip>.mp4`` (``dev``, ``test``), read in place.

- Speaker ids are ``id`` and 5 digits; YouTube ids 11 characters of ``[A-Za-z0-9_-]``; clips ``00001.mp4`` and on.
  A segment is a whole clip, named ``<speaker>_<YouTube id>_<clip>`` (``id00012_21Uxsk56VDQ_00001``); every file
  that is not such a clip (another name, a link leading out of the corpus folder, an empty file) is a problem.
- ``vox2_meta.csv`` (a header, then VoxCeleb2 id, VGGFace2 id, gender ``m``/``f``, set; spaces may follow the
  commas) gives the speakers' genders when it is there; speakers it does not list are ``unknown``.
- A clip's face track ``txt/<speaker>/<YouTube id>/<clip>.txt`` (under the corpus folder or under ``<set>/``), when
  there, is the clip's listed face boxes (``faces.boxes: listed``, :func:`read_face_boxes`).

The clips are already face tracks of one speaker at 25 fps; the faces stage reads them at ``windows.fps``.  These
layouts follow the corpus's documentation and were not checked against a real copy here.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np

from liser.corpora.audiovisual import GENDERS, AudioVisualCorpus, Problems, inside_root, no_videos, segments_frame

__all__ = ["META_FILE", "read_corpus", "read_face_boxes", "read_genders"]

log = logging.getLogger(__name__)

META_FILE = "vox2_meta.csv"
SPEAKER = re.compile(r"id[0-9]{5}")
YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")
CLIP = re.compile(r"([0-9]{5})\.mp4")


def read_genders(path: Path, problems: Problems) -> dict[str, str]:
    """speaker -> male / female from ``vox2_meta.csv``; malformed lines are problems."""
    genders: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    header = [field.strip().lower() for field in lines[0].split(",")] if lines else []
    column = next((i for i, name in enumerate(header) if "gender" in name), 2)
    for number, line in enumerate(lines[1:], start=2):
        fields = [field.strip() for field in line.split(",")]
        if not line.strip():
            continue
        if len(fields) <= column or not SPEAKER.fullmatch(fields[0]):
            problems.add(path.name, number, f"not a speaker line (VoxCeleb2 id, VGGFace2 id, gender, set): {line!r}")
        elif fields[column].lower() not in GENDERS:
            problems.add(path.name, number, f"gender {fields[column]!r} is not m or f")
        else:
            genders[fields[0]] = GENDERS[fields[column].lower()]
    return genders


def read_face_boxes(path: str | Path) -> np.ndarray:
    """(frames, 4) float: the x, y, w, h of a clip's face in each frame, as fractions of the frame, from its
    ``txt`` file (header lines ``Key : value``, then ``FRAME X Y W H`` and one row per frame).  Row j is the clip's
    frame j.  Raises ValueError naming the file and line when the table cannot be read."""
    path = Path(path)
    rows, in_table = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        fields = line.split()
        if not in_table:
            in_table = bool(fields) and fields[0].upper() == "FRAME"
            continue
        if not fields:
            continue
        try:
            values = [float(field) for field in fields[1:5]]
        except ValueError:
            raise ValueError(f"{path}:{number}: not a FRAME X Y W H row: {line.strip()!r}") from None
        if len(values) != 4 or not all(np.isfinite(values)):
            raise ValueError(f"{path}:{number}: not a FRAME X Y W H row: {line.strip()!r}")
        rows.append(values)
    if not rows:
        raise ValueError(f"{path}: no FRAME X Y W H table")
    return np.array(rows, dtype=float)


def _sorted_entries(folder: Path) -> list[os.DirEntry]:
    with os.scandir(folder) as entries:
        return sorted(entries, key=lambda entry: entry.name)


def _boxes_file(root: Path, subset: str, speaker: str, video: str, clip: str) -> str:
    for folder in (root / "txt", root / subset / "txt"):
        candidate = folder / speaker / video / f"{clip}.txt"
        if candidate.is_file():
            return str(candidate)
    return ""


def read_corpus(root: str | Path, sets: list[str] | tuple[str, ...] = ("dev",)) -> AudioVisualCorpus:
    """The clips of ``sets`` under ``root`` as segments (speaker: the id folder; gender from ``vox2_meta.csv``)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: VoxCeleb2 folder not found (unlabeled.root)")
    problems = Problems()
    meta = root / META_FILE
    genders = read_genders(meta, problems) if meta.is_file() else {}
    rows = []
    for subset in sets:
        clips = root / subset / "mp4"
        if not clips.is_dir():
            raise FileNotFoundError(f"{clips}: not found; VoxCeleb2's {subset} set is {subset}/mp4/<id>/<video>/")
        for speaker_entry in _sorted_entries(clips):
            relative = f"{subset}/mp4/{speaker_entry.name}"
            if not SPEAKER.fullmatch(speaker_entry.name) or not speaker_entry.is_dir():
                problems.add(relative, 0, "not a speaker folder (id and 5 digits)")
                continue
            for video_entry in _sorted_entries(Path(speaker_entry.path)):
                if not YOUTUBE_ID.fullmatch(video_entry.name) or not video_entry.is_dir():
                    problems.add(f"{relative}/{video_entry.name}", 0, "not a video folder (an 11-character YouTube id)")
                    continue
                for clip_entry in _sorted_entries(Path(video_entry.path)):
                    path = Path(clip_entry.path)
                    name = f"{relative}/{video_entry.name}/{clip_entry.name}"
                    clip = CLIP.fullmatch(clip_entry.name)
                    reason = "not a clip (5 digits .mp4)" if clip is None else inside_root(root, path)
                    if reason:
                        problems.add(name, 0, reason)
                        continue
                    speaker, video = speaker_entry.name, video_entry.name
                    rows.append(
                        {
                            "segment": f"{speaker}_{video}_{clip.group(1)}",
                            "source": str(path),
                            "start_s": 0.0,
                            "speaker": speaker,
                            "gender": genders.get(speaker, "unknown"),
                            "boxes": _boxes_file(root, subset, speaker, video, clip.group(1)),
                        }
                    )
    log.info("VoxCeleb2 %s: %d clips, %d problems", "+".join(sets), len(rows), len(problems.rows))
    return AudioVisualCorpus(segments_frame(rows), no_videos(), problems.table())
