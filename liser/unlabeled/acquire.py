"""Obtaining the unlabeled corpus's segments: each source video downloaded once with yt-dlp and each segment cut from
it with ffmpeg (MSP-Face, AVSpeech), or, for a corpus of files (VoxCeleb2, a folder), each file checked and its sound
taken out, the picture staying where it is.

Everything lives under one output folder::

    videos/<video>.mp4           the source video as downloaded (MP4)
    videos/.<video>.partial/     yt-dlp's working folder while that download is under way
    segments/<segment>.mp4       a cut segment's picture: H.264, yuv420p, 30 fps, no sound
    segments/<segment>.wav       the segment's sound: 16 kHz mono PCM16
    report.json                  what was obtained and every failure, with its reason
    segments.parquet             the obtained segments: where each one's picture and sound are (OBTAINED_COLUMNS)

Whether a piece of work is done is decided by its final files alone, and a final file only
ever appears by an atomic rename of a complete one, so an interrupted run is resumed by
running again: it redoes exactly what is missing.  yt-dlp is driven through its Python API
and ffmpeg through argument lists, never a shell; ids are checked before any path is built
from them, and only https YouTube URLs are fetched (local files too when
:attr:`AcquireOptions.allow_local_files`, as the demo needs).

Every failure is classified (:data:`FAILURE_CLASSES`).  Videos that are gone (removed, private,
unavailable in this region, age-restricted) are not tried again by later runs unless
``retry_gone``; bot checks, HTTP 429 and network failures are, since they pass.  Reasons name
files relative to the project, and a listed URL as the list gives it, so the report is the same
in every checkout.

On this machine (``runtime.cluster: local``) videos are handled ``workers`` at a time by threads
of the stage.  On Ray, each video (or file) is a task: it downloads into its own temporary folder
(unless ``runtime.shared_root`` lets it use the project's), cuts, and returns the segments' files,
which the stage writes; the downloaded video is then not kept.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import deno
import pandas as pd
import yt_dlp
from tqdm import tqdm

from liser.cluster import ON_THIS_MACHINE, Resources, job_input, run_jobs
from liser.corpora.audio_check import UnusableAudio, check_audio
from liser.corpora.audiovisual import InvalidId, check_id
from liser.files import atomic_path, write_bytes, write_json, write_parquet
from liser.logs import UserError
from liser.params import RuntimeParams
from liser.processes import run_tool

__all__ = [
    "OBTAINED_COLUMNS",
    "OBTAINED_NAME",
    "FAILURE_CLASSES",
    "GONE",
    "AcquireError",
    "AcquireOptions",
    "NothingObtained",
    "acquire",
    "failure_class",
    "prepare_files",
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
# an obtained segment: where its picture is (the cut segment, or the corpus's own file, from start_s to end_s; NaN:
# its end), where its sound is, how long it lasts, who speaks, and the corpus's listed face position and boxes
OBTAINED_COLUMNS = (
    "segment",
    "video_file",
    "start_s",
    "end_s",
    "audio_file",
    "duration",
    "speaker",
    "gender",
    "face_x",
    "face_y",
    "boxes",
)
# What one task takes on a Ray node (a download and its cuts, or one file's check and sound): ffmpeg and yt-dlp at
# one core, and memory with room to spare (the whole stage, two videos at a time, peaked at 211 MB on the demo).
VIDEO_TASK = Resources(cpus=1, memory_mb=512)


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


class NothingObtained(UserError, RuntimeError):
    """An acquisition that obtained no segment: the report says why."""


def video_path(out_dir: str | Path, video_id: str) -> Path:
    """``videos/<video_id>.mp4`` under ``out_dir``, for a valid video id only."""
    return Path(out_dir) / "videos" / f"{check_id(video_id, 'video')}.mp4"


def segment_paths(out_dir: str | Path, segment_id: str) -> tuple[Path, Path]:
    """``segments/<segment_id>.mp4`` and ``.wav`` under ``out_dir``, for a valid segment id only."""
    segment_id = check_id(segment_id)
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
    template = str(download_dir).replace("%", "%%") + os.sep + check_id(video_id, "video") + ".%(ext)s"
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
    result = run_tool(command)
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


FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]  # quiet, overwriting, no keyboard


def _sound_output(audio_out: Path) -> list[str]:
    """ffmpeg's output options for a segment's sound: its first audio stream, mono 16-bit WAV at the segment rate."""
    return [
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


def _cut_command(source: Path, start: float, end: float, video_out: Path, audio_out: Path) -> list[str]:
    """One ffmpeg run writing both files of a segment from ``source``, re-encoded."""
    coarse = max(0.0, start - INPUT_SEEK_MARGIN_S)
    exact = ["-ss", f"{start - coarse:.6f}", "-t", f"{end - start:.6f}"]
    return [
        *FFMPEG,
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
        *_sound_output(audio_out),
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
        result = run_tool(command)
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


def _reason(error: Exception) -> str:
    """An AcquireError's own message; anything unexpected also names its type."""
    return str(error) if isinstance(error, AcquireError) else f"{type(error).__name__}: {error}"


