"""Obtaining MSP-Face: each source video downloaded once with yt-dlp, each segment cut from it with ffmpeg.

Everything lives under one output folder::

    videos/<video>.mp4           the source video as downloaded (MP4)
    videos/.<video>.partial/     yt-dlp's working folder while that download is under way
    segments/<segment>.mp4       the segment's picture: H.264, yuv420p, 30 fps, no sound
    segments/<segment>.wav       the segment's sound: 16 kHz mono PCM16
    report.json                  what was obtained and every failure, with its reason
    segments.parquet             the rows of the segments table that were obtained (this selection)

Whether a piece of work is done is decided by its final files alone, and a final file only
ever appears by an atomic rename of a complete one, so an interrupted run is resumed by
running again: it redoes exactly what is missing.  yt-dlp is driven through its Python API
and ffmpeg through argument lists, never a shell; ids are checked against the MSP-Face
patterns before any path is built from them.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import deno
import pandas as pd
import yt_dlp
from tqdm import tqdm

from liser.corpora.audio_check import UnusableAudio, check_audio
from liser.corpora.mspface import VIDEO_COLUMNS, InvalidId, check_segment_id, check_video_id
from liser.files import atomic_path, write_json, write_parquet

__all__ = [
    "OBTAINED_NAME",
    "AcquireError",
    "acquire",
    "cut_segment",
    "download_video",
    "segment_paths",
    "video_path",
    "ydl_options",
]

log = logging.getLogger(__name__)

# Best MP4 video up to 720p with M4A audio, else any MP4 with sound, else whatever there is
# (remuxed to MP4).  Faces for the video teacher need no more than 720p.
FORMAT = "bv*[ext=mp4][height<=720]+ba[ext=m4a]/b[ext=mp4][height<=720]/bv*[height<=720]+ba/b[height<=720]/bv*+ba/b"
SEGMENT_FPS = 30
SEGMENT_SAMPLE_RATE = 16000
# ffmpeg first seeks on the input to this many seconds before the segment (fast, lands on a
# keyframe and decodes up to the exact time), then on the output to the exact start.
INPUT_SEEK_MARGIN_S = 10.0
# A cut this much shorter than its segment means the source ended early.
SHORT_CUT_TOLERANCE_S = 0.1
REPORT_NAME = "report.json"
OBTAINED_NAME = "segments.parquet"


class AcquireError(RuntimeError):
    """A download or cut that did not produce its files; the message is the reason."""


def video_path(out_dir: str | Path, video_id: str) -> Path:
    """``videos/<video_id>.mp4`` under ``out_dir``, for a valid video id only."""
    return Path(out_dir) / "videos" / f"{check_video_id(video_id)}.mp4"


def segment_paths(out_dir: str | Path, segment_id: str) -> tuple[Path, Path]:
    """``segments/<segment_id>.mp4`` and ``.wav`` under ``out_dir``, for a valid segment id only."""
    segment_id = check_segment_id(segment_id)
    folder = Path(out_dir) / "segments"
    return folder / f"{segment_id}.mp4", folder / f"{segment_id}.wav"


def _segment_done(out_dir: Path, segment_id: str) -> bool:
    return all(path.is_file() for path in segment_paths(out_dir, segment_id))


class _YtDlpLog:
    """yt-dlp's own messages, kept at debug level: failures are reported by :func:`acquire`."""

    def debug(self, message: str) -> None:
        log.debug("yt-dlp: %s", message)

    def info(self, message: str) -> None:
        log.debug("yt-dlp: %s", message)

    def warning(self, message: str) -> None:
        log.debug("yt-dlp warning: %s", message)

    def error(self, message: str) -> None:
        log.debug("yt-dlp error: %s", message)


