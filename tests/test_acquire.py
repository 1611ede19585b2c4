import subprocess

import deno
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yt_dlp

import liser.unlabeled.acquire as acquire_module
from liser.corpora.mspface import InvalidId, read_lists
from liser.files import read_json
from liser.unlabeled.acquire import acquire, cut_segment, download_video, segment_paths, video_path, ydl_options

from .test_mspface import write_lists

SIZE = (160, 120)


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
    options = ydl_options(folder, "MSP-FACE_0001", retries=2, ratelimit=500_000)
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
    report = acquire(lists.segments, lists.videos, out, workers=2, retries=1, backoff_s=0)

    assert report == read_json(out / "report.json")
    failures = {(f["id"], f["stage"]): f["reason"] for f in report["failures"]}
    assert set(failures) == {("MSP-FACE_0002", "download"), ("MSP-FACE_0001_0003", "cut")}
    assert "No such file or directory" in failures["MSP-FACE_0002", "download"]
    assert "source ends early" in failures["MSP-FACE_0001_0003", "cut"]
    assert [url for url, _ in yt_dlp_calls].count(gone.as_uri()) == 2  # tried again once
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
            download_video(bad, step_video.as_uri(), out)
    with pytest.raises(InvalidId):
        cut_segment(step_video, "MSP-FACE_0001_0001/../../../x", 0.0, 1.0, out)
    assert not (tmp_path / "deep").exists() and yt_dlp_calls == []

    segments, videos = tables(
        {"MSP-FACE_0001": step_video.as_uri(), "../MSP-FACE_0002": step_video.as_uri()},
        [("MSP-FACE_0001_0001", 0.0, 1.0, "Speaker_1"), ("MSP-FACE_0001_0001/../../../../x", 0.0, 1.0, "Speaker_1")],
    )
    report = acquire(segments, videos, out, backoff_s=0)
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
    before = acquire(segments, videos, out, limit_videos=0)  # nothing selected: only takes stock
    assert before["segments_ok"] == 0 and not (out / "videos" / "MSP-FACE_0001.mp4").exists()

    report = acquire(segments, videos, out, backoff_s=0)
    assert report["failures"] == [] and report["videos_downloaded"] == 2 and report["segments_cut"] == 2
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
    first = acquire(segments, videos, out, limit_hours=1.5 / 3600)  # 1.0 s + 0.7 s: the second segment crosses 1.5 s
    assert (first["segments_selected"], first["videos_selected"]) == (2, 1)
    assert (first["videos_downloaded"], first["segments_cut"], first["segments_ok"]) == (1, 2, 2)
    assert len(yt_dlp_calls) == 1

    files = sorted((out / "segments").iterdir()) + [video_path(out, "MSP-FACE_0001")]
    stamps = {path: path.stat().st_mtime_ns for path in files}
    redone = segment_paths(out, "MSP-FACE_0001_0002")
    redone[1].unlink()  # its sound lost: the segment is no longer done

    second = acquire(segments, videos, out)
    assert (second["videos_downloaded"], second["segments_cut"]) == (1, 3)  # video 2, its 2 segments, the lost one
    assert [url for url, _ in yt_dlp_calls] == [step_video.as_uri()] * 2
    untouched = [path for path in files if path not in redone]
    assert len(untouched) == 3 and all(path.stat().st_mtime_ns == stamps[path] for path in untouched)
    assert second["segments_ok"] == 4 and second["speakers_obtained"] == 3
    assert second["hours_obtained"] == pytest.approx(3.7 / 3600)

    third = acquire(segments, videos, out)
    assert (third["videos_downloaded"], third["segments_cut"], third["segments_ok"]) == (0, 0, 4)
    assert len(yt_dlp_calls) == 2

    # With every segment cut, a video deleted to save space is not fetched again.
    video_path(out, "MSP-FACE_0002").unlink()
    assert acquire(segments, videos, out)["videos_downloaded"] == 0 and len(yt_dlp_calls) == 2