def _failure(item_id: Any, stage: str, reason: str, kind: str | None = None) -> dict:
    """One failure: the video or segment, the stage (download, cut or file), the reason and its class."""
    kind = kind or failure_class(reason)
    log.warning("%s %s failed (%s): %s", stage, item_id, kind, reason)
    return {"id": str(item_id), "stage": stage, "class": kind, "reason": reason}


def _portable(reason: str, replacements: dict[str, str]) -> str:
    """``reason`` with this machine's absolute paths (and URLs made of them) put as the project names them."""
    for long, short in sorted(replacements.items(), key=lambda item: -len(item[0])):
        if long and long != short:
            reason = reason.replace(long, short)
    return reason


def _plan(
    segments_table: pd.DataFrame,
    videos_table: pd.DataFrame,
    limit_videos: int | None,
    limit_hours: float | None,
    failures: list[dict],
) -> tuple[dict[str, tuple[str, str]], pd.DataFrame]:
    """The videos' URLs (to fetch, as listed) and the selected segments (valid ids and times, in id order, within
    the limits); every row that cannot be used is added to ``failures``."""
    needed_columns = (
        (videos_table, ("video", "url")),
        (segments_table, ("segment", "video", "start", "end", "speaker")),
    )
    for table, needed in needed_columns:
        missing = set(needed) - set(table.columns)
        if missing:
            raise ValueError(f"table lacks column(s) {', '.join(sorted(missing))}")
    for table, key in ((videos_table, "video"), (segments_table, "segment")):
        repeated = table[key][table[key].duplicated()]
        if len(repeated):
            raise ValueError(f"{key} {repeated.iloc[0]!r} appears more than once")

    urls: dict[str, tuple[str, str]] = {}
    listed = videos_table["listed"] if "listed" in videos_table.columns else videos_table["url"]
    for video, url, as_listed in zip(videos_table["video"], videos_table["url"], listed):
        try:
            urls[check_id(video, "video")] = (str(url), str(as_listed))
        except InvalidId as error:
            failures.append(_failure(video, "download", str(error), "invalid"))

    optional = {name: segments_table[name] if name in segments_table.columns else None for name in ("gender",)}
    rows, videos_without_url = [], set()
    for index, (segment, video, start, end, speaker) in enumerate(
        zip(
            segments_table["segment"],
            segments_table["video"],
            segments_table["start"],
            segments_table["end"],
            segments_table["speaker"],
        )
    ):
        try:
            check_id(segment)
            check_id(video, "video")
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
            gender = "unknown" if optional["gender"] is None else str(optional["gender"].iloc[index])
            rows.append((segment, video, float(start), float(end), float(end) - float(start), str(speaker), gender))

    columns = ["segment", "video", "start", "end", "duration", "speaker", "gender"]
    selected = pd.DataFrame(rows, columns=columns).sort_values("segment", ignore_index=True)
    if limit_videos is not None:
        keep = sorted(selected["video"].unique())[:limit_videos]
        selected = selected[selected["video"].isin(keep)].reset_index(drop=True)
    if limit_hours is not None:
        hours_before = (selected["duration"].cumsum() - selected["duration"]) / 3600
        selected = selected[hours_before < limit_hours].reset_index(drop=True)
    return urls, selected


