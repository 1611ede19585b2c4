"""Is an audio file usable?  Empty, truncated and undecodable files are named, not crashed on."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

__all__ = ["AudioInfo", "UnusableAudio", "check_audio"]


class UnusableAudio(Exception):
    """The file exists but cannot be used; the message says why."""


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    frames: int
    channels: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def _declared_wav_data_shortfall(path: Path) -> int:
    """Bytes the WAV header's ``data`` chunk promises beyond the end of the file (0 if none)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] not in (b"RIFF", b"RIFX") or header[8:12] != b"WAVE":
            return 0  # not a RIFF/WAVE file; soundfile decides whether it can be read
        endian = "<" if header[:4] == b"RIFF" else ">"
        position = 12
        while position + 8 <= size:
            handle.seek(position)
            chunk_id, chunk_size = struct.unpack(endian + "4sI", handle.read(8))
            if chunk_id == b"data":
                return max(0, position + 8 + chunk_size - size)
            position += 8 + chunk_size + (chunk_size & 1)
    return 0


def check_audio(path: str | Path) -> AudioInfo:
    """Return the file's format, or raise :class:`UnusableAudio` saying what is wrong."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise UnusableAudio("empty file (0 bytes)")
    if path.suffix.lower() == ".wav":
        shortfall = _declared_wav_data_shortfall(path)
        if shortfall:
            raise UnusableAudio(
                f"truncated: the WAV header promises {shortfall} more bytes of audio than the file holds"
            )
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise UnusableAudio(f"unreadable audio: {exc}") from None
    if info.frames <= 0:
        raise UnusableAudio("no audio samples")
    return AudioInfo(sample_rate=info.samplerate, frames=info.frames, channels=info.channels)