def ydl_options(
    download_dir: str | Path, video_id: str, retries: int = 3, ratelimit: int | None = None
) -> dict[str, Any]:
    """Options for ``yt_dlp.YoutubeDL`` that download one video to ``<download_dir>/<video_id>.mp4``.

    ``download_dir`` is a working folder, not the final place: the caller renames the file
    out of it once complete.  ``ratelimit`` is in bytes per second (None: no limit).
    """
    download_dir = Path(download_dir).resolve()
    # The folder is taken literally; % would otherwise start a template field.
    template = str(download_dir).replace("%", "%%") + os.sep + check_video_id(video_id) + ".%(ext)s"
    return {
        "format": FORMAT,
        "merge_output_format": "mp4",
        "postprocessors": [{"key": "FFmpegVideoRemuxer", "preferedformat": "mp4"}],
        "outtmpl": {"default": template},
        "noplaylist": True,
        "retries": retries,
        "fragment_retries": retries,
        "extractor_retries": retries,
        "file_access_retries": retries,
        "ratelimit": ratelimit,
        "socket_timeout": 30,
        # A *.part file is resumed by byte range; a finished-looking file is fetched again.
        "continuedl": True,
        "overwrites": True,
        "updatetime": False,
        "quiet": True,
        "noprogress": True,
        "color": "no_color",
        "logger": _YtDlpLog(),
        # The demo feeds local files as file:// URLs, which yt-dlp refuses by default.
        "enable_file_urls": True,
        # YouTube's player JavaScript is run by the Deno binary that the `deno` package ships.
        "js_runtimes": {"deno": {"path": deno.find_deno_bin()}},
    }


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def _check_download(path: Path) -> None:
    """Raise :class:`AcquireError` unless ``path`` is a readable video with a picture and a sound stream."""
    if not path.is_file():
        raise AcquireError(f"yt-dlp finished but wrote no {path.name}")
    command = ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type:format=duration", "-of", "json", str(path)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise AcquireError(f"downloaded file is unreadable: {_last_line(result.stderr)}")
    probed = json.loads(result.stdout or "{}")
    kinds = {stream.get("codec_type") for stream in probed.get("streams", [])}
    for kind in ("video", "audio"):
        if kind not in kinds:
            raise AcquireError(f"downloaded file has no {kind} stream")
    if not float(probed.get("format", {}).get("duration") or 0.0) > 0:
        raise AcquireError("downloaded file has no duration")


def _download_failure(error: yt_dlp.utils.DownloadError) -> tuple[str, bool]:
    """(reason, whether retrying cannot help) for a failed yt-dlp download."""
    reason = str(error).removeprefix("ERROR: ").strip()
    cause = error.exc_info[1] if error.exc_info else None
    # yt-dlp marks errors it expects to persist (removed, private, unavailable video) `expected`.
    permanent = isinstance(cause, yt_dlp.utils.ExtractorError) and cause.expected
    return reason, permanent


def _discard_finished_looking(partial_dir: Path) -> None:
    """Remove all but yt-dlp's *.part files: a finished-looking file left by an interrupted
    run may be truncated, whereas a *.part file is resumed and checked by yt-dlp itself."""
    if partial_dir.is_dir():
        for path in partial_dir.iterdir():
            if path.is_dir():
                shutil.rmtree(path)
            elif not path.name.endswith(".part"):
                path.unlink()


def download_video(
    video_id: str,
    url: str,
    out_dir: str | Path,
    retries: int = 3,
    backoff_s: float = 5.0,
    ratelimit: int | None = None,
) -> Path:
    """Download ``url`` to ``videos/<video_id>.mp4`` unless it is already there; return that path.

    yt-dlp works in ``videos/.<video_id>.partial/``; its result is checked with ffprobe and
    renamed into place only when complete.  A failed attempt is retried ``retries`` times,
    waiting ``backoff_s`` seconds, then twice that, and so on (``retries`` is also yt-dlp's
    own count of retries of a network error within an attempt), except when yt-dlp says
    the video is gone; the last reason is raised as :class:`AcquireError`.  ``ratelimit``
    is in bytes per second.
    """
    final = video_path(Path(out_dir).resolve(), video_id)
    if final.is_file():
        return final
    partial_dir = final.parent / f".{video_id}.partial"
    fetched = partial_dir / f"{video_id}.mp4"
    reason = "not attempted"
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff_s * 2 ** (attempt - 1))
        _discard_finished_looking(partial_dir)
        try:
            with yt_dlp.YoutubeDL(ydl_options(partial_dir, video_id, retries=retries, ratelimit=ratelimit)) as ydl:
                ydl.extract_info(url, download=True)
            _check_download(fetched)
        except yt_dlp.utils.DownloadError as error:
            reason, permanent = _download_failure(error)
            if permanent:
                break
            continue
        except AcquireError as error:
            reason = str(error)
            continue
        os.replace(fetched, final)
        shutil.rmtree(partial_dir, ignore_errors=True)
        return final
    raise AcquireError(reason)


