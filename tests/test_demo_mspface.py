import dataclasses
import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from liser.corpora.mspface import LIST_FILES, read_lists
from liser.demo import faces
from liser.demo.mspface import HIDDEN_EMOTIONS_FILE, ONLINE_FOLDER, write_mspface_demo

SMALL = {"seed": 0, "n_speakers": 4, "n_videos": 3}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("mspface") / "MSP-Face"
    info = write_mspface_demo(root, **SMALL)
    return root, info


def _probe(path: Path) -> dict:
    command = ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)]
    return json.loads(subprocess.run(command, capture_output=True, check=True, text=True).stdout)


def _frames(path: Path, step: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames, index = [], 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index % step == 0:
            frames.append(frame)
        index += 1
    capture.release()
    return frames


def _sound(path: Path, sample_rate: int = 16000) -> np.ndarray:
    command = ["ffmpeg", "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "1", "-ar", str(sample_rate), "pipe:1"]
    return np.frombuffer(subprocess.run(command, capture_output=True, check=True).stdout, np.float32)


def test_lists_read_like_the_real_ones(corpus):
    root, info = corpus
    lists = read_lists(root)
    assert lists.problems.empty
    assert len(lists.videos) == info["videos"] == 3
    assert len(lists.segments) == info["segments"] >= 3
    assert lists.segments["speaker"].nunique() == info["speakers"] == 4
    assert set(lists.segments["gender"]) == {"male", "female"}
    assert lists.segments["duration"].between(1.5 - 1e-3, 4.0 + 1e-3).all()
    # the published lists' line endings: CRLF, and no newline after the speaker lists' last line
    for name in LIST_FILES:
        data = (root / name).read_bytes()
        assert data.count(b"\n") == data.count(b"\r\n") > 0
        assert data.endswith(b"\r\n") == (name in ("link_videos.txt", "segments_data.txt"))
    for video, url in zip(lists.videos["video"], lists.videos["url"]):
        assert url == (root / ONLINE_FOLDER / f"{video}.mp4").resolve().as_uri()
    truth = pd.read_csv(root / HIDDEN_EMOTIONS_FILE)
    assert set(truth["emotion"]) <= set(faces.EMOTIONS)
    written = lists.segments[lists.segments["video"] != info["missing_video"]]
    assert sorted(truth["segment"]) == sorted(written["segment"])


def test_videos_are_online_except_the_missing_one(corpus):
    root, info = corpus
    segments = read_lists(root).segments
    assert not (root / ONLINE_FOLDER / f"{info['missing_video']}.mp4").exists()
    written = sorted((root / ONLINE_FOLDER).glob("*.mp4"))
    assert len(written) == info["videos_written"] == 2
    for path in written:
        probe = _probe(path)
        video = next(s for s in probe["streams"] if s["codec_type"] == "video")
        audio = next(s for s in probe["streams"] if s["codec_type"] == "audio")
        assert (video["codec_name"], video["pix_fmt"], video["avg_frame_rate"]) == ("h264", "yuv420p", "30/1")
        assert audio["codec_name"] == "aac"
        last_end = segments.loc[segments["video"] == path.stem, "end"].max()
        assert float(probe["format"]["duration"]) >= last_end - 0.01


def test_faces_are_found_except_in_the_faceless_video(corpus):
    from deepface import DeepFace

    root, info = corpus

    def share_with_face(path: Path) -> float:
        frames = _frames(path, step=4)
        found = [
            DeepFace.extract_faces(frame, detector_backend="opencv", enforce_detection=False)[0]["confidence"] > 0
            for frame in frames
        ]
        return float(np.mean(found))

    faceless = root / ONLINE_FOLDER / f"{info['faceless_video']}.mp4"
    normal = [path for path in (root / ONLINE_FOLDER).glob("*.mp4") if path != faceless]
    assert normal and all(share_with_face(path) >= 0.9 for path in normal)
    assert share_with_face(faceless) == 0.0


def test_speech_carries_the_hidden_emotion(corpus):
    root, _ = corpus
    segments = read_lists(root).segments.merge(pd.read_csv(root / HIDDEN_EMOTIONS_FILE), on="segment")
    sounds = {video: _sound(root / ONLINE_FOLDER / f"{video}.mp4") for video in segments["video"].unique()}
    level = {}
    for row in segments.itertuples():
        clip = sounds[row.video][int(row.start * 16000) : int(row.end * 16000)]
        level.setdefault(row.emotion, []).append(20 * np.log10(np.sqrt(np.mean(clip**2))))
    assert {"angry", "sad"} <= set(level)  # true of this seed's plan
    assert np.mean(level["angry"]) > np.mean(level["sad"]) + 6


def _still(seed: int) -> faces.Identity:
    return dataclasses.replace(faces.random_identity(np.random.default_rng(seed)), motion=0.0)


def _box(identity: faces.Identity, left: str, right: str, above: int, below: int) -> tuple[slice, slice]:
    points = faces.face_landmarks(identity)
    (x0, y0), (x1, y1) = points[left], points[right]
    return slice(int(min(y0, y1)) - above, int(max(y0, y1)) + below), slice(int(min(x0, x1)) - 8, int(max(x0, x1)) + 8)


def _last_frame(emotion: str, seed: int, identity: faces.Identity, **options) -> np.ndarray:
    return faces.animate_face(emotion, 1.0, np.random.default_rng(seed), identity, strength=1.0, **options)[-1]


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a.astype(float) - b.astype(float))))


