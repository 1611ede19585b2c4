"""RAVDESS speech, as distributed: ``Actor_XX/03-01-EE-II-SS-RR-AA.wav`` (48 kHz).

Fields of the name: modality, vocal channel, emotion, intensity, statement, repetition,
actor.  Only audio-only speech (modality 03, channel 01) is used; odd actors are male.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from liser.corpora.table import CorpusTable, build_table
from liser.params import CorpusParams

__all__ = ["EMOTIONS", "read", "parse_name"]

NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)\.wav$")
ACTOR_FOLDER = re.compile(r"^Actor_(\d\d)$")
EMOTION_CODES = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}
EMOTIONS = tuple(EMOTION_CODES.values())


def parse_name(name: str, folder_actor: str | None = None) -> dict | str:
    """Fields of a RAVDESS file name, or the reason it is not a usable speech file."""
    match = NAME.match(name)
    if not match:
        return "name does not follow MM-VV-EE-II-SS-RR-AA.wav"
    modality, channel, emotion, intensity, statement, repetition, actor = match.groups()
    if modality != "03":
        return f"modality {modality} is not audio-only (03)"
    if channel != "01":
        return f"vocal channel {channel} is not speech (01)"
    if emotion not in EMOTION_CODES:
        return f"unknown emotion code {emotion}"
    if intensity not in ("01", "02") or (emotion == "01" and intensity == "02"):
        return f"invalid intensity {intensity} for emotion {emotion}"
    if statement not in ("01", "02") or repetition not in ("01", "02"):
        return f"invalid statement {statement} or repetition {repetition}"
    if not 1 <= int(actor) <= 24:
        return f"actor {actor} outside 01-24"
    if folder_actor is not None and folder_actor != actor:
        return f"actor {actor} in the name but the file is in Actor_{folder_actor}"
    return {
        "speaker": f"Actor_{actor}",
        "gender": "male" if int(actor) % 2 else "female",
        "emotion": EMOTION_CODES[emotion],
        "statement": statement,
        "intensity": intensity,
    }


def _parsed(root: Path) -> Iterator[tuple[Path, dict | str]]:
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        folder_match = ACTOR_FOLDER.match(folder.name)
        for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
            if not folder_match:
                yield path, "not inside an Actor_XX folder"
            else:
                yield path, parse_name(path.name, folder_match.group(1))


def read(name: str, corpus: CorpusParams, classes: tuple[str, ...]) -> CorpusTable:
    root = Path(corpus.root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: RAVDESS folder not found (set corpora.{name}.root in params.yaml)")
    return build_table(name, classes, root, _parsed(root), corpus.min_seconds)
