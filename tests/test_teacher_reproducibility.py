"""Same inputs, same bytes: every teacher stage's function, run twice into two project folders on the same inputs
(generated alike in each), writes byte-identical outputs, none of which names the folder it ran in.

The runs share this process, so a stage that drew from a global generator (NumPy's, torch's) without seeding it
would draw differently the second time; and each run has its own folder, as another checkout would.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from liser.demo.ferv39k import write_ferv39k_demo
from liser.demo.speech_base import pretrain_demo_base
from liser.files import write_json
from liser.folds import speaker_folds
from liser.params import parse_params
from liser.teachers.fetching import git_blob_of, sha256_of
from liser.teachers.speech_base import provide_speech_base
from liser.teachers.speech_runs import speech_teacher_runs
from liser.teachers.speech_windows import speech_window_softmaxes
from liser.teachers.video_runs import video_teacher_run
from liser.teachers.video_weights import MOBILEFACENET_FILE, S2D_FILE, fetch_video_weights
from liser.teachers.video_windows import video_window_softmaxes
from liser.unlabeled.windows import segment_windows
from liser.window_tables import write_window_table

from .helpers import REPO
from .teacher_fixtures import RATE, SMALL, section, tiny_base

SEGMENTS = {"MSP-FACE_0001_0001": 40, "MSP-FACE_0002_0001": 32}  # frames at 30 fps


def files_of(*roots: Path) -> dict[str, bytes]:
    """Every file under ``roots`` (folders or files), by path relative to the folder holding the first."""
    project = roots[0].parent
    found = {}
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in paths:
            found[str(path.relative_to(project))] = path.read_bytes()
    return found


def assert_same_bytes(first: dict[str, bytes], second: dict[str, bytes], *folders: Path) -> None:
    assert first.keys() == second.keys()
    assert first, "nothing was written"
    differing = [name for name in first if first[name] != second[name]]
    assert not differing, f"different bytes on the second run: {differing}"
    for name, content in first.items():
        for folder in folders:
            assert str(folder).encode() not in content, f"{name} names the folder it was written in"


def tone(seconds: float, pitch: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    voiced = sum(np.sin(2 * np.pi * k * pitch * t) / k for k in (1, 2, 3))
    return (0.2 * voiced + 0.03 * rng.normal(size=t.size)).astype(np.float32)


# --- speech ----------------------------------------------------------------------------------------------------


def test_the_demo_speech_base_is_the_same_bytes_on_every_run(tmp_path):
    params = section(
        "speech_base",
        pool_utterances=12,
        pool_speakers=4,
        clusters=8,
        epochs=2,
        batch_size=4,
        crop_seconds=0.6,
        check_utterances=4,
    )
    runs = []
    for name in ("a", "b"):
        project = tmp_path / name / "project"
        metrics = pretrain_demo_base(params, project / "data" / "pool", project / "data" / "base")
        write_json(project / "metrics.json", metrics)
        runs.append(files_of(project / "data", project / "metrics.json"))
    assert "data/base/pretraining.json" in runs[0] and "data/base/fetched.json" in runs[0]
    assert_same_bytes(*runs, tmp_path / "a", tmp_path / "b")


def test_a_provided_speech_base_is_the_same_bytes_on_every_run(tmp_path):
    source = tiny_base(tmp_path / "published", "wav2vec2", {"do_normalize": True, "return_attention_mask": False})
    params = section("speech_base", source=str(source), revision=None)
    runs = []
    for name in ("a", "b"):
        provide_speech_base(params, tmp_path / name / "base")
        runs.append(files_of(tmp_path / name / "base"))
    assert_same_bytes(*runs, tmp_path / "a", tmp_path / "b")


def labeled_corpus(project: Path) -> tuple[Path, Path]:
    """Ten speakers of three pitch classes (tones), their utterance table and five speaker folds."""
    rng = np.random.default_rng(0)
    rows = []
    for s in range(10):
        speaker, gender = f"s{s:02d}", "female" if s % 2 else "male"
        for u in range(3):
            path = project / "corpus" / f"{speaker}_{u}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, tone(rng.uniform(0.4, 0.7), (180.0, 450.0, 1100.0)[u], rng), RATE, subtype="PCM_16")
            rows.append({"utterance": path.stem, "path": str(path), "speaker": speaker, "gender": gender, "label": u})
    utterances = pd.DataFrame(rows)
    utterances.to_parquet(project / "manifest.parquet")
    speaker_folds(utterances, n_folds=5, seed=0).to_csv(project / "folds.csv", index=False)
    return project / "manifest.parquet", project / "folds.csv"


def unlabeled_windows(project: Path) -> tuple[Path, Path]:
    """Two segments' wavs, their manifest and their window table."""
    rng = np.random.default_rng(1)
    rows, tables = [], []
    for i, (segment, frames) in enumerate(SEGMENTS.items()):
        path = project / "segments" / f"{segment}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(frames / 30, 300.0 + 200 * i, rng), RATE, subtype="PCM_16")
        rows.append({"utterance": segment, "path": str(path)})
        tables.append(segment_windows(segment, f"Speaker_{i}", np.ones(frames, dtype=bool), 16, 30.0))
    pd.DataFrame(rows).to_parquet(project / "segments.parquet")
    write_window_table(project / "windows.parquet", pd.concat(tables, ignore_index=True))
    return project / "segments.parquet", project / "windows.parquet"


