"""Demo MSP-Face: talking-face videos "online" and the four lists that describe them, in the real layout.

:func:`write_mspface_demo` writes::

    link_videos.txt           MSP-FACE_0001.mp4<TAB>online/MSP-FACE_0001.mp4
    segments_data.txt         start<TAB>end<TAB>MSP-FACE_0001_0001.mp4   (seconds, 3 decimals)
    speaker_id_segments.txt   MSP-FACE_0001_0001.mp4,Speaker_N
    speaker_id_gender.txt     Speaker_N,Male|Female
    online/MSP-FACE_NNNN.mp4  the videos the URLs point to: H.264 yuv420p 30 fps, AAC
    hidden_emotions.csv       segment,emotion: the truth behind each segment, for tests and evaluation only

with the published lists' CRLF line endings (and, like them, no newline after the last line
of the two speaker lists).  Each video holds a few segments, each one sentence spoken by one
speaker with one emotion that both the face and the voice carry, separated by neutral,
silent stretches.  A speaker has a face identity and a voice, and most appear in one video,
some in two; a few videos change speaker between segments.  Two videos are made to fail
downstream: one is listed but never written (its download fails) and one shows no face.
Lists, timings and emotions depend only on the seed.
"""

from __future__ import annotations

import shutil
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from liser.corpora.mspface import GENDERS_FILE, SEGMENTS_FILE, SPEAKERS_FILE, VIDEOS_FILE
from liser.demo.faces import EMOTIONS, FPS, VOICE_EMOTIONS, Expression, Identity, animate_sequence, random_identity
from liser.demo.faces import loudness_envelope as frame_loudness
from liser.demo.voice import Speaker, random_speaker, speak
from liser.ffmpeg import write_video

__all__ = ["HIDDEN_EMOTIONS_FILE", "ONLINE_FOLDER", "SENTENCES", "write_mspface_demo"]

ONLINE_FOLDER = "online"
HIDDEN_EMOTIONS_FILE = "hidden_emotions.csv"
SENTENCES = (
    "The train leaves in ten minutes",
    "I left my keys on the kitchen table",
    "We painted the fence last weekend",
    "She called me early this morning",
    "The results came in today",
    "They moved to a new city",
    "Nobody answered the phone",
    "The store closes at nine",
    "He found the letter yesterday",
    "Our team played the final game",
    "The package arrived a day early",
    "I read the whole report",
    "It rained all afternoon",
    "The lights went out again",
)
SEGMENT_SECONDS = (1.5, 4.0)
FILLER_SECONDS = (0.4, 1.2)
EDGE_SECONDS = (0.3, 1.2)  # neutral lead-in and tail of each video
SAMPLE_RATE = 44100
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS


def _rng(seed: int, *keys: str | int) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(str(k).encode()) for k in keys)])


@dataclass(frozen=True)
class _Person:
    """A demo speaker: list id, gender, voice and face."""

    speaker_id: str
    gender: str
    voice: Speaker
    face: Identity


@dataclass(frozen=True)
class _SegmentPlan:
    segment: str
    person: _Person
    emotion: str  # one of faces.EMOTIONS
    intensity: float
    text: str


@dataclass(frozen=True)
class _VideoPlan:
    video: str
    segments: tuple[_SegmentPlan, ...]  # in the order they are spoken
    missing: bool  # listed, never written: its download fails
    faceless: bool  # written with the face hidden: the face stage drops it


@dataclass
class _Piece:
    """A stretch of a video: one person, one expression, its sound, and the segment it is, if any."""

    person: _Person
    emotion: str
    strength: float
    audio: np.ndarray  # a whole number of video frames long
    segment: str | None = None

    @property
    def frames(self) -> int:
        return len(self.audio) // SAMPLES_PER_FRAME


def _people(seed: int, n_speakers: int) -> list[_Person]:
    rng = _rng(seed, "mspface-speakers")
    numbers = rng.choice(np.arange(1, 20 * n_speakers + 1), n_speakers, replace=False)
    genders = rng.permutation(["male" if i % 2 == 0 else "female" for i in range(n_speakers)])
    return [
        _Person(
            f"Speaker_{number}",
            str(gender),
            random_speaker(_rng(seed, "mspface-voice", int(number)), str(gender)),
            random_identity(_rng(seed, "mspface-face", int(number))),
        )
        for number, gender in zip(numbers, genders)
    ]


