"""CREMA-D, as distributed: ``AudioWAV/ActorID_Sentence_Emotion_Level.wav`` (16 kHz),
with each actor's sex in ``VideoDemographics.csv`` at the corpus root."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from liser.corpora.table import CorpusError, CorpusTable, build_table
from liser.params import CorpusParams

__all__ = ["EMOTIONS", "read", "parse_name", "read_genders"]

NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})\.wav$")
SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
EMOTION_CODES = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
EMOTIONS = tuple(EMOTION_CODES.values())
LEVELS = ("LO", "MD", "HI", "XX")


def read_genders(csv_path: Path) -> dict[str, str]:
    """ActorID -> "male"/"female" from VideoDemographics.csv."""
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path}: CREMA-D demographics file not found")
    demographics = pd.read_csv(csv_path, dtype=str)
    missing = {"ActorID", "Sex"} - set(demographics.columns)
    if missing:
        raise CorpusError(f"{csv_path}: missing column(s) {', '.join(sorted(missing))}")
    return {row.ActorID.strip(): row.Sex.strip().lower() for row in demographics.itertuples()}


def parse_name(name: str, genders: dict[str, str]) -> dict | str:
    """Fields of a CREMA-D file name, or the reason it is not usable."""
    match = NAME.match(name)
    if not match:
        return "name does not follow ActorID_Sentence_Emotion_Level.wav"
    actor, sentence, emotion, level = match.groups()
    if not 1001 <= int(actor) <= 1091:
        return f"actor {actor} outside 1001-1091"
    if sentence not in SENTENCES:
        return f"unknown sentence code {sentence}"
    if emotion not in EMOTION_CODES:
        return f"unknown emotion code {emotion}"
    if level not in LEVELS:
        return f"unknown level code {level}"
    gender = genders.get(actor)
    if gender not in ("male", "female"):
        return f"actor {actor} has no Male/Female entry in VideoDemographics.csv"
    return {
        "speaker": actor,
        "gender": gender,
        "emotion": EMOTION_CODES[emotion],
        "statement": sentence,
        "intensity": level,
    }


def _parsed(audio: Path, genders: dict[str, str]) -> Iterator[tuple[Path, dict | str]]:
    for path in sorted(p for p in audio.iterdir() if p.is_file() and not p.name.startswith(".")):
        yield path, parse_name(path.name, genders)


def read(name: str, corpus: CorpusParams, classes: tuple[str, ...]) -> CorpusTable:
    root = Path(corpus.root)
    audio = root / "AudioWAV"
    if not audio.is_dir():
        raise FileNotFoundError(f"{audio}: CREMA-D AudioWAV folder not found (set corpora.{name}.root in params.yaml)")
    genders = read_genders(root / "VideoDemographics.csv")
    return build_table(name, classes, root, _parsed(audio, genders), corpus.min_seconds)
