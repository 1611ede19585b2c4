"""Emotional speech synthesised with espeak-ng, for the embedded demo corpora.

An emotion is carried by several cues at once (pitch level and range, speaking rate,
loudness, pauses, breathiness, tremor and spectral tilt), each departing from a
speaker's own neutral voice.  How far it departs depends on the speaker's
expressiveness, the utterance's intensity and per-utterance jitter, and speakers differ
in voice, pitch, rate, loudness and recording channel: no single cue separates the
classes with one threshold, so a model has to learn the combination.
"""

from __future__ import annotations

import io
import subprocess
from dataclasses import dataclass, fields

import numpy as np
import soundfile as sf
from scipy.signal import butter, resample_poly, sosfilt

__all__ = ["CUES", "EMOTIONS", "Speaker", "random_speaker", "speak", "ESPEAK_RATE"]

ESPEAK_RATE = 22050


@dataclass(frozen=True)
class Cue:
    """How an emotion departs from a speaker's neutral voice, at full intensity."""

    pitch: float  # relative shift of the pitch level (0.2 = +20 %)
    range: float  # relative change of the pitch range
    rate: float  # relative change of the speaking rate
    gain_db: float  # loudness
    pause_s: float  # mean pause inserted after a word, seconds
    breath: float  # breathy noise, 0..1
    tremor: float  # depth of a 5-7 Hz amplitude tremor, 0..1
    tilt: float  # spectral tilt: > 0 brighter (pressed), < 0 darker (lax)


CUES: dict[str, Cue] = {
    "neutral": Cue(pitch=0.00, range=0.0, rate=0.00, gain_db=0.0, pause_s=0.00, breath=0.0, tremor=0.0, tilt=0.0),
    "calm": Cue(pitch=-0.06, range=-0.4, rate=-0.15, gain_db=-4.0, pause_s=0.08, breath=0.35, tremor=0.0, tilt=-0.6),
    "happy": Cue(pitch=0.18, range=0.9, rate=0.12, gain_db=2.5, pause_s=0.00, breath=0.0, tremor=0.0, tilt=0.5),
    "sad": Cue(pitch=-0.14, range=-0.6, rate=-0.28, gain_db=-5.0, pause_s=0.18, breath=0.45, tremor=0.25, tilt=-0.7),
    "angry": Cue(pitch=0.08, range=0.5, rate=0.15, gain_db=7.0, pause_s=0.00, breath=0.0, tremor=0.0, tilt=1.0),
    "fearful": Cue(pitch=0.28, range=0.2, rate=0.22, gain_db=-1.5, pause_s=0.10, breath=0.3, tremor=0.7, tilt=0.1),
    "disgust": Cue(pitch=-0.10, range=0.4, rate=-0.22, gain_db=1.5, pause_s=0.22, breath=0.15, tremor=0.0, tilt=0.6),
    "surprised": Cue(pitch=0.34, range=1.2, rate=0.02, gain_db=3.5, pause_s=0.05, breath=0.1, tremor=0.0, tilt=0.3),
}
EMOTIONS = tuple(CUES)

MALE_VOICES = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "adam", "Andy", "benjamin", "david", "edward", "john", "paul")
FEMALE_VOICES = ("f1", "f2", "f3", "f4", "f5", "Alicia", "Andrea", "Annie", "aunty", "belinda", "linda", "steph")


@dataclass(frozen=True)
class Speaker:
    gender: str  # "male" | "female"
    voice: str  # espeak-ng voice variant
    pitch: int  # espeak-ng base pitch, 0..99
    rate: int  # words per minute
    gain_db: float  # recording level
    expressiveness: float  # scales every emotional departure
    lowpass_hz: float  # recording channel bandwidth
    noise_db: float  # background noise level (dBFS)


def random_speaker(rng: np.random.Generator, gender: str) -> Speaker:
    voices = MALE_VOICES if gender == "male" else FEMALE_VOICES
    return Speaker(
        gender=gender,
        voice=str(rng.choice(voices)),
        pitch=int(rng.integers(30, 71)),
        rate=int(rng.integers(145, 195)),
        gain_db=float(rng.uniform(-5, 3)),
        expressiveness=float(rng.uniform(0.6, 1.3)),
        lowpass_hz=float(rng.uniform(3800, 7500)),
        noise_db=float(rng.uniform(-62, -42)),
    )


def _utterance_cue(emotion: str, intensity: float, speaker: Speaker, rng: np.random.Generator) -> Cue:
    """The emotion's cue scaled by speaker and intensity, with per-utterance jitter on every dimension."""
    base = CUES[emotion]
    scale = speaker.expressiveness * intensity
    spread = {
        "pitch": 0.05,
        "range": 0.25,
        "rate": 0.06,
        "gain_db": 1.5,
        "pause_s": 0.04,
        "breath": 0.08,
        "tremor": 0.08,
        "tilt": 0.25,
    }
    values = {}
    for field in fields(Cue):
        value = getattr(base, field.name) * scale * rng.uniform(0.7, 1.3) + rng.normal(0, spread[field.name])
        values[field.name] = value
    for name in ("pause_s", "breath", "tremor"):
        values[name] = max(0.0, values[name])
    return Cue(**values)


