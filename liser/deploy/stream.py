"""Emotions of audio as it arrives: one distribution per hop, in constant memory.

Samples go through the features stage's front end frame by frame (``IncrementalLogMel``: a frame as soon as the
samples it spans have arrived), and a 3 s window is scored as soon as its last frame exists.  Windows start every
``hop_s`` (rounded to frames, as ``crops.window_starts`` rounds the evaluation stride), so the first distribution
comes once one window of audio has arrived (3.04 s: the last frame is centred 1024 samples before the end it
needs), then one per hop.  Only one window's frames (and a hop's), the samples of one block and the running sums of
the logits are held, whatever the length of the stream.

When the stream ends, a last window flush with the end is added (as ``window_starts`` adds it) and the whole
stream's distribution is the softmax of the logits averaged over every window: what ``liser predict --stride
hop_s`` gives for the same audio.  An ensemble averages its students' softmax probabilities, window by window and
for the whole stream, as ``Predictor`` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from liser.corpora.audio_check import UnusableAudio, check_audio
from liser.features import LogMel, audio_blocks
from liser.params import FeatureParams
from liser.predict import MIN_SECONDS, Classifier

__all__ = [
    "EmotionStream",
    "IncrementalLogMel",
    "StreamResult",
    "Window",
    "file_blocks",
    "pcm_blocks",
    "stream_emotions",
]

PCM_SAMPLE_BYTES = 2  # s16le
PCM_FULL_SCALE = 32768.0


class IncrementalLogMel(LogMel):
    """``LogMel`` (centred frames) computed as the samples arrive: ``push`` returns the frames that the samples so
    far complete, ``finish`` the last ones, padded with zeros past the end as ``center=True`` pads them.  The
    concatenation of what they return is ``LogMel()(all the samples)``."""

    def __init__(self, params: FeatureParams):
        super().__init__(params)
        self.pending = np.zeros(params.n_fft // 2, dtype=np.float32)  # the centred STFT's padding at the start
        self.samples = 0
        self.frames = 0

    def _take(self, frames: int) -> np.ndarray:
        hop, n_fft = self.params.hop_length, self.params.n_fft
        columns = self._log_mel(self.pending[: (frames - 1) * hop + n_fft], center=False)
        self.pending = self.pending[frames * hop :]
        self.frames += frames
        return columns

    def push(self, samples: np.ndarray) -> np.ndarray:
        """(n_mels, frames) completed by ``samples`` (possibly none)."""
        self.samples += len(samples)
        self.pending = np.concatenate([self.pending, np.asarray(samples, dtype=np.float32)])
        n_fft, hop = self.params.n_fft, self.params.hop_length
        ready = 1 + (len(self.pending) - n_fft) // hop if len(self.pending) >= n_fft else 0
        return self._take(ready) if ready else np.zeros((self.params.n_mels, 0), np.float32)

    def finish(self) -> np.ndarray:
        """The frames left once no more samples come: the centred STFT has 1 + samples // hop_length in all."""
        remaining = 1 + self.samples // self.params.hop_length - self.frames
        if remaining <= 0:
            return np.zeros((self.params.n_mels, 0), np.float32)
        self.pending = np.concatenate([self.pending, np.zeros(self.params.n_fft // 2, dtype=np.float32)])
        return self._take(remaining)


@dataclass(frozen=True)
class Window:
    start_s: float
    end_s: float
    probabilities: np.ndarray  # (K,), the students' softmax probabilities averaged


@dataclass(frozen=True)
class StreamResult:
    seconds: float
    windows: int
    probabilities: np.ndarray  # (K,) the whole stream's
    logits: np.ndarray | None  # (K,) averaged over the windows; for a single student only


class EmotionStream:
    """Students scoring 3 s windows every ``hop_s`` of a stream of 16 kHz mono samples.

    ``push(samples)`` returns the windows those samples complete; ``finish()`` the last ones and the whole
    stream's result.
    """

    def __init__(self, students: Sequence[Classifier], features: FeatureParams, hop_s: float):
        if not hop_s >= features.hop_s:
            raise ValueError(f"--hop must be at least one frame, {features.hop_s} s (got {hop_s})")
        self.students = list(students)
        self.features = features
        self.hop_s = hop_s
        self.stride = hop_s / features.hop_s  # in frames, possibly fractional
        self.window_frames = features.crop_frames
        self.front_end = IncrementalLogMel(features)
        self.held = np.zeros((features.n_mels, 0), np.float32)  # frames from self.first_held on
        self.first_held = 0
        self.next_window = 0  # index k of the next window, which starts at round(k * stride)
        self.last_start: int | None = None
        self.logit_sums: list[np.ndarray] | None = None
        self.count = 0
        self.sound = False
        for student in self.students:
            student.eval()

    def _start(self, k: int) -> int:
        return int(np.round(k * self.stride))

    @property
    def held_frames(self) -> int:
        return self.held.shape[1]

    def _score(self, starts: list[int], frames: np.ndarray, offset: int) -> list[Window]:
        if not starts:
            return []
        batch = np.stack([frames[:, s - offset : s - offset + self.window_frames] for s in starts])[:, None]
        each = []
        with torch.inference_mode():
            for student in self.students:
                device = next(student.parameters()).device if isinstance(student, torch.nn.Module) else "cpu"
                each.append(student.classify(torch.from_numpy(batch).to(device)).float().cpu().numpy())
        if self.logit_sums is None:
            self.logit_sums = [np.zeros(logits.shape[1], np.float64) for logits in each]
        for sums, logits in zip(self.logit_sums, each):
            sums += logits.sum(axis=0, dtype=np.float64)
        self.count += len(starts)
        self.last_start = starts[-1]
        probabilities = np.mean([torch.softmax(torch.from_numpy(x), dim=1).numpy() for x in each], axis=0)
        hop = self.features.hop_s
        return [Window(start * hop, start * hop + self.features.crop_s, p) for start, p in zip(starts, probabilities)]

    def _add(self, frames: np.ndarray) -> list[Window]:
        self.held = np.concatenate([self.held, frames], axis=1)
        available = self.first_held + self.held.shape[1]
        starts = []
        while self._start(self.next_window) + self.window_frames <= available:
            starts.append(self._start(self.next_window))
            self.next_window += 1
        windows = self._score(starts, self.held, self.first_held)
        # what the next window needs, and the last window's worth: the end may come now and need a window flush with it
        keep_from = min(self._start(self.next_window), max(0, available - self.window_frames))
        if keep_from > self.first_held:
            self.held = self.held[:, keep_from - self.first_held :]
            self.first_held = keep_from
        return windows

    def push(self, samples: np.ndarray) -> list[Window]:
        self.sound = self.sound or bool(np.any(samples))
        return self._add(self.front_end.push(samples))

    @property
    def seconds(self) -> float:
        return self.front_end.samples / self.features.sample_rate

    def finish(self) -> tuple[list[Window], StreamResult]:
        """The windows the end completes, a last one flush with the end, and the whole stream's result; raises
        :class:`UnusableAudio` for a stream too short or digitally silent, as ``liser predict`` refuses a file."""
        windows = self._add(self.front_end.finish())
        if not self.sound:
            raise UnusableAudio("digital silence: every sample is 0")
        if self.seconds < MIN_SECONDS:
            raise UnusableAudio(f"too short: {self.seconds:.2f} s of audio, at least {MIN_SECONDS} s needed")
        total = self.front_end.frames
        if total <= self.window_frames:  # one window, padded with the log-Mel of silence
            if self.count == 0:
                held = np.pad(
                    self.held,
                    ((0, 0), (0, self.window_frames - self.held.shape[1])),
                    constant_values=LogMel.silence_of(self.features),
                )
                windows += self._score([0], held, 0)
        elif self.last_start != total - self.window_frames:
            windows += self._score([total - self.window_frames], self.held, self.first_held)
        means = [torch.from_numpy((sums / self.count).astype(np.float32)) for sums in self.logit_sums]
        probabilities = np.mean([torch.softmax(m, dim=0).numpy() for m in means], axis=0)
        logits = means[0].numpy() if len(means) == 1 else None
        return windows, StreamResult(self.seconds, self.count, probabilities, logits)


def pcm_blocks(source: BinaryIO, sample_rate: int, block_s: float) -> Iterator[np.ndarray]:
    """Raw s16le mono samples from ``source`` as float32 in [-1, 1), handed on as soon as they are read (at most
    ``block_s`` at a time; a pipe gives what has arrived)."""
    wanted = max(1, round(block_s * sample_rate)) * PCM_SAMPLE_BYTES
    read = getattr(source, "read1", source.read)
    carry = b""
    while chunk := read(wanted):
        data = carry + chunk
        usable = len(data) - len(data) % PCM_SAMPLE_BYTES
        carry = data[usable:]
        if usable:
            yield np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / PCM_FULL_SCALE


def file_blocks(path: Path, sample_rate: int) -> tuple[Iterator[np.ndarray], tuple[str, ...]]:
    """A file's samples at ``sample_rate`` mono, block by block as ``liser predict`` reads them, and the warnings it
    gives; raises :class:`UnusableAudio` for a file that cannot be read.  The blocks are predict's (60 s): libsndfile
    decodes an mp3 read in short blocks differently from one read in long ones."""
    info = check_audio(path)
    warnings = []
    if info.sample_rate < sample_rate:
        warnings.append(
            f"recorded at {info.sample_rate} Hz: nothing above {info.sample_rate // 2} Hz, unlike the "
            f"{sample_rate} Hz audio the student was trained on"
        )
    if info.channels > 1:
        warnings.append(f"{info.channels} channels averaged to mono")
    return audio_blocks(path, sample_rate), tuple(warnings)


def stream_emotions(stream: EmotionStream, blocks: Iterable[np.ndarray]) -> Iterator[Window | StreamResult]:
    """Each window as soon as the blocks complete it, then the whole stream's result."""
    for block in blocks:
        yield from stream.push(block)
    windows, result = stream.finish()
    yield from windows
    yield result