def _plan(
    seed: int, people: list[_Person], n_videos: int, segments_per_video: tuple[int, int], failures: bool
) -> list[_VideoPlan]:
    """Who speaks in which video, with which emotions; every speaker has at least one segment."""
    rng = _rng(seed, "mspface-plan")
    order = list(rng.permutation(len(people)))
    casts = [[people[order[v % len(people)]]] for v in range(n_videos)]
    for extra, index in enumerate(order[n_videos:]):  # more speakers than videos: they join as guests
        casts[extra % n_videos].append(people[index])
    for cast in casts:  # now and then someone else joins a video
        if len(cast) == 1 and len(people) > 1 and rng.random() < 0.1:
            cast.append(people[int(rng.choice([i for i, p in enumerate(people) if p is not cast[0]]))])

    low, high = segments_per_video
    counts = [max(len(cast), int(rng.integers(low, high + 1))) for cast in casts]
    emotions = [EMOTIONS[i % len(EMOTIONS)] for i in rng.permutation(sum(counts))]
    special = rng.choice(n_videos, 2, replace=False) if failures else (-1, -1)

    videos, used = [], 0
    for index, (cast, count) in enumerate(zip(casts, counts)):
        video = f"MSP-FACE_{index + 1:04d}"
        # the published lists do not always number a video's segments in time order
        numbers = rng.permutation(count) + 1 if rng.random() < 0.3 else np.arange(1, count + 1)
        segments = tuple(
            _SegmentPlan(
                f"{video}_{int(numbers[k]):04d}",
                cast[k % len(cast)],
                emotions[used + k],
                float(rng.uniform(0.6, 1.3)),
                str(rng.choice(SENTENCES)),
            )
            for k in range(count)
        )
        used += count
        missing, faceless = bool(index == special[0]), bool(index == special[1])
        videos.append(_VideoPlan(video, segments, missing=missing, faceless=faceless))
    return videos


def _room_noise(person: _Person, seconds: float, rng: np.random.Generator) -> np.ndarray:
    samples = SAMPLES_PER_FRAME * max(1, round(seconds * FPS))
    return rng.normal(0, 10 ** (person.voice.noise_db / 20), samples).astype(np.float32)


