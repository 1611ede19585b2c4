"""Encoding frames into an H.264 MP4 with ffmpeg: raw frames go through a pipe, so no frame touches the disk."""

from __future__ import annotations

import contextlib
import itertools
import subprocess
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from liser.processes import forget_tool, start_tool

__all__ = ["write_video", "last_line"]


def last_line(text: str) -> str:
    """The last non-empty line of a tool's error output: usually the one that says what went wrong."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float | Fraction,
    *,
    pixel_format: str = "rgb24",
    preset: str = "veryfast",
    crf: int = 23,
    audio: str | Path | None = None,
    comment: str | None = None,
    threads: int | None = None,
    lossless: bool = False,
    extra: Sequence[str] = (),
) -> int:
    """Encode ``frames`` (height x width x 3 uint8, ``pixel_format`` order, all one size) into the MP4 ``path``;
    with ``audio``, a sound file muxed in as AAC.  ``lossless``: H.264 of the RGB frames themselves (libx264rgb,
    quantiser 0), decoded back bit for bit, instead of 4:2:0 at quality ``crf``.  Returns the number of frames
    written.

    Raises RuntimeError with ffmpeg's own last message when it fails (or is not installed).
    """
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError(f"{path}: no frames to encode")
    height, width = first.shape[:2]
    command = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    command += ["-f", "rawvideo", "-pix_fmt", pixel_format, "-s", f"{width}x{height}", "-framerate", str(fps)]
    command += ["-i", "pipe:0"]
    if audio is not None:
        command += ["-i", str(audio), "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac", "-b:a", "96k"]
    if lossless:
        command += ["-c:v", "libx264rgb", "-preset", preset, "-qp", "0", "-pix_fmt", "rgb24"]
    else:
        command += ["-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p"]
    if threads is not None:
        command += ["-threads", str(threads)]
    if comment is not None:
        command += ["-metadata", f"comment={comment}"]
    command += [*extra, "-f", "mp4", str(path)]
    try:
        encoder = start_tool(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise RuntimeError("ffmpeg is not installed (apt-get install ffmpeg); it encodes video clips") from None
    written = 0
    try:
        for frame in itertools.chain([first], frames):
            encoder.stdin.write(np.ascontiguousarray(frame).tobytes())
            written += 1
    except BrokenPipeError:
        pass  # ffmpeg stopped; its message is read below
    except BaseException:  # interrupted, or the frames failed: no half-written clip is finished
        encoder.kill()
        with contextlib.suppress(OSError):
            encoder.stdin.close()
        encoder.wait()
        forget_tool(encoder)
        raise
    try:
        _, errors = encoder.communicate()
    finally:
        forget_tool(encoder)
    if encoder.returncode != 0:
        raise RuntimeError(f"ffmpeg could not encode {Path(path).name}: {last_line(errors.decode(errors='replace'))}")
    return written