def _valid_times(start: Any, end: Any) -> bool:
    """Finite numbers with 0 <= start < end."""
    try:
        start, end = float(start), float(end)
    except (TypeError, ValueError):
        return False
    return math.isfinite(start) and math.isfinite(end) and 0 <= start < end


def _cut_command(source: Path, start: float, end: float, video_out: Path, audio_out: Path) -> list[str]:
    """One ffmpeg run writing both files of a segment from ``source``, re-encoded."""
    coarse = max(0.0, start - INPUT_SEEK_MARGIN_S)
    exact = ["-ss", f"{start - coarse:.6f}", "-t", f"{end - start:.6f}"]
    return [
        "ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-ss",
        f"{coarse:.6f}",
        "-i",
        str(source),
        *exact,
        "-map",
        "0:v:0",
        "-an",
        "-r",
        str(SEGMENT_FPS),
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "23",
        "-pix_fmt",
        "yuv420p",
        "-f",
        "mp4",
        str(video_out),
        *exact,
        "-map",
        "0:a:0",
        "-vn",
        "-ac",
        "1",
        "-ar",
        str(SEGMENT_SAMPLE_RATE),
        "-c:a",
        "pcm_s16le",
        "-f",
        "wav",
        str(audio_out),
    ]


def cut_segment(
    source: str | Path, segment_id: str, start: float, end: float, out_dir: str | Path
) -> tuple[Path, Path]:
    """Cut ``[start, end)`` seconds of ``source`` into ``segments/<segment_id>.mp4`` and ``.wav``.

    Both are written under temporary names and renamed only once ffmpeg has succeeded and
    the sound is as long as the segment; raises :class:`AcquireError` otherwise.
    """
    video_out, audio_out = segment_paths(Path(out_dir).resolve(), segment_id)
    if not _valid_times(start, end):
        raise AcquireError(f"invalid times: start {start!r}, end {end!r}")
    video_out.parent.mkdir(parents=True, exist_ok=True)
    for stale in video_out.parent.glob(f".{segment_id}.*.tmp"):  # left by a killed run
        stale.unlink(missing_ok=True)
    with atomic_path(video_out) as video_tmp, atomic_path(audio_out) as audio_tmp:
        command = _cut_command(Path(source).resolve(), start, end, video_tmp, audio_tmp)
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise AcquireError(f"ffmpeg failed: {_last_line(result.stderr)}")
        try:
            seconds = check_audio(audio_tmp).duration
        except UnusableAudio as error:
            raise AcquireError(f"cut has no usable sound: {error}") from None
        if seconds < end - start - SHORT_CUT_TOLERANCE_S:
            raise AcquireError(f"source ends early: got {seconds:.2f} s of a {end - start:.2f} s segment")
        if video_tmp.stat().st_size == 0:
            raise AcquireError("ffmpeg wrote an empty video")
    return video_out, audio_out


@dataclass
class _VideoJob:
    video: str
    url: str
    segments: list[tuple[str, float, float]]  # (segment, start, end) still to cut


@dataclass
class _VideoOutcome:
    video: str
    downloaded: bool = False
    segments_cut: int = 0
    failures: list[dict] = field(default_factory=list)


def _reason(error: Exception) -> str:
    """An AcquireError's own message; anything unexpected also names its type."""
    return str(error) if isinstance(error, AcquireError) else f"{type(error).__name__}: {error}"