# --- one video: download it, cut its segments ---------------------------------------------------------------------


@dataclass(frozen=True)
class _VideoJob:
    video: str
    url: str  # what is fetched
    listed: str  # the URL as the list gives it, for the reasons
    segments: list[tuple[str, float, float]]  # (segment, start, end) still to cut
    out_dir: str | None  # where the files go; None: a temporary folder, the files returned
    options: AcquireOptions


@dataclass
class _Outcome:
    """What one job did; ``files`` (path under the output folder -> bytes) are the stage's to write."""

    item: str
    downloaded: bool = False
    segments_done: int = 0
    failures: list[dict] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)


@contextlib.contextmanager
def _job_folder(out_dir: str | None):
    """The job's output folder: the stage's, or a temporary one whose files the job returns."""
    if out_dir is not None:
        yield Path(out_dir), {}
        return
    with tempfile.TemporaryDirectory(prefix="liser-acquire-") as folder:
        yield Path(folder), {str(Path(folder)): "the task's folder"}


def _returned_files(folder: Path, names: list[str]) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in names}


def obtain_video(job: _VideoJob) -> _Outcome:
    """Download one video if needed, then cut its missing segments; never raises."""
    outcome = _Outcome(job.video)
    with _job_folder(job.out_dir) as (out_dir, private):
        replacements = {job.url: job.listed, urllib.parse.unquote(job.url.removeprefix("file://")): job.listed}
        replacements.update(private)
        try:
            already_there = video_path(out_dir, job.video).is_file()
            source = download_video(job.video, job.url, out_dir, job.options)
            outcome.downloaded = not already_there
        except Exception as error:  # noqa: BLE001 - one bad video must not stop the run
            kind = "invalid" if isinstance(error, UrlRefused) else None
            outcome.failures.append(_failure(job.video, "download", _portable(_reason(error), replacements), kind))
            return outcome
        cut = []
        for segment, start, end in job.segments:
            try:
                cut_segment(source, segment, start, end, out_dir)
                outcome.segments_done += 1
                cut += [f"segments/{segment}.mp4", f"segments/{segment}.wav"]
            except Exception as error:  # noqa: BLE001 - nor one bad segment
                outcome.failures.append(_failure(segment, "cut", _portable(_reason(error), replacements), "ffmpeg"))
        if private:
            outcome.files = _returned_files(out_dir, cut)
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


def _remove_stale(out_dir: Path) -> None:
    """Temporary files a killed run left behind."""
    for stale in (out_dir / "segments").glob(".*.tmp"):
        stale.unlink(missing_ok=True)


