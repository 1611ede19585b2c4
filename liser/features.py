"""64-band log-Mel features (128 ms window, 32 ms hop at 16 kHz) and their per-corpus store.

A corpus's features are two files: ``logmel.npy`` holding every utterance's frames one
after another (frames x mels, float32, memory-mapped when read) and ``index.parquet``
saying where each utterance starts and how many frames it has.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import soundfile as sf
import soxr
from tqdm import tqdm

from liser.files import atomic_directory, write_csv, write_npy, write_parquet
from liser.logs import UserError
from liser.params import FeatureParams

__all__ = ["LogMel", "FeatureStore", "load_audio", "audio_blocks", "extract_corpus_features"]

log = logging.getLogger(__name__)


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Mono float32 waveform at ``sample_rate`` (channels averaged, resampled when needed)."""
    waveform, source_rate = sf.read(str(path), dtype="float32", always_2d=True)
    waveform = waveform.mean(axis=1)
    if source_rate != sample_rate:
        waveform = librosa.resample(waveform, orig_sr=source_rate, target_sr=sample_rate)
    return np.ascontiguousarray(waveform, dtype=np.float32)


def audio_blocks(path: str | Path, sample_rate: int, block_s: float = 60.0) -> Iterator[np.ndarray]:
    """What :func:`load_audio` returns, in consecutive blocks of about ``block_s`` seconds, without holding the
    whole file: decoded block by block and resampled by the same resampler as a stream (soxr, high quality)."""
    source_rate = sf.info(str(path)).samplerate
    resampler = None
    if source_rate != sample_rate:
        resampler = soxr.ResampleStream(source_rate, sample_rate, 1, dtype="float32", quality="HQ")
    blocks = sf.blocks(str(path), blocksize=max(1, int(block_s * source_rate)), dtype="float32", always_2d=True)
    block = next(blocks, None)
    while block is not None:
        following = next(blocks, None)  # the resampler must know which block is the last
        mono = np.ascontiguousarray(block.mean(axis=1), dtype=np.float32)
        yield mono if resampler is None else resampler.resample_chunk(mono, last=following is None)
        block = following


class LogMel:
    """log(Mel power + floor), shape (n_mels, frames); a waveform of zeros maps to log(floor)."""

    def __init__(self, params: FeatureParams):
        self.params = params
        self.mel_basis = librosa.filters.mel(sr=params.sample_rate, n_fft=params.n_fft, n_mels=params.n_mels).astype(
            np.float32
        )

    @staticmethod
    def silence_of(params: FeatureParams) -> float:
        """The feature value of digital silence, used to pad short signals."""
        return float(np.log(params.log_floor))

    def __call__(self, waveform: np.ndarray) -> np.ndarray:
        return self._log_mel(waveform, center=True)

    def _log_mel(self, waveform: np.ndarray, center: bool) -> np.ndarray:
        spectrum = librosa.stft(
            waveform,
            n_fft=self.params.n_fft,
            hop_length=self.params.hop_length,
            window="hann",
            center=center,
            pad_mode="constant",
        )
        power = np.abs(spectrum, dtype=np.float32) ** 2
        return np.log(self.mel_basis @ power + self.params.log_floor).astype(np.float32)

    def streamed(self, blocks: Iterable[np.ndarray]) -> np.ndarray:
        """The log-Mel of the concatenated ``blocks``, as ``self(np.concatenate(blocks))`` gives it, computed block
        by block: only the features and one block's spectrum are held, not the waveform or its whole spectrum."""
        n_fft, hop = self.params.n_fft, self.params.hop_length
        edge = np.zeros(n_fft // 2, dtype=np.float32)  # center=True's zero padding, at both ends
        pending, columns, samples = edge, [], 0
        for block in blocks:
            samples += len(block)
            pending = np.concatenate([pending, block])
            frames = 1 + (len(pending) - n_fft) // hop if len(pending) >= n_fft else 0
            if frames:
                columns.append(self._log_mel(pending[: (frames - 1) * hop + n_fft], center=False))
                pending = pending[frames * hop :]
        remaining = 1 + samples // hop - sum(part.shape[1] for part in columns)
        if remaining > 0:
            pending = np.concatenate([pending, edge])
            columns.append(self._log_mel(pending[: (remaining - 1) * hop + n_fft], center=False))
        return np.concatenate(columns, axis=1) if columns else np.zeros((self.params.n_mels, 0), np.float32)


class FeatureStore:
    """Read side of a corpus's features: ``store[utterance]`` is an (n_mels, frames) array."""

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        self.index = pd.read_parquet(folder / "index.parquet")
        self.data = np.load(folder / "logmel.npy", mmap_mode="r")
        self._rows = {u: (o, n) for u, o, n in zip(self.index.utterance, self.index.offset, self.index.frames)}

    def __contains__(self, utterance: str) -> bool:
        return utterance in self._rows

    def __getitem__(self, utterance: str) -> np.ndarray:
        offset, frames = self._rows[utterance]
        return np.asarray(self.data[offset : offset + frames]).T


def extract_corpus_features(utterances: pd.DataFrame, params: FeatureParams, out: str | Path) -> pd.DataFrame:
    """Write the folder ``out`` whole (``logmel.npy``, ``index.parquet``, ``problems.csv``) for every utterance;
    return the problems.

    A file that fails to decode is reported (path, reason) and skipped; the rest is kept.
    """
    out = Path(out)
    extractor = LogMel(params)
    features, index, problems = [], [], []
    offset = 0
    for row in tqdm(utterances.itertuples(), total=len(utterances), desc="log-Mel", unit="file"):
        try:
            logmel = extractor(load_audio(row.path, params.sample_rate))
        except Exception as exc:  # one bad file must not lose the others
            problems.append({"path": row.path, "reason": f"could not decode: {exc}"})
            continue
        features.append(logmel.T)
        index.append({"utterance": row.utterance, "offset": offset, "frames": logmel.shape[1]})
        offset += logmel.shape[1]
    if not features:
        raise UserError(f"{out}: none of the {len(utterances)} utterances could be turned into features")
    problems = pd.DataFrame(problems, columns=["path", "reason"])
    with atomic_directory(out) as staging:
        write_npy(staging / "logmel.npy", np.concatenate(features))
        write_parquet(staging / "index.parquet", pd.DataFrame(index))
        write_csv(staging / "problems.csv", problems)
    log.info("%d utterances, %d frames -> %s (%d problems)", len(index), offset, out, len(problems))
    return problems
