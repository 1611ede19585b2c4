import shutil
import subprocess
import threading
import time
from pathlib import Path

import deno
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yt_dlp

import liser.unlabeled.acquire as acquire_module
from liser.corpora.mspface import InvalidId, read_lists
from liser.files import read_json
from liser.unlabeled.acquire import (
    AcquireOptions,
    acquire,
    cut_segment,
    download_video,
    segment_paths,
    video_path,
    ydl_options,
)

from .test_mspface import write_lists

SIZE = (160, 120)
LOCAL = AcquireOptions(backoff_s=0, allow_local_files=True)  # the tests' videos are local files


@pytest.fixture(scope="module")
def step_video(tmp_path_factory):
    """A 2 s MP4 that changes at 1 s: the picture from black to white, the sound from silence to a tone."""
    path = tmp_path_factory.mktemp("sources") / "step.mp4"
    width, height = SIZE
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"color=black:size={width}x{height}:rate=30,geq=lum='if(gte(T,1),235,16)':cb=128:cr=128",
            "-f",
            "lavfi",
            "-i",
            "aevalsrc=0.3*sin(2*PI*440*t)*gte(t\\,1):s=44100",
            "-t",
            "2",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            str(path),
        ],
        check=True,
    )
    return path


def tables(urls, segments):
    """Videos and segments tables as read_lists gives them; segments are (id, start, end, speaker)."""
    videos = pd.DataFrame(sorted(urls.items()), columns=["video", "url"])
    rows = [(seg, seg[:13], start, end, end - start, speaker, "female") for seg, start, end, speaker in segments]
    columns = ["segment", "video", "start", "end", "duration", "speaker", "gender"]
    return pd.DataFrame(rows, columns=columns), videos


def probe(path):
    fields = "stream=codec_name,pix_fmt,r_frame_rate,nb_frames,sample_rate,channels"
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", fields, "-of", "default=noprint_wrappers=1", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("=", 1) for line in out.split())


def frame_brightness(path):
    raw = subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, SIZE[1] * SIZE[0]).mean(axis=1)


def problems_of(lists):
    return {(row.file, row.line): row.reason for row in lists.problems.itertuples()}


class CountingYoutubeDL(yt_dlp.YoutubeDL):
    """yt-dlp itself, noting the options and URL of every download."""

    calls: list = []

    def extract_info(self, url, *args, **kwargs):
        CountingYoutubeDL.calls.append((url, dict(self.params)))
        return super().extract_info(url, *args, **kwargs)


@pytest.fixture
def yt_dlp_calls(monkeypatch):
    CountingYoutubeDL.calls = []
    monkeypatch.setattr(acquire_module.yt_dlp, "YoutubeDL", CountingYoutubeDL)
    return CountingYoutubeDL.calls


def test_ydl_options_enable_the_deno_of_the_deno_package(tmp_path):
    folder = tmp_path / "50% done"
    options = ydl_options(folder, "MSP-FACE_0001", AcquireOptions(retries=2, ratelimit=500_000, allow_local_files=True))
    # The format YoutubeDL documents for `js_runtimes`: {runtime: {"path": executable}}.
    assert options["js_runtimes"] == {"deno": {"path": deno.find_deno_bin()}}
    assert options["enable_file_urls"] is True and options["noplaylist"] is True and options["quiet"] is True
    assert options["ratelimit"] == 500_000 and options["retries"] == 2
    with yt_dlp.YoutubeDL(options) as ydl:
        assert ydl.params["js_runtimes"] == {"deno": {"path": deno.find_deno_bin()}}  # accepted, not dropped
        assert ydl._js_runtimes["deno"].info is not None  # yt-dlp found and ran that binary
        name = ydl.prepare_filename({"id": "n3mElgyddBA", "title": "any", "ext": "mp4"})
    assert name == str(folder / "MSP-FACE_0001.mp4")  # a working name: the caller renames it when complete
    with pytest.raises(InvalidId):
        ydl_options(folder, "MSP-FACE_0001/../../x")
    assert ydl_options(folder, "MSP-FACE_0001")["enable_file_urls"] is False  # only when local files are allowed


