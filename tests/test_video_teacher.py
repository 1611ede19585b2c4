"""Video teacher: the FERV39k-layout reader, the demo corpus, training S2D, and scoring the window table.

Training is checked on the demo's faces restricted to three expressions (Happy, Sad, Surprise), with test
identities never seen in training: the small S2D must reach a test UAR well above chance (1/3) in a few
seconds of CPU time.  The seven-class demo takes about two minutes and is reported, not tested.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from liser.corpora.ferv39k import (
    CLASSES,
    CLIP_COLUMNS,
    InvalidClipId,
    check_clip_id,
    read_clip_frames,
    read_ferv39k,
)
from liser.corpora.table import NothingUsable
from liser.demo.ferv39k import demo_identity, write_ferv39k_demo
from liser.models.s2d import S2DConfig, pad_clip, preprocess_clip
from liser.teachers.video_clips import clip_views, evaluate_video_teacher
from liser.teachers.video_model import VIDEO_CLASSES, build_video_teacher, load_video_teacher, save_video_teacher
from liser.teachers.video_training import train_video_teacher
from liser.teachers.video_windows import window_softmaxes
from liser.unlabeled.faces import read_face_clip
from liser.unlabeled.windows import segment_windows
from liser.window_tables import WINDOW_KEYS, probability_columns, read_softmaxes, write_softmaxes

from .helpers import section

PROBABILITY_COLUMNS = probability_columns(VIDEO_CLASSES)

torch.set_num_threads(1)

EASY_CLASSES = [CLASSES.index(name) for name in ("Happy", "Sad", "Surprise")]


def write_frames(folder, values) -> None:
    """Small grey JPEG frames named 1.jpg, 2.jpg, ... (no zero padding), one grey level each."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, value in enumerate(values, start=1):
        cv2.imwrite(str(folder / f"{index}.jpg"), np.full((24, 24, 3), value, np.uint8))


