"""Same inputs, same bytes: every teacher stage's function, run in two project folders on the same inputs
(generated alike in each), writes byte-identical outputs, none of which names the folder it ran in.

One run is in this process, the other in a fresh process with another string-hash seed (``PYTHONHASHSEED``), as
another ``dvc repro`` would be, and before each stage the global generators (NumPy's, torch's) are seeded anew at
random, as in the fresh process every stage runs in: a stage that drew from a global generator without seeding it, or
wrote a set in its iteration order, would differ.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import yaml

from liser.demo.ferv39k import write_ferv39k_demo
from liser.demo.speech_base import pretrain_demo_base
from liser.files import write_json
from liser.folds import speaker_folds
from liser.params import parse_params
from liser.teachers.fetching import git_blob_of, sha256_of
from liser.teachers.speech_base import SpeechBaseChoice, provide_speech_base
from liser.teachers.speech_runs import TeacherStage, speech_teacher_runs
from liser.teachers.speech_windows import speech_window_softmaxes
from liser.teachers.video_runs import video_teacher_run
from liser.teachers.video_weights import MOBILEFACENET_FILE, S2D_FILE, fetch_video_weights
from liser.teachers.video_windows import video_window_softmaxes
from liser.unlabeled.windows import segment_windows
from liser.window_tables import write_window_table

from .helpers import REPO, section
from .teacher_fixtures import RATE, SMALL, tiny_base

SEGMENTS = {"MSP-FACE_0001_0001": 40, "MSP-FACE_0002_0001": 32}  # frames at 30 fps


def as_a_new_process() -> None:
    """Global generators seeded anew, as in the fresh process each stage runs in (torch seeds its own at random)."""
    torch.seed()
    np.random.seed()


def tone(seconds: float, pitch: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    voiced = sum(np.sin(2 * np.pi * k * pitch * t) / k for k in (1, 2, 3))
    return (0.2 * voiced + 0.03 * rng.normal(size=t.size)).astype(np.float32)


# --- inputs, made alike in each project ------------------------------------------------------------------------


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


def face_clips(project: Path) -> Path:
    rng = np.random.default_rng(2)
    folder = project / "faces"
    folder.mkdir(parents=True)
    for segment, frames in SEGMENTS.items():
        base = rng.integers(0, 256, (28, 28, 3)).astype(np.float32)
        writer = cv2.VideoWriter(str(folder / f"{segment}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30, (224, 224))
        for frame in range(frames):
            writer.write(cv2.resize(np.clip(base + 3 * frame, 0, 255).astype(np.uint8), (224, 224)))
        writer.release()
    return folder


def shared_inputs(folder: Path) -> Path:
    """What both runs read from one place, as a pipeline reads a published base or a corpus from its params: a
    tiny speech encoder (its path is a param value, so it is recorded) and a FERV39k-layout corpus."""
    tiny_base(folder / "published", "hubert", shape=SMALL)
    write_ferv39k_demo(folder / "ferv39k", seed=1, clips_per_class=4, n_identities=2, frames=(16, 16), size=64)
    return folder


# --- the stages, each writing into a project folder and naming what to compare ---------------------------------


def demo_speech_base(project: Path, shared: Path) -> list[Path]:
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
    as_a_new_process()
    write_json(project / "metrics.json", pretrain_demo_base(params, project / "pool", project / "base"))
    return [project / "pool", project / "base", project / "metrics.json"]


def provided_speech_base(project: Path, shared: Path) -> list[Path]:
    as_a_new_process()
    provide_speech_base(section("speech_base", source=str(shared / "published"), revision=None), project / "base")
    return [project / "base"]


def speech_teachers_and_softmaxes(project: Path, shared: Path) -> list[Path]:
    base_params = section("speech_base", source=str(shared / "published"), revision=None)
    params = section("speech_teacher", epochs=2, batch_size=4, max_seconds=0.5, lora_rank=2, threads=2)
    provide_speech_base(base_params, project / "base")
    manifest, folds = labeled_corpus(project)
    stage = TeacherStage(
        "tones", ["low", "middle", "high"], project / "base", manifest, folds, project / "teachers",
        project / "teachers.json", project / "live",
    )  # fmt: skip
    as_a_new_process()
    speech_teacher_runs(stage, [0], params, SpeechBaseChoice.of(base_params))
    segments, windows = unlabeled_windows(project)
    batch, threads = params.eval_batch_size, params.threads
    as_a_new_process()
    speech_window_softmaxes(
        project / "teachers", [0], project / "base", segments, windows, project / "scores", batch, threads
    )
    return [project / "teachers", project / "teachers.json", project / "live", project / "scores"]


def video_teacher_and_softmaxes(project: Path, shared: Path) -> list[Path]:
    params = section("video_teacher", corpus=shared / "ferv39k", epochs=1, batch_size=4, threads=2)
    teacher = project / "teacher"
    as_a_new_process()
    video_teacher_run(
        params, section("video_weights"), project / "weights", teacher, project / "m.json", project / "live"
    )
    _, windows = unlabeled_windows(project)
    faces, batch, threads = face_clips(project), params.eval_batch_size, params.threads
    as_a_new_process()
    video_window_softmaxes(teacher, windows, faces, project / "video.parquet", batch, threads)
    return [teacher, project / "m.json", project / "live", project / "video.parquet"]


def video_weights_record(project: Path, shared: Path, profile: str) -> list[Path]:
    """Paper: stand-in files in place, pinned, checked and recorded; demo: a record that nothing is used."""
    raw = {**yaml.safe_load((REPO / "params.yaml").read_text()), "profile": profile}
    weights = project / "s2d"
    weights.mkdir(parents=True)
    if profile == "paper":
        (weights / S2D_FILE).write_bytes(b"S2D stand-in")
        (weights / MOBILEFACENET_FILE).write_bytes(b"MobileFaceNet stand-in")
        raw["video_weights"]["s2d"]["sha256"] = sha256_of(weights / S2D_FILE)
        raw["video_weights"]["mobilefacenet"]["git_blob"] = git_blob_of(weights / MOBILEFACENET_FILE)
    params = parse_params(raw)
    as_a_new_process()
    fetch_video_weights(params.video_weights, params.video_teacher.source == "published", weights)
    return [weights]


# among the files compared: what the pipeline keeps of each stage
KEPT = {
    "demo_speech_base": {
        "base/model.safetensors",
        "base/pretraining.json",
        "base/fetched.json",
        "pool/manifest.parquet",
    },
    "provided_speech_base": {"base/model.safetensors", "base/fetched.json"},
    "speech_teachers_and_softmaxes": {
        "teachers/fold0/adapter_model.safetensors",
        "teachers/fold0/adapter_config.json",
        "teachers/fold0/teacher.json",
        "teachers.json",
        "live/metrics.json",
        "scores/fold0.parquet",
    },
    "video_teacher_and_softmaxes": {"teacher/teacher.safetensors", "m.json", "live/metrics.json", "video.parquet"},
    "video_weights_demo": {"s2d/fetched.json"},
    "video_weights_paper": {"s2d/fetched.json"},
}
STAGES = {
    "demo_speech_base": demo_speech_base,
    "provided_speech_base": provided_speech_base,
    "speech_teachers_and_softmaxes": speech_teachers_and_softmaxes,
    "video_teacher_and_softmaxes": video_teacher_and_softmaxes,
    "video_weights_demo": lambda project, shared: video_weights_record(project, shared, "demo"),
    "video_weights_paper": lambda project, shared: video_weights_record(project, shared, "paper"),
}


def run_all(root: Path, shared: Path) -> None:
    """Every stage into ``root/<stage>/`` (the other process's run)."""
    for name, stage in STAGES.items():
        stage(root / name, shared)


# --- the comparison --------------------------------------------------------------------------------------------


def files_of(project: Path, outputs: list[Path]) -> dict[str, bytes]:
    """Every file of ``outputs`` (folders or files), by path relative to ``project``."""
    found = {}
    for output in outputs:
        for path in [output] if output.is_file() else sorted(p for p in output.rglob("*") if p.is_file()):
            found[str(path.relative_to(project))] = path.read_bytes()
    return found


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Path:
    return shared_inputs(tmp_path_factory.mktemp("shared"))


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory, shared) -> Path:
    """Every stage run once in another Python process, with another string-hash seed."""
    root = tmp_path_factory.mktemp("elsewhere")
    seed = "11" if os.environ.get("PYTHONHASHSEED") != "11" else "12"
    code = "import sys; from pathlib import Path; from tests.test_teacher_reproducibility import run_all; "
    code += "run_all(Path(sys.argv[1]), Path(sys.argv[2]))"
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code, str(root), str(shared)], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return root


@pytest.mark.parametrize("name", list(STAGES))
def test_a_teacher_stage_writes_the_same_bytes_in_another_run_and_folder(name, shared, elsewhere, tmp_path):
    here = tmp_path / name
    outputs = STAGES[name](here, shared)
    there = elsewhere / name
    first, second = files_of(here, outputs), files_of(there, [there / p.relative_to(here) for p in outputs])
    assert KEPT[name] <= first.keys()
    assert first.keys() == second.keys()
    differing = [path for path in first if first[path] != second[path]]
    assert not differing, f"different bytes in the other run: {differing}"
    for path, content in first.items():
        for folder in (tmp_path, elsewhere):
            assert str(folder).encode() not in content, f"{path} names the folder it was written in"