def test_segments_are_cut_at_accurate_times_in_the_promised_formats(tmp_path, step_video, monkeypatch):
    out = tmp_path / "out"
    picture, sound = cut_segment(step_video, "MSP-FACE_0001_0001", 0.5, 1.5, out)
    assert (picture, sound) == segment_paths(out, "MSP-FACE_0001_0001")
    assert probe(picture) == {"codec_name": "h264", "pix_fmt": "yuv420p", "r_frame_rate": "30/1", "nb_frames": "30"}
    info = sf.info(str(sound))
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (16000, 1, "PCM_16", 16000)
    audio, _ = sf.read(str(sound))
    assert np.abs(audio[:7000]).max() < 0.01 and np.abs(audio[9000:]).max() > 0.2  # the tone starts at 0.5 s
    brightness = frame_brightness(picture)
    assert (brightness[:14] < 60).all() and (brightness[16:] > 180).all()  # so does the white picture

    # The same cut when ffmpeg first seeks on the input (as for segments far into a long video).
    monkeypatch.setattr(acquire_module, "INPUT_SEEK_MARGIN_S", 0.3)
    picture, sound = cut_segment(step_video, "MSP-FACE_0001_0002", 0.5, 1.5, out)
    brightness = frame_brightness(picture)
    assert len(brightness) == 30 and (brightness[:14] < 60).all() and (brightness[16:] > 180).all()
    audio, _ = sf.read(str(sound))
    assert len(audio) == 16000 and np.abs(audio[:7000]).max() < 0.01 and np.abs(audio[9000:]).max() > 0.2
    assert sorted(p.name for p in (out / "segments").iterdir()) == [
        "MSP-FACE_0001_0001.mp4",
        "MSP-FACE_0001_0001.wav",
        "MSP-FACE_0001_0002.mp4",
        "MSP-FACE_0001_0002.wav",
    ]


def test_lists_to_segments_with_a_missing_video_and_a_malformed_line(tmp_path, step_video, yt_dlp_calls):
    gone = tmp_path / "gone.mp4"
    lists = read_lists(
        write_lists(
            tmp_path / "lists",
            videos=[f"MSP-FACE_0001.mp4\t{step_video.as_uri()}", f"MSP-FACE_0002.mp4\t{gone.as_uri()}"],
            segments=[
                "0.5\t1.5\tMSP-FACE_0001_0001.mp4",
                "0.0\t0.7\tMSP-FACE_0001_0002.mp4",
                "1.5\t3.0\tMSP-FACE_0001_0003.mp4",  # runs past the 2 s source
                "0.0\t1.0\tMSP-FACE_0002_0001.mp4",
                "0.4\tMSP-FACE_0002_0002.mp4",
            ],
            speakers=[f"MSP-FACE_000{v}_000{s}.mp4,Speaker_{s}" for v, s in ((1, 1), (1, 2), (1, 3), (2, 1))],
            genders=["Speaker_1,Female", "Speaker_2,Male", "Speaker_3,Male"],
        )
    )
    assert problems_of(lists) == {("segments_data.txt", 5): "expected 3 tab-separated fields, got 2"}

    out = tmp_path / "out"
    report = acquire(
        lists.segments,
        lists.videos,
        out,
        workers=2,
        options=AcquireOptions(retries=1, backoff_s=0, allow_local_files=True),
    )

    written = read_json(out / "report.json")
    assert "this_run" not in written and written == {k: v for k, v in report.items() if k != "this_run"}
    failures = {(f["id"], f["stage"]): f["reason"] for f in report["failures"]}
    assert set(failures) == {("MSP-FACE_0002", "download"), ("MSP-FACE_0001_0003", "cut")}
    assert "No such file or directory" in failures["MSP-FACE_0002", "download"]
    assert "source ends early" in failures["MSP-FACE_0001_0003", "cut"]
    assert [url for url, _ in yt_dlp_calls].count(gone.as_uri()) == 1  # gone: more tries cannot help
    assert {f["id"]: f["class"] for f in report["failures"]} == {
        "MSP-FACE_0002": "removed",
        "MSP-FACE_0001_0003": "ffmpeg",
    }
    assert all(options["js_runtimes"] == {"deno": {"path": deno.find_deno_bin()}} for _, options in yt_dlp_calls)
    assert {k: report[k] for k in ("videos_ok", "videos_failed", "segments_ok", "segments_failed")} == {
        "videos_ok": 1,
        "videos_failed": 1,
        "segments_ok": 2,
        "segments_failed": 2,
    }
    assert report["hours_obtained"] == pytest.approx(1.7 / 3600)
    assert report["speakers_obtained"] == 2
    assert video_path(out, "MSP-FACE_0001").read_bytes() == step_video.read_bytes()
    assert sorted(p.name for p in (out / "segments").iterdir()) == [
        "MSP-FACE_0001_0001.mp4",
        "MSP-FACE_0001_0001.wav",
        "MSP-FACE_0001_0002.mp4",
        "MSP-FACE_0001_0002.wav",
    ]
    assert sorted(p.name for p in (out / "videos").iterdir()) == ["MSP-FACE_0001.mp4"]  # no working folders left
    obtained = pd.read_parquet(out / "segments.parquet")
    assert list(obtained["segment"]) == ["MSP-FACE_0001_0001", "MSP-FACE_0001_0002"]
    assert list(obtained["gender"]) == ["female", "male"]