def write_face_clip(path, frames: np.ndarray) -> None:
    """(T, 224, 224, 3) RGB frames as an mp4 that liser.faces.read_face_clip reads."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (224, 224))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


# --- the reader ----------------------------------------------------------------------------------------------


def test_reader_keeps_good_clips_and_reports_everything_else(tmp_path):
    root = tmp_path / "FERV39k"
    write_frames(root / "train" / "Happy" / "clip_a", [10, 20, 30])
    write_frames(root / "test" / "fear" / "clip_d", [0, 50, 100, 150, 200, 250, 240, 230, 220, 210, 200])  # 1..11
    (root / "test" / "fear" / "clip_d" / "notes.txt").write_text("not a frame")
    write_frames(root / "train" / "Bored" / "clip_b", [10, 20])  # unknown class
    (root / "train" / "Sad" / "clip_empty").mkdir(parents=True)  # no frames
    write_frames(root / "test" / "Angry" / "clip_c", [10])
    (root / "test" / "Angry" / "clip_c" / "2.jpg").write_bytes(b"not a jpeg")  # unreadable image
    write_frames(root / "train" / "Sad" / "clip_a", [10])  # the id of a clip already read
    write_frames(root / "train" / "Sad" / "bad id!", [10])
    write_frames(root / "validation" / "Sad" / "clip_v", [10])  # not a split
    (root / "train" / "Sad" / "stray.jpg").write_bytes(b"")  # a file where a clip folder should be

    corpus = read_ferv39k(root, progress=False)
    clips = corpus.clips
    assert list(clips.columns) == list(CLIP_COLUMNS)
    assert clips[["clip", "split", "label", "class", "n_frames"]].values.tolist() == [
        ["clip_a", "train", 3, "Happy", 3],
        ["clip_d", "test", 2, "Fear", 11],
    ]
    reasons = {os.path.relpath(path, root): reason for path, reason in corpus.problems.values}
    assert reasons["train/Bored"].startswith("unknown class")
    assert reasons["train/Sad/clip_empty"] == "no frames"
    assert reasons["test/Angry/clip_c"] == "unreadable image 2.jpg"
    assert reasons["train/Sad/clip_a"].startswith("clip id already used by")
    assert "is not a clip id" in reasons["train/Sad/bad id!"]
    assert reasons["validation"].startswith("not a split folder")
    assert reasons["train/Sad/stray.jpg"] == "not a clip folder"
    assert reasons["test/fear/clip_d/notes.txt"].startswith("not a frame image")
    assert len(reasons) == 8
    assert corpus.summary()["clips_per_class"]["test"]["Fear"] == 1

    # frames in time order: 10.jpg and 11.jpg come after 9.jpg, not after 1.jpg
    frames = read_clip_frames(clips.loc[1, "folder"])
    assert frames.shape == (11, 24, 24, 3)
    assert np.abs(frames[:, 0, 0, 0].astype(int) - [0, 50, 100, 150, 200, 250, 240, 230, 220, 210, 200]).max() <= 2
    assert read_clip_frames(clips.loc[1, "folder"], start=9, count=16).shape[0] == 2


def test_reader_fails_only_when_nothing_is_usable(tmp_path):
    (tmp_path / "train" / "Happy" / "empty").mkdir(parents=True)
    with pytest.raises(NothingUsable):
        read_ferv39k(tmp_path, progress=False)
    with pytest.raises(FileNotFoundError):
        read_ferv39k(tmp_path / "missing", progress=False)


@pytest.mark.parametrize("bad", ["..", "../x", "a/b", "", ".hidden", "a..b", "ä1", "x" * 200])
def test_clip_ids_that_are_not_safe_file_names_are_refused(bad):
    with pytest.raises(InvalidClipId):
        check_clip_id(bad)
    assert check_clip_id("face001_angry_01") == "face001_angry_01"


# --- the demo corpus -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("ferv39k") / "FERV39k"
    counts = write_ferv39k_demo(root, seed=1, clips_per_class=24, n_identities=8, frames=(16, 20))
    return counts, read_ferv39k(root, progress=False)


def test_demo_corpus_is_readable_with_disjoint_identities(demo_corpus):
    counts, corpus = demo_corpus
    clips = corpus.clips
    assert corpus.problems.empty
    assert len(clips) == counts["clips"] == 7 * 24
    for split in ("train", "test"):
        assert sorted(clips.loc[clips["split"] == split, "class"].unique()) == sorted(CLASSES)
    identities = {
        split: set(clips.loc[clips["split"] == split, "clip"].map(demo_identity)) for split in ("train", "test")
    }
    assert identities["train"].isdisjoint(identities["test"])
    assert len(identities["test"]) == 2 and len(identities["train"]) == 6
    assert identities["test"] == set(counts["identities_test"])
    assert clips["n_frames"].between(16, 20).all()
    assert clips["n_frames"].sum() == counts["frames"]
    assert read_clip_frames(clips.loc[0, "folder"]).shape[1:] == (224, 224, 3)


def test_demo_corpus_depends_only_on_the_seed(tmp_path):
    first = write_ferv39k_demo(tmp_path / "a", seed=5, clips_per_class=2, n_identities=2, frames=(16, 16), size=64)
    second = write_ferv39k_demo(tmp_path / "b", seed=5, clips_per_class=2, n_identities=2, frames=(16, 16), size=64)
    assert first == second
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.jpg"))
    assert len(files) == 7 * 2 * 16
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)


# --- training ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def easy_table(demo_corpus):
    clips = demo_corpus[1].clips
    return clips[clips["label"].isin(EASY_CLASSES)].reset_index(drop=True)


@pytest.fixture(scope="module")
def trained(easy_table):
    params = section("video_teacher", epochs=10, lr=5e-4, batch_size=4, seed=0, threads=1, validation_fraction=0.2)
    return train_video_teacher(easy_table, params)


def test_training_the_small_s2d_beats_chance_on_held_out_identities(trained, easy_table):
    history = trained.history
    assert list(history["epoch"]) == list(range(1, 11))
    assert history["validation_uar"].max() == history.loc[trained.best_epoch - 1, "validation_uar"]
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0] - 0.3
    train_clips = set(easy_table.loc[easy_table["split"] == "train", "clip"])
    assert set(trained.validation_clips) <= train_clips

    scores = evaluate_video_teacher(trained.model, easy_table, "test", 8)
    confusion = np.array(scores["confusion"])
    assert confusion.shape == (7, 7) and confusion.sum() == scores["clips"] == (easy_table["split"] == "test").sum()
    assert scores["uar"] >= 0.6, scores  # chance is 1/3
    assert scores["war"] >= 0.6, scores


def test_training_repeats_exactly_with_the_same_seed(easy_table):
    small = easy_table.groupby(["split", "label"]).head(4).reset_index(drop=True)
    params = section("video_teacher", epochs=1, batch_size=4, seed=7, threads=1, validation_fraction=0.25)
    runs = [train_video_teacher(small, params) for _ in range(2)]
    first, second = (run.model.state_dict() for run in runs)
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert runs[0].history.equals(runs[1].history)


def test_the_trained_teacher_round_trips_through_its_file(trained, easy_table, tmp_path):
    path = tmp_path / "video_teacher.safetensors"
    save_video_teacher(path, trained.model, best_epoch=trained.best_epoch)
    loaded, info = load_video_teacher(path)
    assert info == {"best_epoch": trained.best_epoch}
    clips = torch.stack(
        [preprocess_clip(read_clip_frames(folder, 0, 16), loaded.config) for folder in easy_table["folder"][:3]]
    )
    trained.model.eval()
    with torch.inference_mode():
        assert torch.equal(trained.model(clips), loaded(clips))


def test_a_published_checkpoint_and_landmark_file_are_loaded(tmp_path):
    source = build_video_teacher(S2DConfig.small(), seed=11)
    with torch.no_grad():
        for tensor in source.landmark.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(0.01)
    torch.save({"model": source.state_dict(), "epoch": 3, "args": argparse.Namespace(lr=1e-4)}, tmp_path / "s2d.pth")
    torch.save({"state_dict": source.landmark.state_dict()}, tmp_path / "mobilefacenet.pth.tar")
    model = build_video_teacher(
        S2DConfig.small(), seed=12, checkpoint=tmp_path / "s2d.pth", mobilefacenet=tmp_path / "mobilefacenet.pth.tar"
    )
    for mine, theirs in ((model, source), (model.landmark, source.landmark)):
        state = theirs.state_dict()
        assert all(torch.equal(tensor, state[key]) for key, tensor in mine.state_dict().items())


# --- scoring the window table --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """Two face clips (40 and 20 frames) and a window table over them, with a window that runs past a clip."""
    folder = tmp_path_factory.mktemp("faces")
    rng = np.random.default_rng(0)
    for segment, frames in (("MSP-FACE_0001_0001", 40), ("MSP-FACE_0002_0001", 20)):
        base = rng.integers(0, 256, (1, 28, 28, 3)).astype(np.float32)
        drift = np.linspace(0, 60, frames)[:, None, None, None]
        small = np.clip(base + drift, 0, 255).astype(np.uint8)
        write_face_clip(folder / f"{segment}.mp4", np.stack([cv2.resize(f, (224, 224)) for f in small]))
    windows = pd.concat(
        [
            segment_windows("MSP-FACE_0001_0001", "Speaker_1", np.ones(48, bool), 16, 30.0),  # the third runs past
            segment_windows("MSP-FACE_0002_0001", "Speaker_2", np.ones(16, bool), 16, 30.0),
        ],
        ignore_index=True,
    )
    return folder, windows.iloc[[3, 0, 2, 1]].reset_index(drop=True)  # segments interleaved on purpose


@pytest.fixture(scope="module")
def scoring_model():
    model = build_video_teacher(S2DConfig.small(), seed=4)
    with torch.no_grad():  # larger head weights, so that the probabilities differ visibly between windows
        model.head.fc_cls.weight.normal_(0, 0.1)
    return model.eval()


def counted_windows(model) -> list[int]:
    """Batch sizes of every forward pass of ``model`` from now on."""
    sizes: list[int] = []
    model.register_forward_hook(lambda module, args, output: sizes.append(len(output)))
    return sizes


def test_window_softmaxes_match_the_window_table_one_to_one(faces, scoring_model):
    folder, windows = faces
    table = window_softmaxes(scoring_model, windows, folder, 3, device="cpu")
    assert list(table.columns) == [*WINDOW_KEYS, *PROBABILITY_COLUMNS, "p_max", "face_fraction"]
    assert list(PROBABILITY_COLUMNS) == [
        "p_angry",
        "p_disgust",
        "p_fear",
        "p_happy",
        "p_neutral",
        "p_sad",
        "p_surprise",
    ]
    assert table[list(WINDOW_KEYS)].equals(windows[list(WINDOW_KEYS)])
    probabilities = table[list(PROBABILITY_COLUMNS)].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(table["p_max"].to_numpy(), probabilities.max(axis=1))
    assert np.abs(probabilities[0] - probabilities[1]).max() > 1e-3  # different content, different output

    # each row is the model's output on that window's frames, preprocessed as the spec says
    for row in range(len(windows)):
        window = windows.iloc[row]
        frames = read_face_clip(folder / f"{window['segment']}.mp4")[window["first_frame"] : window["last_frame"] + 1]
        with torch.inference_mode():
            expected = scoring_model.predict_proba(preprocess_clip(frames, scoring_model.config)[None])[0].numpy()
        np.testing.assert_allclose(probabilities[row], expected, atol=1e-5)


def test_a_window_past_the_clip_end_repeats_the_last_frame(faces, scoring_model):
    folder, windows = faces
    past = windows[(windows["segment"] == "MSP-FACE_0001_0001") & (windows["window"] == 2)]
    assert int(past["last_frame"].iloc[0]) == 47  # the clip has 40 frames: 32..39, then 39 eight more times
    scored = window_softmaxes(scoring_model, past, folder, 8, device="cpu")
    frames = read_face_clip(folder / "MSP-FACE_0001_0001.mp4")
    padded = np.concatenate([frames[32:40], np.repeat(frames[39:40], 8, axis=0)])
    np.testing.assert_array_equal(pad_clip(frames[32:40], 16), padded)
    with torch.inference_mode():
        expected = scoring_model.predict_proba(preprocess_clip(padded, scoring_model.config)[None])[0].numpy()
    np.testing.assert_allclose(scored[list(PROBABILITY_COLUMNS)].to_numpy()[0], expected, atol=1e-5)


def test_scoring_is_incremental(faces, scoring_model, tmp_path):
    folder, windows = faces
    model = build_video_teacher(S2DConfig.small(), seed=4)
    model.load_state_dict(scoring_model.state_dict())
    model.landmark.load_state_dict(scoring_model.landmark.state_dict())
    sizes = counted_windows(model)
    out = tmp_path / "video.parquet"
    full = window_softmaxes(model, windows, folder, 2, device="cpu", out=out)
    assert sum(sizes) == len(windows)
    pd.testing.assert_frame_equal(read_softmaxes(out).frame, full)
    teacher = read_softmaxes(out).teacher

    sizes.clear()
    earlier = full.iloc[[2, 0]]
    stale = earlier.assign(segment="MSP-FACE_0009_0001")  # windows no longer in the table are dropped
    write_softmaxes(out, pd.concat([earlier, stale], ignore_index=True), VIDEO_CLASSES, teacher)
    again = window_softmaxes(model, windows, folder, 2, device="cpu", out=out)
    assert sum(sizes) == len(windows) - 2
    pd.testing.assert_frame_equal(again, full)

    sizes.clear()
    assert window_softmaxes(model, windows, folder, 8, device="cpu", out=out).equals(full)
    assert sizes == []

    write_softmaxes(out, full, VIDEO_CLASSES, "another teacher")  # scores of another teacher are not reused
    window_softmaxes(model, windows, folder, 2, device="cpu", out=out)
    assert sum(sizes) == len(windows)


class Stopped(Exception):
    """The run stopped part way (a kill, a full disk, Ctrl-C)."""


def test_a_run_stopped_part_way_keeps_its_last_save_and_resumes_to_the_same_bytes(faces, scoring_model, tmp_path):
    folder, windows = faces
    uninterrupted = tmp_path / "uninterrupted.parquet"
    window_softmaxes(scoring_model, windows, folder, 1, device="cpu", out=uninterrupted)

    model = build_video_teacher(S2DConfig.small(), seed=4)
    model.load_state_dict(scoring_model.state_dict())
    model.landmark.load_state_dict(scoring_model.landmark.state_dict())
    sizes = counted_windows(model)

    def stop_at_the_third_batch(module, args, output):
        if len(sizes) == 3:
            raise Stopped

    stopper = model.register_forward_hook(stop_at_the_third_batch)
    out = tmp_path / "video.parquet"
    with pytest.raises(Stopped):
        window_softmaxes(model, windows, folder, 1, device="cpu", out=out, checkpoint_every=2)
    saved = read_softmaxes(out).frame
    assert len(saved) == 2  # the save after the second window, nothing of the third
    assert sorted(p.name for p in tmp_path.iterdir()) == ["uninterrupted.parquet", "video.parquet"]

    stopper.remove()
    sizes.clear()
    window_softmaxes(model, windows, folder, 1, device="cpu", out=out, checkpoint_every=2)
    assert sum(sizes) == len(windows) - 2  # only what the stopped run had not saved
    assert out.read_bytes() == uninterrupted.read_bytes()


def test_clip_views_are_the_first_and_last_16_frames():
    assert clip_views(10) == [0]
    assert clip_views(16) == [0]
    assert clip_views(25) == [0, 9]


KILLED_SCORER = """
import sys, time
import pandas as pd
import pyarrow.parquet as pq
from liser.teachers.video_model import load_video_teacher
from liser.teachers.video_windows import window_softmaxes