def _failure(item_id: Any, stage: str, reason: str) -> dict:
    log.warning("%s %s failed: %s", stage, item_id, reason)
    return {"id": str(item_id), "stage": stage, "reason": reason}


def _plan(
    segments_table: pd.DataFrame,
    videos_table: pd.DataFrame,
    limit_videos: int | None,
    limit_hours: float | None,
    failures: list[dict],
) -> tuple[dict[str, str], pd.DataFrame]:
    """The videos' URLs and the selected segments (valid ids and times, in id order, within
    the limits); every row that cannot be used is added to ``failures``."""
    needed_columns = ((videos_table, VIDEO_COLUMNS), (segments_table, ("segment", "video", "start", "end", "speaker")))
    for table, needed in needed_columns:
        missing = set(needed) - set(table.columns)
        if missing:
            raise ValueError(f"table lacks column(s) {', '.join(sorted(missing))}")
    for table, key in ((videos_table, "video"), (segments_table, "segment")):
        repeated = table[key][table[key].duplicated()]
        if len(repeated):
            raise ValueError(f"{key} {repeated.iloc[0]!r} appears more than once")

    urls: dict[str, str] = {}
    for video, url in zip(videos_table["video"], videos_table["url"]):
        try:
            urls[check_video_id(video)] = str(url)
        except InvalidId as error:
            failures.append(_failure(video, "download", str(error)))

    rows, videos_without_url = [], set()
    for segment, video, start, end, speaker in zip(
        segments_table["segment"],
        segments_table["video"],
        segments_table["start"],
        segments_table["end"],
        segments_table["speaker"],
    ):
        try:
            check_segment_id(segment)
            check_video_id(video)
        except InvalidId as error:
            failures.append(_failure(segment, "cut", str(error)))
            continue
        if not segment.startswith(video + "_"):
            failures.append(_failure(segment, "cut", f"segment does not belong to video {video}"))
        elif not _valid_times(start, end):
            failures.append(_failure(segment, "cut", f"invalid times: start {start!r}, end {end!r}"))
        elif video not in urls:
            if video not in videos_without_url:
                videos_without_url.add(video)
                failures.append(_failure(video, "download", "no URL for this video in the videos table"))
        else:
            rows.append((segment, video, float(start), float(end), float(end) - float(start), str(speaker)))

    selected = pd.DataFrame(rows, columns=["segment", "video", "start", "end", "duration", "speaker"])
    selected = selected.sort_values("segment", ignore_index=True)
    if limit_videos is not None:
        keep = sorted(selected["video"].unique())[:limit_videos]
        selected = selected[selected["video"].isin(keep)].reset_index(drop=True)
    if limit_hours is not None:
        hours_before = (selected["duration"].cumsum() - selected["duration"]) / 3600
        selected = selected[hours_before < limit_hours].reset_index(drop=True)
    return urls, selected


def _obtain_video(
    job: _VideoJob,
    out_dir: Path,
    retries: int,
    backoff_s: float,
    ratelimit: int | None,
    segment_finished: Callable[[], None],
) -> _VideoOutcome:
    """Download one video if needed, then cut its missing segments; never raises."""
    outcome = _VideoOutcome(job.video)
    try:
        already_there = video_path(out_dir, job.video).is_file()
        source = download_video(job.video, job.url, out_dir, retries=retries, backoff_s=backoff_s, ratelimit=ratelimit)
        outcome.downloaded = not already_there
    except Exception as error:  # noqa: BLE001 - one bad video must not stop the run
        outcome.failures.append(_failure(job.video, "download", _reason(error)))
        for _ in job.segments:
            segment_finished()
        return outcome
    for segment, start, end in job.segments:
        try:
            cut_segment(source, segment, start, end, out_dir)
            outcome.segments_cut += 1
        except Exception as error:  # noqa: BLE001 - nor one bad segment
            outcome.failures.append(_failure(segment, "cut", _reason(error)))
        segment_finished()
    return outcome


