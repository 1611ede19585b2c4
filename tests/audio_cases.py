"""Audio that the deployment tests score: demo-like speech, and 17 bad-audio cases.

Demo-like files are spoken by the demo's voice (espeak-ng, shaped per emotion: ``liser.demo.voice``), one to three
utterances of different emotions one after another, so that the emotion changes within a file.

The bad-audio cases are the kinds of file `liser predict` meets: 8 it cannot use (each with the error it gives)
and 9 it can, though they differ from the training audio (rate, channels, format, level, length).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from liser.demo.voice import random_speaker, speak

SENTENCES = (
    "Kids are talking by the door",
    "It's eleven o'clock",
    "I'm on my way to the meeting",
    "The airplane is almost full",
    "Don't forget a jacket",
)
EMOTIONS = ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised", "calm")


def demo_like(path: Path, emotions: tuple[str, ...], seed: int, sample_rate: int = 16000) -> Path:
    """``emotions`` spoken one after another by one demo speaker, 0.3 s of room noise between them."""
    rng = np.random.default_rng(seed)
    speaker = random_speaker(rng, "female" if seed % 2 else "male")
    pieces = []
    for i, emotion in enumerate(emotions):
        if i:
            pieces.append(rng.normal(0, 1e-3, int(0.3 * sample_rate)).astype(np.float32))
        pieces.append(speak(SENTENCES[(seed + i) % len(SENTENCES)], emotion, speaker, rng, sample_rate))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.concatenate(pieces), sample_rate, subtype="PCM_16")
    return path


def demo_like_files(folder: Path, count: int = 5, sample_rate: int = 16000) -> list[Path]:
    """``count`` files of one to three utterances (about 1.5 to 8 s)."""
    files = []
    for i in range(count):
        emotions = tuple(EMOTIONS[(i + j * 3) % len(EMOTIONS)] for j in range(1 + i % 3))
        files.append(demo_like(folder / f"demo-{i}.wav", emotions, seed=i, sample_rate=sample_rate))
    return files


def _voice(seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    """A gliding, wavering tone with noise: successive windows differ."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    tone = 0.3 * np.sin(2 * np.pi * (140 + 50 * t) * t) * (1 + 0.4 * np.sin(2 * np.pi * 2.5 * t))
    return (tone + rng.normal(0, 0.02, len(t))).astype(np.float32)


def write_bad_audio_cases(folder: Path) -> dict[str, str | None]:
    """The 17 cases in ``folder``: file name -> the error `liser predict` gives, or None for a usable file."""
    folder.mkdir(parents=True, exist_ok=True)
    unusable = {
        "notes.wav": "unreadable audio",
        "empty.flac": "empty file",
        "truncated.wav": "truncated",
        "silence.wav": "digital silence",
        "blip.wav": "too short: 0.30 s",
        "missing.wav": "no such file",
        "no-samples.wav": "no audio samples",
        "noise.mp3": "unreadable audio",
    }
    (folder / "notes.wav").write_text("these are not audio samples")
    (folder / "empty.flac").write_bytes(b"")
    sf.write(str(folder / "truncated.wav"), _voice(2.0, 16000), 16000, subtype="PCM_16")
    whole = (folder / "truncated.wav").read_bytes()
    (folder / "truncated.wav").write_bytes(whole[: len(whole) // 2])
    sf.write(str(folder / "silence.wav"), np.zeros(32000, dtype=np.int16), 16000, subtype="PCM_16")
    sf.write(str(folder / "blip.wav"), _voice(0.3, 16000), 16000, subtype="PCM_16")
    sf.write(str(folder / "no-samples.wav"), np.zeros(0, dtype=np.int16), 16000, subtype="PCM_16")
    (folder / "noise.mp3").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())

    usable = {
        "phone-8k-stereo.wav": (_voice(3.2, 8000)[:, None] * [1.0, 0.7], 8000, "PCM_16"),
        "studio-48k.wav": (_voice(5.3, 48000, seed=1), 48000, "PCM_16"),
        "cd-44k1.flac": (_voice(4.1, 44100, seed=2), 44100, "PCM_16"),
        "podcast-22k05.mp3": (_voice(3.5, 22050, seed=3), 22050, None),
        "shortest-0.5s.wav": (_voice(0.5, 16000, seed=4), 16000, "PCM_16"),
        "hot-float.wav": (4.0 * _voice(3.0, 16000, seed=5), 16000, "FLOAT"),  # beyond full scale, as floats allow
        "whisper.wav": (1e-3 * _voice(3.3, 16000, seed=6), 16000, "PCM_16"),
        "dc-24bit.wav": (0.2 + 0.5 * _voice(6.2, 16000, seed=7), 16000, "PCM_24"),
        "late-start.wav": (np.concatenate([np.zeros(64000, np.float32), _voice(1.0, 16000, seed=8)]), 16000, "PCM_16"),
    }
    for name, (samples, rate, subtype) in usable.items():
        sf.write(str(folder / name), samples, rate, **({"subtype": subtype} if subtype else {}))
    return {**unusable, **dict.fromkeys(usable)}