def test_ids_that_are_paths_are_rejected_before_a_path_is_built(tmp_path, step_video, yt_dlp_calls):
    out = tmp_path / "deep" / "out"
    for bad in ("../MSP-FACE_0001", "MSP-FACE_0001/x", "/tmp/MSP-FACE_0001"):
        with pytest.raises(InvalidId):
            video_path(out, bad)
        with pytest.raises(InvalidId):
            download_video(bad, step_video.as_uri(), out, LOCAL)
    with pytest.raises(InvalidId):
        cut_segment(step_video, "MSP-FACE_0001_0001/../../../x", 0.0, 1.0, out)
    assert not (tmp_path / "deep").exists() and yt_dlp_calls == []

    segments, videos = tables(
        {"MSP-FACE_0001": step_video.as_uri(), "../MSP-FACE_0002": step_video.as_uri()},
        [("MSP-FACE_0001_0001", 0.0, 1.0, "Speaker_1"), ("MSP-FACE_0001_0001/../../../../x", 0.0, 1.0, "Speaker_1")],
    )
    report = acquire(segments, videos, out, options=LOCAL)
    reasons = {(f["id"], f["stage"]): f["reason"] for f in report["failures"]}
    assert "not a video id" in reasons["../MSP-FACE_0002", "download"]
    assert "not a segment id" in reasons["MSP-FACE_0001_0001/../../../../x", "cut"]
    assert report["segments_ok"] == 1 and report["segments_failed"] == 1
    made = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert made == [
        "deep",
        "deep/out",
        "deep/out/report.json",
        "deep/out/segments",
        "deep/out/segments.parquet",
        "deep/out/segments/MSP-FACE_0001_0001.mp4",
        "deep/out/segments/MSP-FACE_0001_0001.wav",
        "deep/out/videos",
        "deep/out/videos/MSP-FACE_0001.mp4",
    ]


