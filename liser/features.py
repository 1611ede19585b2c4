"""64-band log-Mel features (128 ms window, 32 ms hop at 16 kHz) and their per-corpus store.

A corpus's features are two files: ``logmel.npy`` holding every utterance's frames one
after another (frames x mels, float32, memory-mapped when read) and ``index.parquet``
saying where each utterance starts and how many frames it has.
"""

from __future__ import annotations

import array
import logging
import os
import weakref
from collections.abc import Iterable, Iterator
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import soundfile as sf
import soxr
from tqdm import tqdm

from liser.files import atomic_directory, parquet_batches, write_csv, write_parquet
from liser.logs import UserError
from liser.params import FeatureParams

__all__ = ["LogMel", "FeatureStore", "RowFile", "load_audio", "audio_blocks", "extract_corpus_features"]

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


class RowFile:
    """A file of equal rows (an ``.npy`` array, or raw rows from ``offset``) read with ``pread`` where asked: nothing
    is mapped into the process, so reading many items at random places costs the items, not the pages around
    them (a memory map's resident pages count in the process's memory)."""

    def __init__(self, path: str | Path, dtype: np.dtype | None = None, row_shape: tuple[int, ...] = ()):
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_RDONLY)
        self._closer = weakref.finalize(self, os.close, self._fd)
        if dtype is None:  # an .npy file: its header says
            with open(self.path, "rb") as handle:
                major, _ = np.lib.format.read_magic(handle)
                header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                shape, fortran, dtype = header(handle)
                if fortran:
                    raise ValueError(f"{self.path}: a Fortran-ordered array")
                self.offset, self.length, row_shape = handle.tell(), shape[0], tuple(shape[1:])
        else:
            self.offset = 0
            row_bytes = int(np.dtype(dtype).itemsize * np.prod(row_shape, dtype=np.int64))
            self.length = os.fstat(self._fd).st_size // max(row_bytes, 1)
        self.dtype, self.row_shape = np.dtype(dtype), tuple(row_shape)
        self.row_bytes = int(self.dtype.itemsize * np.prod(self.row_shape, dtype=np.int64))

    def __len__(self) -> int:
        return self.length

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start`` to ``stop`` (exclusive), read now."""
        count = max(0, min(stop, self.length) - start)
        data = os.pread(self._fd, count * self.row_bytes, self.offset + start * self.row_bytes)
        return np.frombuffer(data, dtype=self.dtype).reshape(count, *self.row_shape)


class FeatureStore:
    """Read side of a corpus's features: ``store[utterance]`` is an (n_mels, frames) array.

    The frames stay on disk and are read where asked (:class:`RowFile`), and the index is read when first needed, so
    opening a store of a million segments costs nothing; :meth:`index_batches` reads the index a part at a time.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.data = RowFile(self.folder / "logmel.npy")
        self._index: pd.DataFrame | None = None
        self._rows: dict[str, tuple[int, int]] | None = None

    @property
    def index(self) -> pd.DataFrame:
        """utterance, offset, frames: where each utterance's frames are in ``logmel.npy``."""
        if self._index is None:
            self._index = pd.read_parquet(self.folder / "index.parquet")
        return self._index

    def index_batches(self, rows: int = 65_536) -> Iterator[pd.DataFrame]:
        """The index ``rows`` utterances at a time, without holding it whole."""
        yield from parquet_batches(self.folder / "index.parquet", rows)

    def _where(self) -> dict[str, tuple[int, int]]:
        if self._rows is None:
            index = self.index
            self._rows = {u: (o, n) for u, o, n in zip(index.utterance, index.offset, index.frames)}
        return self._rows

    def __contains__(self, utterance: str) -> bool:
        return utterance in self._where()

    def __getitem__(self, utterance: str) -> np.ndarray:
        return self.frames(*self._where()[utterance])

    def frames(self, offset: int, frames: int) -> np.ndarray:
        """(n_mels, frames) from frame ``offset`` of the file, read when asked for."""
        return self.data.rows(offset, offset + frames).T


def _npy_header(rows: int, columns: int) -> bytes:
    """The 128-byte header ``np.save`` writes for a (rows, columns) float32 array (rows below 10**40)."""
    text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {columns}), }}"
    body = text.ljust(128 - 10 - 1) + "\n"
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body.encode("latin1")


def extract_corpus_features(utterances: pd.DataFrame, params: FeatureParams, out: str | Path) -> pd.DataFrame:
    """Write the folder ``out`` whole (``logmel.npy``, ``index.parquet``, ``problems.csv``) for every utterance;
    return the problems.

    Each utterance's frames are appended to ``logmel.npy`` as they are made (its header is written last), so the
    stage holds one utterance's features at a time whatever the corpus's size.  A file that fails to decode is
    reported (path, reason) and skipped; the rest is kept.
    """
    out = Path(out)
    extractor = LogMel(params)
    names, offsets, lengths, problems = [], array.array("q"), array.array("q"), []
    offset = 0
    with atomic_directory(out) as staging:
        with open(staging / "logmel.npy", "wb") as handle:
            handle.write(_npy_header(0, params.n_mels))
            for row in tqdm(utterances.itertuples(), total=len(utterances), desc="log-Mel", unit="file"):
                try:
                    logmel = extractor(load_audio(row.path, params.sample_rate))
                except Exception as exc:  # one bad file must not lose the others
                    problems.append({"path": row.path, "reason": f"could not decode: {exc}"})
                    continue
                handle.write(np.ascontiguousarray(logmel.T, dtype=np.float32).tobytes())
                names.append(row.utterance)
                offsets.append(offset)
                lengths.append(logmel.shape[1])
                offset += logmel.shape[1]
            if not names:
                raise UserError(f"{out}: none of the {len(utterances)} utterances could be turned into features")
            handle.seek(0)
            handle.write(_npy_header(offset, params.n_mels))
        index = pd.DataFrame({"utterance": names, "offset": np.frombuffer(offsets, np.int64)})
        index["frames"] = np.frombuffer(lengths, np.int64)
        problems = pd.DataFrame(problems, columns=["path", "reason"])
        write_parquet(staging / "index.parquet", index)
        write_csv(staging / "problems.csv", problems)
    log.info("%d utterances, %d frames -> %s (%d problems)", len(index), offset, out, len(problems))
    return problems
