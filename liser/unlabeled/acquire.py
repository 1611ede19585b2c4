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
patterns before any path is built from them, and only https YouTube URLs are fetched (local
files too when :attr:`AcquireOptions.allow_local_files`, as the demo needs).

Every failure is classified (:data:`FAILURE_CLASSES`).  Videos that are gone (removed, private,
unavailable in this region, age-restricted) are not tried again by later runs unless
``retry_gone``; bot checks, HTTP 429 and network failures are, since they pass.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.parse
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
    "FAILURE_CLASSES",
    "GONE",
    "AcquireError",
    "AcquireOptions",
    "acquire",
    "failure_class",
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


YOUTUBE_HOSTS = frozenset({"youtube.com", "www.youtube.com", "m.youtube.com", "music.youtube.com", "youtu.be"})

# What went wrong, from yt-dlp's and ffmpeg's messages; the first pattern that matches wins.
FAILURE_CLASSES = ("removed", "private", "region", "age", "bot_check", "network", "ffmpeg", "invalid", "other")
GONE = frozenset({"removed", "private", "region", "age"})  # later runs do not try these again unless asked
_CLASS_PATTERNS = [
    ("bot_check", r"not a bot|HTTP Error 429|Too Many Requests"),
    ("age", r"confirm your age|age[- ]restricted|inappropriate for some users"),
    ("private", r"private video|this video is private"),
    ("region", r"in your country|geo[- ]?restrict|not available in your (region|location)"),
    # a local file (the demo's stand-in for a video page) that is not there is gone too
    ("removed", r"removed|no longer available|terminated|does not exist|video unavailable|deleted|no such file"),
    (
        "network",
        r"timed out|name resolution|connection (reset|refused|aborted)|network is unreachable|name or service not "
        r"known|remote end closed|HTTP Error 5\d\d|IncompleteRead|urlopen error|SSL|errno 10[0-9]",
    ),
    ("ffmpeg", r"ffmpeg|ffprobe|unreadable|no (video|audio) stream|no duration|postprocess|source ends early"),
]


def failure_class(reason: str) -> str:
    """The class of a download or cut failure, from its message (:data:`FAILURE_CLASSES`)."""
    for name, pattern in _CLASS_PATTERNS:
        if re.search(pattern, reason, flags=re.IGNORECASE):
            return name
    return "other"


@dataclass(frozen=True)
class AcquireOptions:
    """How videos are fetched (the ``mspface`` parameters of the same names).

    ``cookies`` is a cookies.txt (Netscape format) and ``cookies_from_browser`` a browser to read them from
    (``firefox``, ``chrome:Profile 1``): what YouTube's bot checks and age gates ask for.  Each download waits
    ``sleep_s`` seconds first (a random time up to ``max_sleep_s`` when given), and at most ``per_host`` downloads run
    at once against one host.
    """

    retries: int = 3
    backoff_s: float = 5.0
    ratelimit: int | None = None
    cookies: Path | None = None
    cookies_from_browser: str | None = None
    sleep_s: float = 0.0
    max_sleep_s: float | None = None
    per_host: int = 1
    retry_gone: bool = False
    allow_local_files: bool = False

    def check(self) -> None:
        if self.cookies is not None and not Path(self.cookies).is_file():
            raise ValueError(f"mspface.cookies: {self.cookies} is not a file (export one in the Netscape format)")
        if self.max_sleep_s is not None and self.max_sleep_s < self.sleep_s:
            raise ValueError(f"mspface.max_sleep_s ({self.max_sleep_s}) is below mspface.sleep_s ({self.sleep_s})")
        if self.per_host < 1:
            raise ValueError(f"mspface.per_host must be at least 1 (got {self.per_host})")


