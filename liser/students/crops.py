"""3 s crops of a log-Mel spectrogram: random crops for training, sliding evaluation windows for evaluation.

Signals shorter than a crop are padded with the feature value of silence, which is
what zero-padding the waveform before the log-Mel would give (section 3.3).
"""

from __future__ import annotations

import numpy as np

__all__ = ["pad_to", "crop_start", "random_crop", "window_starts", "sliding_windows"]


def pad_to(logmel: np.ndarray, frames: int, pad_value: float) -> np.ndarray:
    """(mels, n) -> (mels, frames), padding on the right; longer inputs are returned unchanged."""
    missing = frames - logmel.shape[1]
    if missing <= 0:
        return logmel
    return np.pad(logmel, ((0, 0), (0, missing)), constant_values=pad_value)


def crop_start(n_frames: int, frames: int, rng: np.random.Generator) -> int:
    """First frame of a uniformly placed ``frames``-long crop; 0, drawing nothing, for a shorter signal."""
    extra = n_frames - frames
    return int(rng.integers(0, extra + 1)) if extra > 0 else 0


def random_crop(logmel: np.ndarray, frames: int, rng: np.random.Generator, pad_value: float) -> np.ndarray:
    """A uniformly placed ``frames``-long crop (the whole signal, padded, when it is shorter)."""
    start = crop_start(logmel.shape[1], frames, rng)
    return pad_to(logmel[:, start : start + frames], frames, pad_value)


def window_starts(n_frames: int, window_frames: int, stride_frames: float) -> np.ndarray:
    """First frame of each window.

    The stride is in (possibly fractional) frames, e.g. 0.1 s / 32 ms = 3.125: each start is
    rounded to the nearest frame.  A last window flush with the end is added when the
    stride would leave the tail uncovered.  A short signal gets one window at 0.
    """
    last = n_frames - window_frames
    if last <= 0:
        return np.zeros(1, dtype=np.int64)
    starts = np.unique(np.round(np.arange(0, last + 1e-9, stride_frames)).astype(np.int64))
    starts = starts[starts <= last]
    if starts[-1] != last:
        starts = np.append(starts, last)
    return starts


def sliding_windows(logmel: np.ndarray, window_frames: int, stride_frames: float, pad_value: float) -> np.ndarray:
    """(windows, mels, window_frames) covering the whole signal."""
    padded = pad_to(logmel, window_frames, pad_value)
    starts = window_starts(padded.shape[1], window_frames, stride_frames)
    return np.stack([padded[:, s : s + window_frames] for s in starts])