def test_speech_teachers_and_their_window_softmaxes_are_the_same_bytes_on_every_run(tmp_path):
    source = tiny_base(tmp_path / "published", "hubert", shape=SMALL)
    base_params = section("speech_base", source=str(source), revision=None)
    params = section("speech_teacher", epochs=2, batch_size=4, max_seconds=0.5, lora_rank=2, threads=2)
    teachers, softmaxes = [], []
    for name in ("a", "b"):
        project = tmp_path / name
        base = project / "base"
        provide_speech_base(base_params, base)
        manifest, folds = labeled_corpus(project)
        where = {"base": base, "manifest": manifest, "folds": folds, "out": project / "teachers"}
        speech_teacher_runs(
            "tones", [0], params, base_params, ["low", "middle", "high"], **where,
            metrics=project / "teacher.json", live=project / "live",
        )  # fmt: skip
        teachers.append(files_of(project / "teachers", project / "teacher.json", project / "live"))
        segments, windows = unlabeled_windows(project)
        speech_window_softmaxes(params, project / "teachers", [0], base, segments, windows, project / "softmaxes")
        softmaxes.append(files_of(project / "softmaxes"))
    assert {"teachers/fold0/adapter_model.safetensors", "teachers/fold0/teacher.json"} <= teachers[0].keys()
    assert_same_bytes(*teachers, tmp_path / "a", tmp_path / "b")
    assert_same_bytes(*softmaxes, tmp_path / "a", tmp_path / "b")


# --- video -----------------------------------------------------------------------------------------------------


def face_clips(project: Path) -> Path:
    rng = np.random.default_rng(2)
    folder = project / "faces"
    folder.mkdir(parents=True)
    for segment, frames in SEGMENTS.items():
        base = rng.integers(0, 256, (28, 28, 3)).astype(np.float32)
        writer = cv2.VideoWriter(str(folder / f"{segment}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30, (224, 224))
        for frame in range(frames):
            image = np.clip(base + 3 * frame, 0, 255).astype(np.uint8)
            writer.write(cv2.resize(image, (224, 224)))
        writer.release()
    return folder


def test_a_trained_video_teacher_and_its_window_softmaxes_are_the_same_bytes_on_every_run(tmp_path):
    write_ferv39k_demo(tmp_path / "ferv39k", seed=1, clips_per_class=4, n_identities=2, frames=(16, 16), size=64)
    teachers, softmaxes = [], []
    for name in ("a", "b"):
        project = tmp_path / name
        shutil.copytree(tmp_path / "ferv39k", project / "ferv39k")
        params = section("video_teacher", corpus=project / "ferv39k", epochs=1, batch_size=4, threads=2)
        weights = section("video_weights")
        video_teacher_run(
            params, weights, project / "weights", project / "teacher", project / "m.json", project / "live"
        )
        teachers.append(files_of(project / "teacher", project / "m.json", project / "live"))
        _, windows = unlabeled_windows(project)
        video_window_softmaxes(params, project / "teacher", windows, face_clips(project), project / "video.parquet")
        softmaxes.append(files_of(project / "video.parquet"))
    assert "teacher/teacher.safetensors" in teachers[0]
    assert_same_bytes(*teachers, tmp_path / "a", tmp_path / "b")
    assert_same_bytes(*softmaxes, tmp_path / "a", tmp_path / "b")


@pytest.mark.parametrize("profile", ["demo", "paper"])
def test_the_video_weights_record_is_the_same_bytes_on_every_run(profile, tmp_path):
    """Paper: the files in place (stand-ins, pinned), checked and recorded; demo: a record that nothing is used."""
    raw = {**yaml.safe_load((REPO / "params.yaml").read_text()), "profile": profile}
    s2d, landmark = b"S2D stand-in", b"MobileFaceNet stand-in"
    runs = []
    for name in ("a", "b"):
        weights = tmp_path / name / "s2d"
        if profile == "paper":
            weights.mkdir(parents=True)
            (weights / S2D_FILE).write_bytes(s2d)
            (weights / MOBILEFACENET_FILE).write_bytes(landmark)
            raw["video_weights"]["s2d"]["sha256"] = sha256_of(weights / S2D_FILE)
            raw["video_weights"]["mobilefacenet"]["git_blob"] = git_blob_of(weights / MOBILEFACENET_FILE)
        params = parse_params(raw)
        fetch_video_weights(params.video_weights, params.video_teacher, weights)
        runs.append(files_of(weights))
    assert_same_bytes(*runs, tmp_path / "a", tmp_path / "b")