def acquire(
    segments_table: pd.DataFrame,
    videos_table: pd.DataFrame,
    out_dir: str | Path,
    limit_videos: int | None = None,
    limit_hours: float | None = None,
    workers: int = 2,
    retries: int = 3,
    backoff_s: float = 5.0,
    ratelimit: int | None = None,
) -> dict[str, Any]:
    """Obtain the segments of ``segments_table`` (see :mod:`liser.corpora.mspface`) under ``out_dir``.

    Segments are taken in id order: those of the first ``limit_videos`` videos, and of
    those, segments until their total reaches ``limit_hours``.  Segments already cut are skipped, and a video is
    downloaded only if one of its segments is missing.  ``workers`` videos are processed
    at a time.  Every failure is recorded as (id, stage "download" or "cut", reason) and
    the run carries on; a failed download is one entry, for its video.

    The obtained rows of ``segments_table`` are written to ``out_dir/segments.parquet``.
    Returns the report, also written to ``out_dir/report.json``: videos_ok, videos_failed,
    segments_ok, segments_failed (selected or rejected segments not obtained, whatever the
    stage), hours_obtained, speakers_obtained, what this run did (videos_downloaded,
    segments_cut), the selection's size, and failures.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1 (got {workers})")
    out_dir = Path(out_dir).resolve()
    failures: list[dict] = []
    urls, selected = _plan(segments_table, videos_table, limit_videos, limit_hours, failures)
    rejected_segments = sum(1 for failure in failures if failure["stage"] == "cut")

    done_before = {segment for segment in selected["segment"] if _segment_done(out_dir, segment)}
    jobs = [
        _VideoJob(video, urls[video], [(row.segment, row.start, row.end) for row in rows.itertuples()])
        for video, rows in selected[~selected["segment"].isin(done_before)].groupby("video", sort=True)
    ]

    outcomes: list[_VideoOutcome] = []
    progress = tqdm(total=len(selected), initial=len(done_before), desc="MSP-Face segments", unit="segment")
    progress_lock = threading.Lock()

    def segment_finished() -> None:
        with progress_lock:
            progress.update(1)

    with progress, ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(_obtain_video, job, out_dir, retries, backoff_s, ratelimit, segment_finished) for job in jobs
        ]
        try:
            for future in as_completed(futures):
                outcomes.append(future.result())
        except BaseException:  # e.g. Ctrl-C: finish the videos under way, start no more
            pool.shutdown(cancel_futures=True)
            raise

    for outcome in outcomes:
        failures.extend(outcome.failures)
    obtained = selected[selected["segment"].map(lambda segment: _segment_done(out_dir, segment)).astype(bool)]
    failed_downloads = {failure["id"] for failure in failures if failure["stage"] == "download"}
    selected_videos = set(selected["video"])
    report = {
        "videos_selected": len(selected_videos),
        "segments_selected": len(selected),
        "hours_selected": float(selected["duration"].sum() / 3600),
        "videos_ok": len(selected_videos - failed_downloads),
        "videos_failed": len(failed_downloads),
        "segments_ok": len(obtained),
        "segments_failed": len(selected) - len(obtained) + rejected_segments,
        "hours_obtained": float(obtained["duration"].sum() / 3600),
        "speakers_obtained": int(obtained["speaker"].nunique()),
        "videos_downloaded": sum(outcome.downloaded for outcome in outcomes),
        "segments_cut": sum(outcome.segments_cut for outcome in outcomes),
        "failures": sorted(failures, key=lambda failure: (failure["stage"], failure["id"])),
    }
    write_json(out_dir / REPORT_NAME, report)
    write_parquet(out_dir / OBTAINED_NAME, segments_table[segments_table["segment"].isin(set(obtained["segment"]))])
    log.info(
        "MSP-Face: %d of %d segments (%.2f h), %d failure(s); report in %s",
        report["segments_ok"],
        report["segments_selected"],
        report["hours_obtained"],
        len(failures),
        out_dir / REPORT_NAME,
    )
    return report