def _write_returned(out_dir: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        write_bytes(out_dir / name, data)


def _obtained_table(selected: pd.DataFrame, out_given: Path, extra: pd.DataFrame | None) -> pd.DataFrame:
    """The obtained rows of ``selected`` (segment, duration, speaker, gender) as OBTAINED_COLUMNS."""
    table = pd.DataFrame(
        {
            "segment": selected["segment"],
            "video_file": [str(out_given / "segments" / f"{s}.mp4") for s in selected["segment"]],
            "start_s": 0.0,
            "end_s": float("nan"),
            "audio_file": [str(out_given / "segments" / f"{s}.wav") for s in selected["segment"]],
            "duration": selected["duration"],
            "speaker": selected["speaker"],
            "gender": selected["gender"],
            "face_x": float("nan"),
            "face_y": float("nan"),
            "boxes": "",
        },
        columns=list(OBTAINED_COLUMNS),
    )
    if extra is not None:
        listed = extra.set_index("segment")
        for column in ("face_x", "face_y", "boxes"):
            if column in listed.columns:
                table[column] = table["segment"].map(listed[column]).to_numpy()
    return table.reset_index(drop=True)


def acquire(
    segments_table: pd.DataFrame,
    videos_table: pd.DataFrame,
    out_dir: str | Path,
    limit_videos: int | None = None,
    limit_hours: float | None = None,
    workers: int = 2,
    options: AcquireOptions | None = None,
    runtime: RuntimeParams | None = None,
    extra: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Obtain the segments of ``segments_table`` (segment, video, start, end, speaker[, gender]) from the videos of
    ``videos_table`` (video, url[, listed]) under ``out_dir``.

    Segments are taken in id order: those of the first ``limit_videos`` videos, and of
    those, segments until their total reaches ``limit_hours``.  Segments already cut are skipped, and a video is
    downloaded only if one of its segments is missing.  ``workers`` videos are processed
    at a time here (at most ``options.per_host`` from one host), or as many as the Ray cluster of ``runtime``
    takes.  Every failure is recorded as (id, stage "download" or "cut", class, reason) and
    the run carries on; a failed download is one entry, for its video.  A video an earlier run found
    gone is not tried again (its failure is carried over) unless ``options.retry_gone``.  ``extra``: the corpus's
    segments table, whose listed face positions and boxes go into the obtained table.

    The obtained segments are written to ``out_dir/segments.parquet`` (:data:`OBTAINED_COLUMNS`).
    Returns the report, also written to ``out_dir/report.json``: videos_ok, videos_failed,
    segments_ok, segments_failed (selected or rejected segments not obtained, whatever the
    stage), hours_obtained, speakers_obtained, failures per class, the selection's size and the failures; and,
    returned and logged but not written, what this run did (``this_run``: videos downloaded, segments cut, videos
    not retried).
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1 (got {workers})")
    runtime = runtime or ON_THIS_MACHINE
    options = options or AcquireOptions()
    options.check()
    out_given = Path(out_dir)
    out_dir = out_given.resolve()
    failures: list[dict] = []
    urls, selected = _plan(segments_table, videos_table, limit_videos, limit_hours, failures)
    rejected_segments = sum(1 for failure in failures if failure["stage"] == "cut")

    _remove_stale(out_dir)
    done_before = {segment for segment in selected["segment"] if _segment_done(out_dir, segment)}
    gone = {} if options.retry_gone else _gone_before(out_dir)
    jobs, not_retried, skipped_segments = [], 0, 0
    returned = runtime.cluster == "ray" and runtime.shared_root is None
    task_out = None if returned else str(out_dir if runtime.shared_root is None else runtime.shared_root / out_given)
    for video, rows in selected[~selected["segment"].isin(done_before)].groupby("video", sort=True):
        if video in gone:
            failures.append(gone[video])
            not_retried, skipped_segments = not_retried + 1, skipped_segments + len(rows)
            continue
        segments = [(row.segment, row.start, row.end) for row in rows.itertuples()]
        jobs.append(_VideoJob(video, *urls[video], segments, task_out, options))
    if not_retried:
        log.info("%d video(s) found gone by an earlier run not tried again (mspface.retry_gone)", not_retried)

    outcomes: list[_Outcome] = []
    progress = tqdm(total=len(selected), initial=len(done_before) + skipped_segments, desc="segments", unit="segment")
    try:
        with (
            progress,
            contextlib.closing(
                run_jobs(
                    obtain_video,
                    jobs,
                    runtime,
                    workers=workers,
                    resources=VIDEO_TASK,
                    kind="thread",
                    group_of=lambda index: _host(jobs[index].url),
                    group_limit=options.per_host,
                )
            ) as results,
        ):
            for index, outcome in results:
                _write_returned(out_dir, outcome.files)
                outcome.files = {}
                outcomes.append(outcome)
                progress.update(len(jobs[index].segments))
    finally:
        _remove_stale(out_dir)

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
    }
    write_json(out_dir / REPORT_NAME, report)
    write_parquet(out_dir / OBTAINED_NAME, _obtained_table(obtained, out_given, extra))
    this_run = {
        "videos_downloaded": sum(outcome.downloaded for outcome in outcomes),
        "segments_cut": sum(outcome.segments_done for outcome in outcomes),
        "videos_not_retried": not_retried,
    }
    log.info(
        "%d of %d segments (%.2f h), %d failure(s); this run: %s; report in %s",
        report["segments_ok"],
        report["segments_selected"],
        report["hours_obtained"],
        len(failures),
        this_run,
        out_given / REPORT_NAME,
    )
    return {**report, "this_run": this_run}


# --- a corpus of files: check each one, take out its sound -------------------------------------------------------


@dataclass(frozen=True)
class _FileJob:
    segment: str
    source: str | bytes  # the file's path (this worker reads it), or its bytes
    label: str  # the file as the stage names it
    start: float
    end: float | None  # None: the file's end
    out_dir: str | None  # None: a temporary folder, the sound returned


def _probe(path: Path) -> tuple[set[str], float]:
    """The stream kinds of a media file and its duration; AcquireError when ffprobe cannot read it."""
    command = ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type:format=duration", "-of", "json", str(path)]
    result = run_tool(command)
    if result.returncode != 0:
        raise AcquireError(f"unreadable video: {_last_line(result.stderr)}")
    probed = json.loads(result.stdout or "{}")
    kinds = {stream.get("codec_type") for stream in probed.get("streams", [])}
    return kinds, float(probed.get("format", {}).get("duration") or 0.0)


def _sound_command(source: Path, start: float, end: float | None, audio_out: Path) -> list[str]:
    span = ["-ss", f"{start:.6f}"] + ([] if end is None else ["-t", f"{end - start:.6f}"])
    return [
        *FFMPEG,
        "-i",
        str(source),
        *span,
        *_sound_output(audio_out),
    ]


def prepare_file(job: _FileJob) -> _Outcome:
    """Check one file of the corpus (a picture and a sound stream, long enough) and write its sound as
    ``segments/<segment>.wav``; never raises."""
    outcome = _Outcome(job.segment)
    with contextlib.ExitStack() as stack:
        out_dir, private = stack.enter_context(_job_folder(job.out_dir))
        replacements = dict(private)
        source = Path(job.source) if isinstance(job.source, str) else out_dir / "source"
        if isinstance(job.source, bytes):
            source.write_bytes(job.source)
        replacements[str(source)] = job.label
        _, audio_out = segment_paths(out_dir, job.segment)
        audio_out.parent.mkdir(parents=True, exist_ok=True)
        try:
            kinds, duration = _probe(source)
            for kind in ("video", "audio"):
                if kind not in kinds:
                    raise AcquireError(f"unreadable video: no {kind} stream")
            if job.end is not None and duration < job.end - SHORT_CUT_TOLERANCE_S:
                raise AcquireError(f"source ends early: {duration:.2f} s, the segment ends at {job.end:.2f} s")
            with atomic_path(audio_out) as tmp:
                result = run_tool(_sound_command(source, job.start, job.end, tmp))
                if result.returncode != 0:
                    raise AcquireError(f"ffmpeg failed: {_last_line(result.stderr)}")
                try:
                    check_audio(tmp)
                except UnusableAudio as error:
                    raise AcquireError(f"no usable sound: {error}") from None
            outcome.segments_done = 1
            if private:
                outcome.files = _returned_files(out_dir, [f"segments/{job.segment}.wav"])
        except Exception as error:  # noqa: BLE001 - one bad file must not stop the run
            outcome.failures.append(_failure(job.segment, "file", _portable(_reason(error), replacements)))
    return outcome


def _file_duration(audio: Path) -> float:
    return check_audio(audio).duration


def prepare_files(
    segments: pd.DataFrame, out_dir: str | Path, workers: int = 2, runtime: RuntimeParams | None = None
) -> dict[str, Any]:
    """Obtain a corpus of files (:data:`liser.corpora.audiovisual.SEGMENT_COLUMNS`): each segment's file checked
    and its sound written to ``out_dir/segments/<segment>.wav``; its picture stays where it is.

    A segment whose sound is there is not done again.  A file that cannot be read (no picture or sound stream,
    undecodable, shorter than its segment) is a failure with its reason and the run goes on.  Writes and returns
    the report and the obtained table as :func:`acquire` does."""
    runtime = runtime or ON_THIS_MACHINE
    out_given = Path(out_dir)
    out_dir = out_given.resolve()
    _remove_stale(out_dir)
    done = {segment for segment in segments["segment"] if segment_paths(out_dir, segment)[1].is_file()}
    todo = segments[~segments["segment"].isin(done)]
    returned = runtime.cluster == "ray" and runtime.shared_root is None
    task_out = None if returned else str(out_dir if runtime.shared_root is None else runtime.shared_root / out_given)
    jobs = [
        _FileJob(
            row.segment, row.source, row.source, row.start_s, None if math.isnan(row.end_s) else row.end_s, task_out
        )
        for row in todo.itertuples()
    ]
    failures, this_run = [], 0
    try:
        with (
            tqdm(total=len(segments), initial=len(done), desc="files", unit="file") as progress,
            contextlib.closing(
                run_jobs(
                    prepare_file,
                    jobs,
                    runtime,
                    workers=workers,
                    resources=VIDEO_TASK,
                    kind="thread",
                    prepare=lambda job: job if runtime.cluster == "local" else _sent(job, runtime),
                )
            ) as results,
        ):
            for _, outcome in results:
                _write_returned(out_dir, outcome.files)
                failures += outcome.failures
                this_run += outcome.segments_done
                progress.update(1)
    finally:
        _remove_stale(out_dir)
    ok = segments[[segment_paths(out_dir, segment)[1].is_file() for segment in segments["segment"]]]
    durations = [_file_duration(segment_paths(out_dir, segment)[1]) for segment in ok["segment"]]
    obtained = pd.DataFrame(
        {
            "segment": ok["segment"],
            "video_file": ok["source"],
            "start_s": ok["start_s"],
            "end_s": ok["end_s"],
            "audio_file": [str(out_given / "segments" / f"{s}.wav") for s in ok["segment"]],
            "duration": pd.Series(durations, index=ok.index, dtype="float64"),
            "speaker": ok["speaker"],
            "gender": ok["gender"],
            "face_x": ok["face_x"],
            "face_y": ok["face_y"],
            "boxes": ok["boxes"],
        },
        columns=list(OBTAINED_COLUMNS),
    ).reset_index(drop=True)
    report = {
        "segments_selected": len(segments),
        "segments_ok": len(obtained),
        "segments_failed": len(segments) - len(obtained),
        "hours_obtained": float(obtained["duration"].sum() / 3600),
        "speakers_obtained": int(obtained["speaker"].nunique()),
        "failures_by_class": {kind: sum(failure["class"] == kind for failure in failures) for kind in FAILURE_CLASSES},
        "failures": sorted(failures, key=lambda failure: failure["id"]),
    }
    write_json(out_dir / REPORT_NAME, report)
    write_parquet(out_dir / OBTAINED_NAME, obtained)
    log.info(
        "%d of %d files (%.2f h); this run took out %d sounds",
        len(obtained),
        len(segments),
        report["hours_obtained"],
        this_run,
    )
    return {**report, "this_run": {"segments_prepared": this_run}}


def _sent(job: _FileJob, runtime: RuntimeParams) -> _FileJob:
    """The job with its file as a Ray task gets it (its bytes, or its path under the shared root)."""
    return _FileJob(job.segment, job_input(job.source, runtime), job.label, job.start, job.end, job.out_dir)
