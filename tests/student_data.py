"""Small labeled and unlabeled sets with known answers, and one student trained through the engine."""

from __future__ import annotations

import numpy as np

from liser.models.student import StudentConfig
from liser.params import TrainParams, load_params
from liser.students.data import LabeledSet, UnlabeledSet
from liser.students.evaluate import Windowing
from liser.students.objective import Objective
from liser.students.population import Member, MemberResult, train_population
from tests.helpers import REPO

WINDOWING = Windowing(window_frames=94, stride_frames=3.125, pad_value=-13.8, batch_size=32)
CONFIG = StudentConfig(speech_classes=2, video_classes=7)


def train_params(**updates) -> TrainParams:
    """The demo's training section with a fast, exactly repeatable setting for tests, and ``updates``."""
    fast = {"lr": 3e-3, "batch_size": 8, "seeds": [0], "threads": 1, "precision": "float32", "device": "cpu"}
    return load_params(REPO / "params.yaml").train.model_copy(update={**fast, **updates})


def band_set(n: int, seed: int) -> LabeledSet:
    """Class 0 has its energy in low mel bands, class 1 in high ones; lengths vary around 3 s."""
    rng = np.random.default_rng(seed)
    features, labels = [], []
    for i in range(n):
        label = i % 2
        frames = int(rng.integers(60, 140))
        logmel = rng.normal(-8, 1, (64, frames)).astype(np.float32)
        bands = slice(5, 20) if label == 0 else slice(40, 55)
        logmel[bands] += 4
        features.append(logmel)
        labels.append(label)
    return LabeledSet([f"u{i}" for i in range(n)], features, np.array(labels))


def known_answer(n: int, seed: int) -> LabeledSet:
    """Two classes told apart by a faint band among loud noise: hard to learn from a handful of labels."""
    rng = np.random.default_rng(seed)
    features, labels = [], []
    for i in range(n):
        label = i % 2
        logmel = rng.normal(-8, 2.0, (64, int(rng.integers(80, 120)))).astype(np.float32)
        logmel[(10, 50)[label] : (10, 50)[label] + 6] += 1.2
        features.append(logmel)
        labels.append(label)
    return LabeledSet([f"u{seed}-{i}" for i in range(n)], features, np.array(labels))


def teacher_knows(labeled: LabeledSet, sharpness=0.9) -> UnlabeledSet:
    """Unlabeled items whose speech-teacher targets carry the (hidden) label: a known answer."""
    targets = [np.tile(np.where(np.arange(2) == y, sharpness, 1 - sharpness), (3, 1)) for y in labeled.labels]
    midpoints = [np.array([10.0, 40.0, 70.0]) for _ in labeled.labels]
    return UnlabeledSet(labeled.utterances, labeled.features, midpoints, targets, None)


def with_video(unlabeled: UnlabeledSet, seed: int, face_share: float | None = None) -> UnlabeledSet:
    """``unlabeled`` with random video-teacher targets; with ``face_share``, about that share of the windows has a
    face (the others give no video target)."""
    rng = np.random.default_rng(seed)
    video = [rng.dirichlet(np.ones(7), size=len(m)).astype(np.float32) for m in unlabeled.window_midpoints]
    valid = None
    if face_share is not None:
        valid = [rng.random(len(m)) < face_share for m in unlabeled.window_midpoints]
    return UnlabeledSet(
        unlabeled.segments, unlabeled.features, unlabeled.window_midpoints, unlabeled.speech, video, valid
    )


def train_one(
    train: LabeledSet | None,
    validation: LabeledSet | None,
    params: TrainParams,
    *,
    unlabeled: UnlabeledSet | None = None,
    objective: Objective = Objective(),
    initial_state=None,
    config: StudentConfig = CONFIG,
    windowing: Windowing = WINDOWING,
    validation_windowing: Windowing | None = None,
    seed: int = 0,
) -> MemberResult:
    """One student through the population engine (a population of one), seeded with ``seed``."""
    member = Member("student", train, validation, objective, unlabeled, seed=seed, initial_state=initial_state)
    (result,) = train_population([member], config, params, windowing, validation_windowing)
    return result