def test_an_interrupted_download_or_cut_is_not_counted_and_is_redone(tmp_path, step_video, yt_dlp_calls):
    out = tmp_path / "out"
    whole = step_video.read_bytes()
    # Left by a run killed half way: yt-dlp's finished name, truncated, in one working folder;
    # yt-dlp's *.part file, truncated, in the other; a temporary cut; a segment with only its sound.
    first_partial = out / "videos" / ".MSP-FACE_0001.partial"
    first_partial.mkdir(parents=True)
    (first_partial / "MSP-FACE_0001.mp4").write_bytes(whole[: len(whole) // 2])
    second_partial = out / "videos" / ".MSP-FACE_0002.partial"
    second_partial.mkdir()
    (second_partial / "MSP-FACE_0002.mp4.part").write_bytes(whole[: len(whole) // 2])
    (out / "segments").mkdir()
    (out / "segments" / ".MSP-FACE_0001_0001.mp4.k3j2h1.tmp").write_bytes(b"\0" * 100)
    cut_segment(step_video, "MSP-FACE_0002_0001", 0.0, 1.0, out)
    segment_paths(out, "MSP-FACE_0002_0001")[0].unlink()

    segments, videos = tables(
        {"MSP-FACE_0001": step_video.as_uri(), "MSP-FACE_0002": step_video.as_uri()},
        [("MSP-FACE_0001_0001", 0.0, 1.0, "Speaker_1"), ("MSP-FACE_0002_0001", 0.0, 1.0, "Speaker_2")],
    )
    before = acquire(segments, videos, out, limit_videos=0, options=LOCAL)  # nothing selected: only takes stock
    assert before["segments_ok"] == 0 and not (out / "videos" / "MSP-FACE_0001.mp4").exists()

    report = acquire(segments, videos, out, options=LOCAL)
    assert (
        report["failures"] == []
        and report["this_run"]["videos_downloaded"] == 2
        and report["this_run"]["segments_cut"] == 2
    )
    assert len(yt_dlp_calls) == 2
    for video in ("MSP-FACE_0001", "MSP-FACE_0002"):
        assert video_path(out, video).read_bytes() == whole
    assert sorted(p.name for p in (out / "videos").iterdir()) == ["MSP-FACE_0001.mp4", "MSP-FACE_0002.mp4"]
    assert not list((out / "segments").glob(".*"))
    assert report["segments_ok"] == 2 and report["speakers_obtained"] == 2


def test_a_rerun_does_only_the_missing_work(tmp_path, step_video, yt_dlp_calls):
    segments, videos = tables(
        {"MSP-FACE_0001": step_video.as_uri(), "MSP-FACE_0002": step_video.as_uri()},
        [
            ("MSP-FACE_0001_0001", 0.0, 1.0, "Speaker_1"),
            ("MSP-FACE_0001_0002", 0.2, 0.9, "Speaker_1"),
            ("MSP-FACE_0002_0001", 0.5, 1.5, "Speaker_2"),
            ("MSP-FACE_0002_0002", 0.0, 1.0, "Speaker_3"),
        ],
    )
    out = tmp_path / "out"
    first = acquire(
        segments, videos, out, limit_hours=1.5 / 3600, options=LOCAL
    )  # 1.0 s + 0.7 s: the second segment crosses 1.5 s
    assert (first["segments_selected"], first["videos_selected"]) == (2, 1)
    assert (first["this_run"]["videos_downloaded"], first["this_run"]["segments_cut"], first["segments_ok"]) == (
        1,
        2,
        2,
    )
    assert len(yt_dlp_calls) == 1

    files = sorted((out / "segments").iterdir()) + [video_path(out, "MSP-FACE_0001")]
    stamps = {path: path.stat().st_mtime_ns for path in files}
    redone = segment_paths(out, "MSP-FACE_0001_0002")
    redone[1].unlink()  # its sound lost: the segment is no longer done

    second = acquire(segments, videos, out, options=LOCAL)
    assert (second["this_run"]["videos_downloaded"], second["this_run"]["segments_cut"]) == (
        1,
        3,
    )  # video 2, its 2 segments, the lost one
    assert [url for url, _ in yt_dlp_calls] == [step_video.as_uri()] * 2
    untouched = [path for path in files if path not in redone]
    assert len(untouched) == 3 and all(path.stat().st_mtime_ns == stamps[path] for path in untouched)
    assert second["segments_ok"] == 4 and second["speakers_obtained"] == 3
    assert second["hours_obtained"] == pytest.approx(3.7 / 3600)

    third = acquire(segments, videos, out, options=LOCAL)
    assert (third["this_run"]["videos_downloaded"], third["this_run"]["segments_cut"], third["segments_ok"]) == (
        0,
        0,
        4,
    )
    assert len(yt_dlp_calls) == 2

    # With every segment cut, a video deleted to save space is not fetched again.
    video_path(out, "MSP-FACE_0002").unlink()
    assert (
        acquire(segments, videos, out, options=LOCAL)["this_run"]["videos_downloaded"] == 0 and len(yt_dlp_calls) == 2
    )


# --- YouTube as it behaves today: failure classes, retries, cookies, pacing -------------------------------

# yt-dlp's messages (its DownloadError text) for each class of failure
MESSAGES = {
    "removed": "ERROR: [youtube] n3mElgyddBA: Video unavailable. This video has been removed by the uploader",
    "private": "ERROR: [youtube] n3mElgyddBA: Private video. Sign in if you've been granted access to this video",
    "region": "ERROR: [youtube] n3mElgyddBA: Video unavailable. The uploader has not made this video available in "
    "your country",
    "age": "ERROR: [youtube] n3mElgyddBA: Sign in to confirm your age. This video may be inappropriate for some users.",
    "bot_check": "ERROR: [youtube] n3mElgyddBA: Sign in to confirm you’re not a bot. Use --cookies-from-browser or "
    "--cookies for the authentication.",
    "network": "ERROR: [youtube] n3mElgyddBA: Unable to download webpage: <urlopen error [Errno -3] Temporary failure "
    'in name resolution> (caused by TransportError("<urlopen error [Errno -3] Temporary failure in name resolution>"))',
    "ffmpeg": "ERROR: Postprocessing: ffmpeg exited with code 1",
    "other": "ERROR: [youtube] n3mElgyddBA: Something nobody has seen before",
}
MESSAGES_429 = "ERROR: [youtube] n3mElgyddBA: Unable to download webpage: HTTP Error 429: Too Many Requests"


@pytest.mark.parametrize("expected", list(MESSAGES))
def test_each_class_of_failure_is_recognised_from_yt_dlps_message(expected):
    assert acquire_module.failure_class(MESSAGES[expected].removeprefix("ERROR: ")) == expected


def test_http_429_counts_as_a_bot_check():
    assert acquire_module.failure_class(MESSAGES_429) == "bot_check"


class ScriptedYoutubeDL:
    """Stands in for yt-dlp: each video's URL fails with the message scripted for it (or succeeds by copying a
    local video), noting every call and how many run at once."""

    script: dict = {}
    source = None
    calls: list = []
    running = 0
    most_at_once = 0
    lock = threading.Lock()

    def __init__(self, params):
        self.params = params

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def extract_info(self, url, download=True):
        cls = ScriptedYoutubeDL
        with cls.lock:
            cls.calls.append(url)
            cls.running += 1
            cls.most_at_once = max(cls.most_at_once, cls.running)
        try:
            time.sleep(0.05)
            message = cls.script.get(url)
            if message:
                raise yt_dlp.utils.DownloadError(message)
            target = self.params["outtmpl"]["default"].replace("%(ext)s", "mp4")
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cls.source, target)
        finally:
            with cls.lock:
                cls.running -= 1


@pytest.fixture
def youtube(monkeypatch, step_video):
    ScriptedYoutubeDL.script, ScriptedYoutubeDL.calls = {}, []
    ScriptedYoutubeDL.source, ScriptedYoutubeDL.running, ScriptedYoutubeDL.most_at_once = step_video, 0, 0
    monkeypatch.setattr(acquire_module.yt_dlp, "YoutubeDL", ScriptedYoutubeDL)
    return ScriptedYoutubeDL


def watch(n):
    return f"https://www.youtube.com/watch?v=video{n:06d}"


def youtube_tables(failing):
    """Videos 1..len(failing)+1 with one segment each; video k fails with failing[k-1] (None: it works)."""
    urls = {f"MSP-FACE_{k:04d}": watch(k) for k in range(1, len(failing) + 1)}
    return tables(urls, [(f"MSP-FACE_{k:04d}_0001", 0.0, 1.0, f"Speaker_{k}") for k in range(1, len(failing) + 1)])


def test_gone_videos_are_not_retried_but_bot_checks_and_network_failures_are(tmp_path, youtube):
    kinds = ["removed", "private", "region", "age", "bot_check", "network", None]
    segments, videos = youtube_tables(kinds)
    youtube.script = {watch(k): MESSAGES[kind] for k, kind in enumerate(kinds, 1) if kind}
    options = AcquireOptions(retries=2, backoff_s=0)
    first = acquire(segments, videos, tmp_path, workers=2, options=options)
    classes = {f["id"]: f["class"] for f in first["failures"]}
    assert classes == {f"MSP-FACE_{k:04d}": kind for k, kind in enumerate(kinds, 1) if kind}
    assert first["failures_by_class"] == {
        **dict.fromkeys(acquire_module.FAILURE_CLASSES, 0),
        **dict.fromkeys(kinds[:-1], 1),
    }
    tries = {url: youtube.calls.count(url) for url in set(youtube.calls)}
    assert tries[watch(5)] == 1  # a bot check: more tries now would only prolong it
    assert tries[watch(6)] == 3  # a network failure: tried again at once, twice
    assert all(tries[watch(k)] == 1 for k in range(1, 5))  # gone

    youtube.calls.clear()
    youtube.script.pop(watch(5))  # the bot check has passed
    second = acquire(segments, videos, tmp_path, workers=2, options=options)
    assert sorted(set(youtube.calls)) == [watch(5), watch(6)]  # gone ones are not tried again
    assert second["segments_ok"] == 2 and second["this_run"]["videos_not_retried"] == 4
    assert {f["id"] for f in second["failures"]} == {f"MSP-FACE_{k:04d}" for k in (1, 2, 3, 4, 6)}

    youtube.calls.clear()
    acquire(segments, videos, tmp_path, workers=2, options=AcquireOptions(retries=0, retry_gone=True))
    assert sorted(set(youtube.calls)) == [watch(k) for k in (1, 2, 3, 4, 6)]


def test_the_report_of_a_resumed_run_equals_that_of_an_uninterrupted_one(tmp_path, youtube):
    kinds = ["removed", None, None]
    segments, videos = youtube_tables(kinds)
    youtube.script = {watch(1): MESSAGES["removed"]}
    whole = acquire(segments, videos, tmp_path / "whole", options=AcquireOptions(backoff_s=0))
    interrupted = tmp_path / "interrupted"
    acquire(segments, videos, interrupted, limit_videos=2, options=AcquireOptions(backoff_s=0))
    resumed = acquire(segments, videos, interrupted, options=AcquireOptions(backoff_s=0))
    assert resumed["this_run"] != whole["this_run"]
    assert {k: v for k, v in resumed.items() if k != "this_run"} == {k: v for k, v in whole.items() if k != "this_run"}


def test_only_https_youtube_urls_are_fetched_unless_local_files_are_allowed(tmp_path, youtube, step_video):
    urls = {
        "MSP-FACE_0001": step_video.as_uri(),
        "MSP-FACE_0002": "http://www.youtube.com/watch?v=plain0http",
        "MSP-FACE_0003": "https://example.com/video.mp4",
        "MSP-FACE_0004": watch(4),
    }
    segments, videos = tables(urls, [(f"MSP-FACE_{k:04d}_0001", 0.0, 1.0, "Speaker_1") for k in range(1, 5)])
    report = acquire(segments, videos, tmp_path, options=AcquireOptions(backoff_s=0))
    refused = {f["id"]: (f["class"], f["reason"]) for f in report["failures"]}
    assert set(refused) == {"MSP-FACE_0001", "MSP-FACE_0002", "MSP-FACE_0003"}
    assert all(kind == "invalid" for kind, _ in refused.values())
    assert "mspface.allow_local_files" in refused["MSP-FACE_0001"][1]
    assert youtube.calls == [watch(4)]  # nothing else was handed to yt-dlp
    assert not (tmp_path / "videos" / "MSP-FACE_0001.mp4").exists()


def test_downloads_from_one_host_are_limited_and_paced(tmp_path, youtube):
    segments, videos = youtube_tables([None] * 6)
    acquire(segments, videos, tmp_path, workers=3, options=AcquireOptions(per_host=1))
    assert youtube.most_at_once == 1 and len(youtube.calls) == 6
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n")
    paced = AcquireOptions(cookies=cookies, cookies_from_browser="chrome:Profile 1", sleep_s=5, max_sleep_s=20)
    settings = ydl_options(tmp_path, "MSP-FACE_0001", paced)
    assert settings["cookiefile"] == str(cookies)
    assert settings["cookiesfrombrowser"] == ("chrome", "Profile 1", None, None)
    assert (settings["sleep_interval"], settings["max_sleep_interval"]) == (5, 20)
    with pytest.raises(ValueError, match="cookies"):
        acquire(segments, videos, tmp_path, options=AcquireOptions(cookies=tmp_path / "missing.txt"))


def test_the_report_names_a_listed_file_as_the_list_does_not_by_this_machines_path(tmp_path):
    """The demo lists its videos as paths relative to the lists; a reason naming one must not carry the folder the
    project happens to be in, or the report differs from one checkout to the next."""
    from liser.files import read_json

    lists = read_lists(
        write_lists(
            tmp_path / "lists",
            videos=["MSP-FACE_0001.mp4\tonline/MSP-FACE_0001.mp4"],  # not there: gone
            segments=["0.0\t1.0\tMSP-FACE_0001_0001.mp4"],
            speakers=["MSP-FACE_0001_0001.mp4,Speaker_1"],
            genders=["Speaker_1,Female"],
        )
    )
    acquire(lists.segments, lists.videos, tmp_path / "out", options=LOCAL)
    written = (tmp_path / "out" / "report.json").read_text()
    assert "online/MSP-FACE_0001.mp4" in written and str(tmp_path) not in written
    assert read_json(tmp_path / "out" / "report.json")["failures"][0]["class"] == "removed"
