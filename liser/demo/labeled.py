"""Demo RAVDESS and CREMA-D: synthetic speech in the corpora's exact layouts and file names.

Each file is made from its own seed (corpus, actor, file), so it is the same whatever
else the demo contains.  With ``broken_files`` the demo also carries the kinds of damage
real copies have (an empty file, a truncated one, a stray name) for the readers to report.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from tqdm import tqdm

from liser.corpora import ravdess
from liser.demo.voice import random_speaker, speak

__all__ = ["write_ravdess", "write_crema_d"]

RAVDESS_STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
CREMA_D_SENTENCES = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "DFA": "Don't forget a jacket",
}
CREMA_D_EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fearful", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
CREMA_D_LEVELS = {"LO": 0.6, "MD": 0.85, "HI": 1.2, "XX": 1.0}


def _rng(seed: int, *keys: str | int) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(str(k).encode()) for k in keys)])


def _write_wav(path: Path, waveform: np.ndarray, sample_rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), waveform, sample_rate, subtype="PCM_16")


def _truncate(path: Path) -> None:
    """Cut the file short while its header still promises all the samples (a failed copy)."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def write_ravdess(root: Path, actors: int, seed: int, broken_files: bool) -> int:
    """``root/Actor_XX/03-01-EE-II-SS-01-XX.wav`` at 48 kHz; returns the number of files."""
    jobs = []
    for actor in range(1, actors + 1):
        gender = "male" if actor % 2 else "female"
        speaker = random_speaker(_rng(seed, "ravdess-speaker", actor), gender)
        for code, emotion in ravdess.EMOTION_CODES.items():
            for statement, text in RAVDESS_STATEMENTS.items():
                # RAVDESS has no strong neutral; the demo speaks statement 02 strongly for the rest
                intensity = "02" if statement == "02" and code != "01" else "01"
                name = f"03-01-{code}-{intensity}-{statement}-01-{actor:02d}.wav"
                jobs.append((root / f"Actor_{actor:02d}" / name, text, emotion, speaker, intensity))
    for path, text, emotion, speaker, intensity in tqdm(jobs, desc="demo RAVDESS", unit="file"):
        rng = _rng(seed, "ravdess", path.name)
        waveform = speak(text, emotion, speaker, rng, 48000, intensity=1.3 if intensity == "02" else 1.0)
        _write_wav(path, waveform, 48000)
    if broken_files:
        _truncate(root / "Actor_03" / "03-01-05-02-02-01-03.wav")
        (root / "Actor_04" / "03-01-05-01-01-01-04 (copy).wav").write_bytes(b"")
    return len(jobs)


def write_crema_d(root: Path, actors: int, seed: int, broken_files: bool) -> int:
    """``root/AudioWAV/ActorID_Sentence_Emotion_Level.wav`` at 16 kHz plus VideoDemographics.csv."""
    demographics, jobs = [], []
    for index in range(actors):
        actor = 1001 + index
        gender = "female" if index % 2 else "male"
        speaker = random_speaker(_rng(seed, "crema_d-speaker", actor), gender)
        demographics.append(
            {
                "ActorID": actor,
                "Age": int(_rng(seed, "age", actor).integers(20, 70)),
                "Sex": gender.title(),
                "Race": "Unknown",
                "Ethnicity": "Not Hispanic",
            }
        )
        others = [s for s in CREMA_D_SENTENCES if s != "IEO"]
        spoken = ["IEO", *sorted(_rng(seed, "sentences", actor).choice(others, 2, replace=False))]
        for sentence in spoken:
            for code, emotion in CREMA_D_EMOTIONS.items():
                # as in CREMA-D, only IEO comes in graded levels, and neutral never does
                level = "XX" if sentence != "IEO" or code == "NEU" else ("LO", "MD", "HI")[(index + len(jobs)) % 3]
                path = root / "AudioWAV" / f"{actor}_{sentence}_{code}_{level}.wav"
                jobs.append((path, CREMA_D_SENTENCES[sentence], emotion, speaker, level))
    for path, text, emotion, speaker, level in tqdm(jobs, desc="demo CREMA-D", unit="file"):
        rng = _rng(seed, "crema_d", path.name)
        _write_wav(path, speak(text, emotion, speaker, rng, 16000, intensity=CREMA_D_LEVELS[level]), 16000)
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(demographics).to_csv(root / "VideoDemographics.csv", index=False)
    if broken_files:
        # some real copies hold empty files (e.g. 1076_MTI_SAD_XX.wav)
        last_sad = next(path for path, *_, level in reversed(jobs) if path.name.endswith("_SAD_XX.wav"))
        last_sad.write_bytes(b"")
    return len(jobs)