@pytest.mark.parametrize("seed", [0, 1])
def test_emotions_move_the_face(seed):
    identity = _still(seed)
    mouth = _box(identity, "mouth_left", "mouth_right", 10, 16)
    brows = _box(identity, "brow_left_outer", "brow_right_outer", 8, 8)
    emotions = ("happy", "sad", "angry", "surprise", "neutral")
    frame = {(e, s): _last_frame(e, s, identity) for e in emotions for s in (1, 2)}
    baseline_mouth = _mad(frame["neutral", 1][mouth], frame["neutral", 2][mouth])
    baseline_brows = _mad(frame["neutral", 1][brows], frame["neutral", 2][brows])
    assert _mad(frame["happy", 1][mouth], frame["sad", 2][mouth]) > 5 * baseline_mouth
    assert _mad(frame["angry", 1][brows], frame["surprise", 2][brows]) > 5 * baseline_brows
    same_emotion = _mad(frame["happy", 1][mouth], frame["happy", 2][mouth])
    assert same_emotion < _mad(frame["happy", 1][mouth], frame["sad", 1][mouth])


def test_loud_speech_opens_the_mouth():
    identity = _still(3)
    mouth = _box(identity, "mouth_left", "mouth_right", 4, 14)
    quiet = _last_frame("neutral", 1, identity, loudness_envelope=np.zeros(30))
    loud = _last_frame("neutral", 1, identity, loudness_envelope=np.ones(30))
    assert quiet[mouth].mean() - loud[mouth].mean() > 5  # the open mouth is dark inside


def test_clips_have_the_asked_shape_and_speakers_differ():
    rng = np.random.default_rng(0)
    first, second = faces.random_identity(rng), faces.random_identity(rng)
    clip = faces.animate_face("fearful", 0.5, rng, first, size=128)
    assert clip.shape == (15, 128, 128, 3) and clip.dtype == np.uint8
    other = faces.animate_face("fear", 0.5, rng, second, size=128)
    assert _mad(clip[0], other[0]) > 10
    with pytest.raises(ValueError, match="unknown face emotion"):
        faces.animate_face("calm", 0.5, rng, first)


def test_lists_depend_only_on_the_seed(corpus, tmp_path):
    root, _ = corpus
    again = tmp_path / "again"
    write_mspface_demo(again, **SMALL, frame_size=64)  # frame size changes the pictures, not the lists
    other = tmp_path / "other"
    write_mspface_demo(other, **{**SMALL, "seed": 1}, frame_size=64)
    names = [name for name in LIST_FILES if name != "link_videos.txt"] + [HIDDEN_EMOTIONS_FILE]
    for name in names:
        assert (again / name).read_bytes() == (root / name).read_bytes()
    assert any((other / name).read_bytes() != (root / name).read_bytes() for name in names)