def url_problem(url: str, allow_local_files: bool) -> str | None:
    """Why ``url`` is not fetched, or None: https YouTube URLs only, and local files when allowed."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and (parts.hostname or "").lower() in YOUTUBE_HOSTS:
        return None
    if parts.scheme == "file" and allow_local_files:
        return None
    if parts.scheme == "file":
        return "a local file URL; set mspface.allow_local_files to fetch local files"
    return f"not an https YouTube URL: {url!r}"


def _host(url: str) -> str:
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    return "youtube" if host in YOUTUBE_HOSTS else host


class AcquireError(RuntimeError):
    """A download or cut that did not produce its files; the message is the reason."""


class UrlRefused(AcquireError):
    """A URL of the lists that is not fetched (not https YouTube, or a local file without allow_local_files)."""


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


def ydl_options(download_dir: str | Path, video_id: str, options: AcquireOptions | None = None) -> dict[str, Any]:
    """Options for ``yt_dlp.YoutubeDL`` that download one video to ``<download_dir>/<video_id>.mp4``.

    ``download_dir`` is a working folder, not the final place: the caller renames the file
    out of it once complete.
    """
    options = options or AcquireOptions()
    download_dir = Path(download_dir).resolve()
    # The folder is taken literally; % would otherwise start a template field.
    template = str(download_dir).replace("%", "%%") + os.sep + check_video_id(video_id) + ".%(ext)s"
    settings: dict[str, Any] = {
        "format": FORMAT,
        "merge_output_format": "mp4",
        "postprocessors": [{"key": "FFmpegVideoRemuxer", "preferedformat": "mp4"}],
        "outtmpl": {"default": template},
        "noplaylist": True,
        "retries": options.retries,
        "fragment_retries": options.retries,
        "extractor_retries": options.retries,
        "file_access_retries": options.retries,
        "ratelimit": options.ratelimit,
        "socket_timeout": 30,
        # A *.part file is resumed by byte range; a finished-looking file is fetched again.
        "continuedl": True,
        "overwrites": True,
        "updatetime": False,
        "quiet": True,
        "noprogress": True,
        "color": "no_color",
        "logger": _YtDlpLog(),
        # yt-dlp refuses file:// URLs unless told; only the demo's local lists need them.
        "enable_file_urls": options.allow_local_files,
        # YouTube's player JavaScript is run by the Deno binary that the `deno` package ships.
        "js_runtimes": {"deno": {"path": deno.find_deno_bin()}},
    }
    if options.cookies is not None:
        settings["cookiefile"] = str(options.cookies)
    if options.cookies_from_browser:
        browser, _, profile = options.cookies_from_browser.partition(":")
        settings["cookiesfrombrowser"] = (browser, profile or None, None, None)
    if options.sleep_s > 0:
        settings["sleep_interval"] = options.sleep_s
        if options.max_sleep_s is not None:
            settings["max_sleep_interval"] = options.max_sleep_s
    return settings


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
    """(reason, whether retrying now cannot help) for a failed yt-dlp download: the video is gone (yt-dlp marks
    errors it expects to persist ``expected``), or a bot check or rate limit that more tries would only prolong."""
    reason = str(error).removeprefix("ERROR: ").strip()
    cause = error.exc_info[1] if error.exc_info else None
    expected = isinstance(cause, yt_dlp.utils.ExtractorError) and cause.expected
    return reason, expected or failure_class(reason) in GONE | {"bot_check"}


def _discard_finished_looking(partial_dir: Path) -> None:
    """Remove all but yt-dlp's *.part files: a finished-looking file left by an interrupted
    run may be truncated, whereas a *.part file is resumed and checked by yt-dlp itself."""
    if partial_dir.is_dir():
        for path in partial_dir.iterdir():
            if path.is_dir():
                shutil.rmtree(path)
            elif not path.name.endswith(".part"):
                path.unlink()


def download_video(video_id: str, url: str, out_dir: str | Path, options: AcquireOptions | None = None) -> Path:
    """Download ``url`` to ``videos/<video_id>.mp4`` unless it is already there; return that path.

    yt-dlp works in ``videos/.<video_id>.partial/``; its result is checked with ffprobe and
    renamed into place only when complete.  A failed attempt is retried ``options.retries`` times,
    waiting ``backoff_s`` seconds, then twice that, and so on (``retries`` is also yt-dlp's
    own count of retries of a network error within an attempt), except when the video is gone
    or a bot check or rate limit answered; the last reason is raised as :class:`AcquireError`.
    """
    options = options or AcquireOptions()
    final = video_path(Path(out_dir).resolve(), video_id)
    problem = url_problem(url, options.allow_local_files)
    if problem:
        raise UrlRefused(problem)
    if final.is_file():
        return final
    partial_dir = final.parent / f".{video_id}.partial"
    fetched = partial_dir / f"{video_id}.mp4"
    reason = "not attempted"
    for attempt in range(options.retries + 1):
        if attempt:
            time.sleep(options.backoff_s * 2 ** (attempt - 1))
        _discard_finished_looking(partial_dir)
        try:
            with yt_dlp.YoutubeDL(ydl_options(partial_dir, video_id, options)) as ydl:
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


def _failure(item_id: Any, stage: str, reason: str, kind: str | None = None) -> dict:
    """One failure: the video or segment, the stage (download or cut), the reason and its class."""
    kind = kind or failure_class(reason)
    log.warning("%s %s failed (%s): %s", stage, item_id, kind, reason)
    return {"id": str(item_id), "stage": stage, "class": kind, "reason": reason}


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
            failures.append(_failure(video, "download", str(error), "invalid"))

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
            failures.append(_failure(segment, "cut", str(error), "invalid"))
            continue
        if not segment.startswith(video + "_"):
            failures.append(_failure(segment, "cut", f"segment does not belong to video {video}", "invalid"))
        elif not _valid_times(start, end):
            failures.append(_failure(segment, "cut", f"invalid times: start {start!r}, end {end!r}", "invalid"))
        elif video not in urls:
            if video not in videos_without_url:
                videos_without_url.add(video)
                failures.append(_failure(video, "download", "no URL for this video in the videos table", "invalid"))
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
    options: AcquireOptions,
    host_slots: dict[str, threading.Semaphore],
    segment_finished: Callable[[], None],
) -> _VideoOutcome:
    """Download one video if needed (at most ``per_host`` at a time per host), then cut its missing segments;
    never raises."""
    outcome = _VideoOutcome(job.video)
    try:
        already_there = video_path(out_dir, job.video).is_file()
        with host_slots[_host(job.url)]:
            source = download_video(job.video, job.url, out_dir, options)
        outcome.downloaded = not already_there
    except Exception as error:  # noqa: BLE001 - one bad video must not stop the run
        kind = "invalid" if isinstance(error, UrlRefused) else None
        outcome.failures.append(_failure(job.video, "download", _reason(error), kind))
        for _ in job.segments:
            segment_finished()
        return outcome
    for segment, start, end in job.segments:
        try:
            cut_segment(source, segment, start, end, out_dir)
            outcome.segments_cut += 1
        except Exception as error:  # noqa: BLE001 - nor one bad segment
            outcome.failures.append(_failure(segment, "cut", _reason(error), "ffmpeg"))
        segment_finished()
    return outcome


def _gone_before(out_dir: Path) -> dict[str, dict]:
    """The videos an earlier run found gone (removed, private, ...), from its report: video -> its failure."""
    try:
        earlier = json.loads((out_dir / REPORT_NAME).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return {
        failure["id"]: failure
        for failure in earlier.get("failures", [])
        if failure.get("stage") == "download" and failure.get("class") in GONE
    }


def acquire(
    segments_table: pd.DataFrame,
    videos_table: pd.DataFrame,
    out_dir: str | Path,
    limit_videos: int | None = None,
    limit_hours: float | None = None,
    workers: int = 2,
    options: AcquireOptions | None = None,
) -> dict[str, Any]:
    """Obtain the segments of ``segments_table`` (see :mod:`liser.corpora.mspface`) under ``out_dir``.

    Segments are taken in id order: those of the first ``limit_videos`` videos, and of
    those, segments until their total reaches ``limit_hours``.  Segments already cut are skipped, and a video is
    downloaded only if one of its segments is missing.  ``workers`` videos are processed
    at a time.  Every failure is recorded as (id, stage "download" or "cut", class, reason) and
    the run carries on; a failed download is one entry, for its video.  A video an earlier run found
    gone is not tried again (its failure is carried over) unless ``options.retry_gone``.

    The obtained rows of ``segments_table`` are written to ``out_dir/segments.parquet``.
    Returns the report, also written to ``out_dir/report.json``: videos_ok, videos_failed,
    segments_ok, segments_failed (selected or rejected segments not obtained, whatever the
    stage), hours_obtained, speakers_obtained, failures per class, the selection's size, the failures, and what
    this run did (``this_run``: videos downloaded, segments cut, videos not retried).
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1 (got {workers})")
    options = options or AcquireOptions()
    options.check()
    out_dir = Path(out_dir).resolve()
    failures: list[dict] = []
    urls, selected = _plan(segments_table, videos_table, limit_videos, limit_hours, failures)
    rejected_segments = sum(1 for failure in failures if failure["stage"] == "cut")

    done_before = {segment for segment in selected["segment"] if _segment_done(out_dir, segment)}
    gone = {} if options.retry_gone else _gone_before(out_dir)
    jobs, not_retried, skipped_segments = [], 0, 0
    for video, rows in selected[~selected["segment"].isin(done_before)].groupby("video", sort=True):
        if video in gone:
            failures.append(gone[video])
            not_retried, skipped_segments = not_retried + 1, skipped_segments + len(rows)
            continue
        jobs.append(_VideoJob(video, urls[video], [(row.segment, row.start, row.end) for row in rows.itertuples()]))
    if not_retried:
        log.info("%d video(s) found gone by an earlier run not tried again (mspface.retry_gone)", not_retried)
    host_slots: dict[str, threading.Semaphore] = {}
    for job in jobs:
        host_slots.setdefault(_host(job.url), threading.Semaphore(options.per_host))

    outcomes: list[_VideoOutcome] = []
    progress = tqdm(
        total=len(selected), initial=len(done_before) + skipped_segments, desc="MSP-Face segments", unit="segment"
    )
    progress_lock = threading.Lock()

    def segment_finished() -> None:
        with progress_lock:
            progress.update(1)

    with progress, ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_obtain_video, job, out_dir, options, host_slots, segment_finished) for job in jobs]
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
        "failures_by_class": {kind: sum(failure["class"] == kind for failure in failures) for kind in FAILURE_CLASSES},
        "failures": sorted(failures, key=lambda failure: (failure["stage"], failure["id"])),
        "this_run": {
            "videos_downloaded": sum(outcome.downloaded for outcome in outcomes),
            "segments_cut": sum(outcome.segments_cut for outcome in outcomes),
            "videos_not_retried": not_retried,
        },
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