def _ssml(text: str, cue: Cue, rng: np.random.Generator) -> str:
    words = text.split()
    spoken = []
    for i, word in enumerate(words):
        spoken.append(word)
        if i < len(words) - 1 and cue.pause_s > 0.02 and rng.random() < 0.45:
            spoken.append(f'<break time="{int(1000 * rng.exponential(cue.pause_s))}ms"/>')
    pitch = f"{100 * cue.pitch:+.0f}%"
    pitch_range = f"{max(10.0, 100 * (1 + cue.range)):.0f}%"
    return f'<speak><prosody pitch="{pitch}" range="{pitch_range}">{" ".join(spoken)}</prosody></speak>'


def _espeak(ssml: str, speaker: Speaker, rate: int) -> np.ndarray:
    command = [
        "espeak-ng",
        "-m",
        "-v",
        f"en-us+{speaker.voice}",
        "-p",
        str(speaker.pitch),
        "-s",
        str(rate),
        "--stdout",
        ssml,
    ]
    try:
        result = subprocess.run(command, capture_output=True, check=True, timeout=60)
    except FileNotFoundError:
        raise RuntimeError(
            "espeak-ng is not installed; it synthesises the demo corpora (apt-get install espeak-ng)"
        ) from None
    waveform, _ = sf.read(io.BytesIO(result.stdout), dtype="float32")
    return waveform


def _colour(x: np.ndarray, cue: Cue, speaker: Speaker, rng: np.random.Generator, rate: int) -> np.ndarray:
    t = np.arange(len(x)) / rate
    if cue.tilt > 0:  # pre-emphasis: a brighter, pressed voice
        x = x + min(cue.tilt, 1.5) * 0.6 * np.diff(x, prepend=x[:1]) * 3
    elif cue.tilt < 0:  # a lax, darker voice
        cutoff = 5500 / (1 + 2.5 * min(-cue.tilt, 1.5))
        x = sosfilt(butter(2, cutoff, fs=rate, output="sos"), x)
    envelope = np.convolve(np.abs(x), np.ones(441) / 441, mode="same")
    if cue.breath > 0:
        hiss = sosfilt(butter(2, 1500, btype="high", fs=rate, output="sos"), rng.normal(0, 1, len(x)))
        x = x + 0.5 * cue.breath * envelope * hiss
    if cue.tremor > 0:
        x = x * (1 + 0.5 * min(cue.tremor, 1.0) * np.sin(2 * np.pi * rng.uniform(5, 7) * t))
    return x * 10 ** ((cue.gain_db + speaker.gain_db) / 20)


def _channel(x: np.ndarray, speaker: Speaker, rng: np.random.Generator, rate: int) -> np.ndarray:
    lead, tail = (np.zeros(int(rng.uniform(0.1, 0.4) * rate)) for _ in range(2))
    x = np.concatenate([lead, x, tail])
    x = sosfilt(butter(4, min(speaker.lowpass_hz, 0.45 * rate), fs=rate, output="sos"), x)
    x = x + rng.normal(0, 10 ** (speaker.noise_db / 20), len(x))
    return np.tanh(x)  # a soft limiter: loud emotions stay loud without hard clipping


def speak(
    text: str,
    emotion: str,
    speaker: Speaker,
    rng: np.random.Generator,
    sample_rate: int,
    intensity: float = 1.0,
) -> np.ndarray:
    """``text`` spoken by ``speaker`` with ``emotion`` at ``intensity``, float32 at ``sample_rate``."""
    if emotion not in CUES:
        raise ValueError(f"unknown emotion {emotion!r}; known: {', '.join(CUES)}")
    cue = _utterance_cue(emotion, intensity, speaker, rng)
    rate = int(np.clip(speaker.rate * (1 + cue.rate), 80, 400))
    waveform = _espeak(_ssml(text, cue, rng), speaker, rate).astype(np.float64) * 0.35
    waveform = _channel(_colour(waveform, cue, speaker, rng, ESPEAK_RATE), speaker, rng, ESPEAK_RATE)
    if sample_rate != ESPEAK_RATE:
        divisor = np.gcd(sample_rate, ESPEAK_RATE)
        waveform = resample_poly(waveform, sample_rate // divisor, ESPEAK_RATE // divisor)
    return np.clip(waveform, -1, 1).astype(np.float32)  # resampling can overshoot by a hair