write_table = pq.ParquetWriter.write_table
def write_then_wait(self, *args, **kwargs):  # the table's rows written, its footer not yet: killed here
    write_table(self, *args, **kwargs)
    time.sleep(60)
pq.ParquetWriter.write_table = write_then_wait
model, _ = load_video_teacher(sys.argv[1])
window_softmaxes(model, pd.read_parquet(sys.argv[2]), sys.argv[3], 1, device="cpu", out=sys.argv[4])
"""


def test_scoring_killed_mid_write_keeps_the_earlier_table_and_resumes_to_the_same_bytes(faces, scoring_model, tmp_path):
    """SIGKILL while the table is being written: the earlier complete table is untouched and no partial one
    appears; the next run leaves no temporary file and writes the bytes of a run never interrupted."""
    folder, windows = faces
    save_video_teacher(tmp_path / "teacher.safetensors", scoring_model)
    model, _ = load_video_teacher(tmp_path / "teacher.safetensors")
    windows.to_parquet(tmp_path / "windows.parquet")
    uninterrupted = tmp_path / "uninterrupted" / "video.parquet"
    full = window_softmaxes(model, windows, folder, 2, device="cpu", out=uninterrupted)
    out = tmp_path / "softmaxes" / "video.parquet"
    write_softmaxes(out, full.iloc[[1]], VIDEO_CLASSES, read_softmaxes(uninterrupted).teacher)  # an earlier run's
    earlier = out.read_bytes()

    command = [sys.executable, "-c", KILLED_SCORER, tmp_path / "teacher.safetensors", tmp_path / "windows.parquet"]
    scorer = subprocess.Popen([*map(str, command), str(folder), str(out)])
    deadline = time.monotonic() + 120
    while not any(p.stat().st_size for p in out.parent.glob(".video.parquet.*.tmp")):  # being written
        assert scorer.poll() is None and time.monotonic() < deadline, "the scorer ended before it wrote"
        time.sleep(0.05)
    scorer.send_signal(signal.SIGKILL)
    scorer.wait(timeout=30)
    assert out.read_bytes() == earlier

    again = window_softmaxes(model, windows, folder, 2, device="cpu", out=out)
    pd.testing.assert_frame_equal(again, full)
    assert out.read_bytes() == uninterrupted.read_bytes()
    assert sorted(p.name for p in out.parent.iterdir()) == ["video.parquet"]
