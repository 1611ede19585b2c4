"""FERV39k-layout face-clip corpora (what the S2D video teacher is trained on): class folders of face frames.

Layout::

    <root>/<split>/<Class>/<clip>/<frame>.jpg

- ``<split>`` is ``train`` or ``test``;
- ``<Class>`` is one of :data:`CLASSES` (Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise), matched without
  regard to case; its index there is the label (the order the S2D checkpoints use);
- ``<clip>`` is a folder per clip whose id matches :data:`CLIP_ID` (letters, digits, ``.``, ``_``, ``-``; no
  ``..``) and is unique across the corpus, since ids later become file names;
- frames are image files (``.jpg``, ``.jpeg``, ``.png``, ``.bmp``) of the clip's aligned face, named so that they
  sort in time order (``00001.jpg``, ``00002.jpg``, ...; numbers inside names sort by value, so ``2.jpg`` comes
  before ``10.jpg``).

:func:`read_ferv39k` returns a :class:`Ferv39kCorpus`: ``clips`` with :data:`CLIP_COLUMNS`, one row per usable
clip, and ``problems`` (path, reason) for everything it left out: a folder with an unknown class or split, a clip
without frames, a frame that does not decode, an id that is not a safe file name or is used twice, stray files.
Reading fails (:class:`~liser.corpora.table.NothingUsable`) only when no clip is usable.

Every frame is decoded once while reading (at 1/8 scale, which JPEG decoding does cheaply), so that a broken
image is found here rather than in the middle of training.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from liser.corpora.table import NothingUsable
from liser.files import write_csv, write_json, write_parquet

__all__ = [
    "CLASSES",
    "CLIP_COLUMNS",
    "CLIP_ID",
    "FRAME_SUFFIXES",
    "SPLITS",
    "Ferv39kCorpus",
    "InvalidClipId",
    "check_clip_id",
    "frame_paths",
    "read_clip_frames",
    "read_ferv39k",
]

CLASSES = ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")
SPLITS = ("train", "test")
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
CLIP_COLUMNS = ("clip", "split", "label", "class", "n_frames", "folder")
PROBLEM_COLUMNS = ("path", "reason")
# [A-Za-z0-9], not \w: \w also matches non-ASCII letters.  A leading letter or digit rules out "." and "..".
CLIP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_CLASS_BY_NAME = {name.lower(): index for index, name in enumerate(CLASSES)}
_NUMBER = re.compile(r"([0-9]+)")


class InvalidClipId(ValueError):
    """A clip id that is not a safe file name."""


def check_clip_id(text: str) -> str:
    """``text`` if it is a usable clip id (see :data:`CLIP_ID`); otherwise raise :class:`InvalidClipId`."""
    if not isinstance(text, str) or not CLIP_ID.fullmatch(text) or ".." in text:
        raise InvalidClipId(
            f"{text!r} is not a clip id (letters, digits, '.', '_', '-', starting with a letter or digit; no '..')"
        )
    return text


def _natural_key(name: str) -> tuple:
    """Sort key in which runs of digits compare by value: 2.jpg before 10.jpg."""
    return tuple(int(part) if part.isdigit() else part for part in _NUMBER.split(name))


def _visible(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: _natural_key(p.name))


def frame_paths(folder: str | Path) -> list[Path]:
    """The frame images of a clip folder, in time order."""
    return [p for p in _visible(Path(folder)) if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES]


def read_clip_frames(folder: str | Path, start: int = 0, count: int | None = None) -> np.ndarray:
    """A clip's frames (``count`` of them from ``start``; all by default) as one (n, H, W, 3) uint8 RGB array.

    Every frame must decode and have the size of the first.
    """
    paths = frame_paths(folder)[start : None if count is None else start + count]
    frames = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{path}: not an image OpenCV can decode")
        if frames and image.shape != frames[0].shape:
            raise ValueError(
                f"{path}: {image.shape[1]}x{image.shape[0]}, but the clip's first frame is "
                f"{frames[0].shape[1]}x{frames[0].shape[0]}"
            )
        frames.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    if not frames:
        raise ValueError(f"{folder}: no frames" + (f" from frame {start}" if start else ""))
    return np.stack(frames)


@dataclass(frozen=True)
class Ferv39kCorpus:
    clips: pd.DataFrame  # CLIP_COLUMNS, sorted by split, label, clip
    problems: pd.DataFrame  # path, reason

    def summary(self) -> dict:
        """Clip and frame counts per split and class, and how many things were left out."""
        clips = self.clips
        per_class = {
            split: {
                name: int(((clips["split"] == split) & (clips["label"] == label)).sum())
                for label, name in enumerate(CLASSES)
            }
            for split in SPLITS
        }
        return {
            "clips_usable": len(clips),
            "problems": len(self.problems),
            "frames": int(clips["n_frames"].sum()),
            **{f"clips_{split}": int((clips["split"] == split).sum()) for split in SPLITS},
            "clips_per_class": per_class,
        }

    def write(self, manifest: str | Path, rejected: str | Path, metrics: str | Path) -> None:
        """The clip table (Parquet), the problems (CSV) and the summary (JSON metric)."""
        write_parquet(manifest, self.clips)
        write_csv(rejected, self.problems)
        write_json(metrics, self.summary())


def _clip_folders(root: Path, problems: list[dict]) -> Iterator[tuple[str, int, Path]]:
    """(split, label, clip folder) of every candidate clip; everything that does not fit goes to ``problems``."""
    for split_folder in _visible(root):
        if not split_folder.is_dir() or split_folder.name not in SPLITS:
            problems.append({"path": str(split_folder), "reason": f"not a split folder ({' or '.join(SPLITS)})"})
            continue
        for class_folder in _visible(split_folder):
            label = _CLASS_BY_NAME.get(class_folder.name.lower())
            if not class_folder.is_dir() or label is None:
                problems.append({"path": str(class_folder), "reason": f"unknown class; known: {', '.join(CLASSES)}"})
                continue
            for clip_folder in _visible(class_folder):
                if not clip_folder.is_dir():
                    problems.append({"path": str(clip_folder), "reason": "not a clip folder"})
                    continue
                yield split_folder.name, label, clip_folder


def _check_frames(clip_folder: Path, problems: list[dict]) -> int | str:
    """The number of frames of a clip, or the reason it is unusable; stray files go to ``problems``."""
    frames = 0
    for path in _visible(clip_folder):
        if not path.is_file() or path.suffix.lower() not in FRAME_SUFFIXES:
            problems.append({"path": str(path), "reason": f"not a frame image ({', '.join(FRAME_SUFFIXES)})"})
            continue
        if cv2.imread(str(path), cv2.IMREAD_REDUCED_COLOR_8) is None:
            return f"unreadable image {path.name}"
        frames += 1
    return frames if frames else "no frames"


def read_ferv39k(root: str | Path, progress: bool = True) -> Ferv39kCorpus:
    """Every usable clip under ``root`` (see the module docstring), and what was left out with the reason."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: FERV39k-layout folder not found")
    problems: list[dict] = []
    rows: list[dict] = []
    seen: dict[str, Path] = {}
    for split, label, folder in tqdm(
        list(_clip_folders(root, problems)), desc="FERV39k clips", unit="clip", disable=not progress
    ):
        try:
            clip = check_clip_id(folder.name)
        except InvalidClipId as error:
            problems.append({"path": str(folder), "reason": str(error)})
            continue
        if clip in seen:
            problems.append({"path": str(folder), "reason": f"clip id already used by {seen[clip]}"})
            continue
        frames = _check_frames(folder, problems)
        if isinstance(frames, str):
            problems.append({"path": str(folder), "reason": frames})
            continue
        seen[clip] = folder
        rows.append(
            {
                "clip": clip,
                "split": split,
                "label": label,
                "class": CLASSES[label],
                "n_frames": frames,
                "folder": str(folder),
            }
        )
    if not rows:
        raise NothingUsable(f"{root}: no usable FERV39k-layout clip found ({len(problems)} problems)")
    clips = pd.DataFrame(rows, columns=list(CLIP_COLUMNS))
    clips["split_order"] = clips["split"].map(SPLITS.index)
    clips = clips.sort_values(["split_order", "label", "clip"], ignore_index=True).drop(columns="split_order")
    return Ferv39kCorpus(clips, pd.DataFrame(problems, columns=list(PROBLEM_COLUMNS)))