def _utterance(plan: _SegmentPlan, rng: np.random.Generator) -> np.ndarray:
    """The segment's sentence spoken with its emotion, 1.5-4 s, a whole number of frames long."""
    shortest, longest = SEGMENT_SECONDS
    texts = [plan.text, *sorted(SENTENCES, key=len)[:2]]  # too long: try shorter sentences
    for text in texts:
        audio = speak(text, VOICE_EMOTIONS[plan.emotion], plan.person.voice, rng, SAMPLE_RATE, plan.intensity)
        if len(audio) <= longest * SAMPLE_RATE:
            break
    else:
        audio = audio[: int(longest * SAMPLE_RATE)].copy()
        fade = int(0.03 * SAMPLE_RATE)
        audio[-fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
    frames = int(np.ceil(max(len(audio), shortest * SAMPLE_RATE) / SAMPLES_PER_FRAME))
    frames = min(frames, int(longest * FPS))
    tail = _room_noise(plan.person, 1.0, rng)
    padded = np.concatenate([audio, tail[: max(0, frames * SAMPLES_PER_FRAME - len(audio))]])
    return padded[: frames * SAMPLES_PER_FRAME]


def _pieces(plan: _VideoPlan, rng: np.random.Generator) -> list[_Piece]:
    """The video's timeline: neutral lead-in, segments with neutral gaps, neutral tail."""
    first = plan.segments[0].person
    pieces = [_Piece(first, "neutral", 1.0, _room_noise(first, rng.uniform(*EDGE_SECONDS), rng))]
    for index, segment in enumerate(plan.segments):
        if index:
            before, after = plan.segments[index - 1].person, segment.person
            gap = rng.uniform(*FILLER_SECONDS)
            if before == after:
                pieces.append(_Piece(after, "neutral", 1.0, _room_noise(after, gap, rng)))
            else:  # the camera cuts to the next speaker halfway through the gap
                pieces.append(_Piece(before, "neutral", 1.0, _room_noise(before, gap / 2, rng)))
                pieces.append(_Piece(after, "neutral", 1.0, _room_noise(after, gap / 2, rng)))
        audio = _utterance(segment, rng)
        pieces.append(_Piece(segment.person, segment.emotion, segment.intensity, audio, segment.segment))
    last = plan.segments[-1].person
    pieces.append(_Piece(last, "neutral", 1.0, _room_noise(last, rng.uniform(*EDGE_SECONDS), rng)))
    return pieces


def _segment_times(pieces: list[_Piece]) -> dict[str, tuple[float, float]]:
    times, frame = {}, 0
    for piece in pieces:
        if piece.segment is not None:
            times[piece.segment] = (frame / FPS, (frame + piece.frames) / FPS)
        frame += piece.frames
    return times


def _shots(pieces: list[_Piece], rng: np.random.Generator, size: int, faceless: bool) -> Iterator[np.ndarray]:
    """The video's frames, one continuous shot per run of pieces with the same person."""
    for person, run in groupby(pieces, key=lambda piece: piece.person):
        run = list(run)
        audio = np.concatenate([piece.audio for piece in run])
        parts = [Expression(piece.emotion, piece.frames / FPS, piece.strength) for piece in run]
        envelope = frame_loudness(audio, SAMPLE_RATE)
        yield animate_sequence(parts, rng, person.face, envelope, size, hide_face=faceless)


def _encode(path: Path, pieces: list[_Piece], rng: np.random.Generator, size: int, faceless: bool) -> None:
    """Render and encode one video: frames piped to ffmpeg, sound from a temporary WAV."""
    sound = path.with_suffix(".wav")
    sf.write(str(sound), np.concatenate([piece.audio for piece in pieces]), SAMPLE_RATE, subtype="PCM_16")
    frames = (frame for shot in _shots(pieces, rng, size, faceless) for frame in shot)
    try:
        write_video(
            path, frames, FPS, pixel_format="bgr24", audio=sound, extra=["-r", str(FPS), "-movflags", "+faststart"]
        )
    finally:
        sound.unlink(missing_ok=True)


def _write_list(path: Path, lines: list[str], final_newline: bool) -> None:
    """CRLF lines, as the published lists have them."""
    path.write_bytes(("\r\n".join(lines) + ("\r\n" if final_newline else "")).encode())


def write_mspface_demo(
    out: str | Path,
    seed: int = 0,
    n_speakers: int = 24,
    n_videos: int = 30,
    segments_per_video: tuple[int, int] = (1, 3),
    frame_size: int = 320,
    failures: bool = True,
    url_style: str = "file",
) -> dict:
    """Write a demo MSP-Face under ``out`` (replacing it whole); return what it holds.

    ``url_style`` "file" lists the videos in ``out/online/`` by paths relative to ``out``
    (the MSP-Face reader turns them into file:// URLs), so the corpus can move;
    "youtube" lists made-up YouTube watch URLs instead, like the published lists (the
    videos are still written, but nothing points to them).  With ``failures``, one listed
    video is never written and one shows no face (both need ``n_videos`` >= 3).
    """
    if url_style not in ("file", "youtube"):
        raise ValueError(f"url_style must be 'file' or 'youtube' (got {url_style!r})")
    if n_speakers < 1 or n_videos < 1 or (failures and n_videos < 3):
        raise ValueError("need at least 1 speaker and 1 video (3 videos with failures)")
    if not 1 <= segments_per_video[0] <= segments_per_video[1] or frame_size % 2:
        raise ValueError("segments_per_video must be 1 <= low <= high, frame_size even")
    out = Path(out).resolve()
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / ONLINE_FOLDER).mkdir(parents=True)

    people = _people(seed, n_speakers)
    plans = _plan(seed, people, n_videos, segments_per_video, failures)
    url_rng = _rng(seed, "mspface-urls")
    alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))
    videos, times, seconds = [], {}, 0.0
    for plan in tqdm(plans, desc="demo MSP-Face", unit="video"):
        name = f"{plan.video}.mp4"
        if url_style == "file":
            url = f"{ONLINE_FOLDER}/{name}"
        else:
            url = "https://www.youtube.com/watch?v=" + "".join(url_rng.choice(alphabet, 11))
        videos.append(f"{name}\t{url}")
        rng = _rng(seed, "mspface-video", plan.video)
        pieces = _pieces(plan, rng)
        times.update(_segment_times(pieces))
        if not plan.missing:
            _encode(staging / ONLINE_FOLDER / name, pieces, rng, frame_size, plan.faceless)
            seconds += sum(piece.frames for piece in pieces) / FPS

    segments = [segment for plan in plans for segment in sorted(plan.segments, key=lambda s: s.segment)]
    speakers_in_order = list(dict.fromkeys(segment.person for segment in segments))
    _write_list(staging / VIDEOS_FILE, videos, final_newline=True)
    _write_list(
        staging / SEGMENTS_FILE,
        [f"{times[s.segment][0]:.3f}\t{times[s.segment][1]:.3f}\t{s.segment}.mp4" for s in segments],
        final_newline=True,
    )
    speaker_lines = [f"{s.segment}.mp4,{s.person.speaker_id}" for s in segments]
    _write_list(staging / SPEAKERS_FILE, speaker_lines, final_newline=False)
    _write_list(
        staging / GENDERS_FILE, [f"{p.speaker_id},{p.gender.title()}" for p in speakers_in_order], final_newline=False
    )
    missing = next((plan.video for plan in plans if plan.missing), None)
    faceless = next((plan.video for plan in plans if plan.faceless), None)
    truth = [f"{s.segment},{s.emotion}" for s in segments if not s.segment.startswith(f"{missing}_")]
    (staging / HIDDEN_EMOTIONS_FILE).write_text("\n".join(["segment,emotion", *truth]) + "\n")

    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return {
        "videos": len(plans),
        "videos_written": len(plans) - (missing is not None),
        "segments": len(segments),
        "speakers": len(speakers_in_order),
        "missing_video": missing,
        "faceless_video": faceless,
        "seconds": round(seconds, 3),
    }
