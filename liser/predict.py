"""Emotions of whole audio files from a trained student, or from the ensemble of a corpus's folds.

Each file goes through the features stage's front end (``load_audio``: any rate, mono or not, to
16 kHz mono; ``LogMel``) and the evaluation stage's windowing (``crossval.windowing``: 3 s windows
every 0.1 s, the supervised head's logits averaged by ``utterance_logits``), so a fold's student
reproduces the logits in its ``predictions.parquet``.  An ensemble averages its members' per-file
softmax probabilities.  A student is a ``student.safetensors`` or a model written by ``liser export``
(run in ONNX Runtime).

A file that cannot be used (missing, unreadable, digital silence, shorter than ``MIN_SECONDS``)
gets an error naming the problem instead of a prediction; one that can, but differs from the
training audio (below 16 kHz, several channels), gets a prediction with warnings.  Either way the
other files go on.

A file is decoded, resampled and turned into log-Mel block by block, and its windows are built batch by batch
into one buffer, so the data held grows only by the file's log-Mel, 0.5 MB per minute of audio.  The process's
peak also holds what the allocator keeps for speed (``runtime.keep_freed_buffers``): ``benchmarks/inference.py``
measures it for 3 s, 10 min and 60 min files.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from liser.corpora.audio_check import UnusableAudio, check_audio
from liser.export import FRONT_END_KEYS, load_onnx_student
from liser.features import LogMel, audio_blocks
from liser.params import EvaluateParams, FeatureParams
from liser.runtime import resolve_device
from liser.students.checkpoints import load_student
from liser.students.evaluate import Windowing, utterance_logits, windowing

__all__ = ["AUDIO_SUFFIXES", "MIN_SECONDS", "Prediction", "Predictor", "find_audio", "student_files"]

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3"})
# Below this, more than 5/6 of the 3 s window would be padding: not what the students were trained on.
MIN_SECONDS = 0.5


class Classifier(Protocol):
    """What ``utterance_logits`` needs: a PyTorch ``Student`` or an ``export.OnnxStudent``."""

    def eval(self) -> object: ...

    def classify(self, logmel: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class Prediction:
    path: Path
    emotion: str | None = None  # None when the file could not be used
    probabilities: np.ndarray | None = None  # (K,), the students' softmax probabilities averaged
    logits: np.ndarray | None = None  # (K,), window-averaged logits; for a single student only
    seconds: float | None = None
    warnings: tuple[str, ...] = ()
    error: str | None = None

    def as_dict(self, classes: Sequence[str]) -> dict:
        def by_class(values: np.ndarray | None) -> dict[str, float] | None:
            return None if values is None else {name: float(v) for name, v in zip(classes, values)}

        return {
            "path": str(self.path),
            "emotion": self.emotion,
            "probabilities": by_class(self.probabilities),
            "logits": by_class(self.logits),
            "seconds": self.seconds,
            "warnings": list(self.warnings),
            "error": self.error,
        }


def student_files(path: str | Path) -> list[Path]:
    """One student file, a fold folder holding ``student.safetensors``, or a folder of ``fold*/`` folders."""
    path = Path(path)
    if path.is_file():
        if path.suffix not in (".safetensors", ".onnx"):
            raise ValueError(f"{path}: a student is a .safetensors checkpoint or an .onnx export")
        return [path]
    if (path / "student.safetensors").is_file():
        return [path / "student.safetensors"]
    folds = [p for p in path.glob("fold*/student.safetensors") if re.fullmatch(r"fold\d+", p.parent.name)]
    if not folds:
        raise ValueError(f"{path}: no student.safetensors in it or in fold<k>/ folders below it")
    return sorted(folds, key=lambda p: int(p.parent.name.removeprefix("fold")))


def find_audio(paths: Iterable[str | Path]) -> list[Path]:
    """Files named explicitly, whatever they are (so a bad one gets its error), and the audio files
    (.wav, .flac, .mp3) under named folders, in name order."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith(".")
            )
        else:
            found.append(path)
    return found


def _check_front_end(path: Path, card: dict, features: FeatureParams) -> None:
    differing = [
        f"{key} {card['input'][key]} vs {getattr(features, key)}"
        for key in FRONT_END_KEYS
        if card["input"][key] != getattr(features, key)
    ]
    if differing:
        raise ValueError(f"{path}: exported for other features than params.yaml's: {', '.join(differing)}")


def _load(
    path: Path, features: FeatureParams, threads: int | None, device: torch.device
) -> tuple[Classifier, list[str]]:
    if path.suffix == ".onnx":
        runtime, classes, card = load_onnx_student(path, threads)
        _check_front_end(path, card, features)
        return runtime, classes
    student, classes, _ = load_student(path)
    if student.config.n_mels != features.n_mels:
        raise ValueError(f"{path}: trained on {student.config.n_mels} Mel bands, params.yaml has {features.n_mels}")
    return student.to(device), classes


class Predictor:
    """Students sharing one set of classes, with the front end and windowing they were evaluated with."""

    def __init__(
        self,
        students: Sequence[Classifier],
        classes: Sequence[str],
        features: FeatureParams,
        windows: Windowing,
        sources: Sequence[Path] = (),
    ):
        if not students:
            raise ValueError("no student to predict with")
        self.students = list(students)
        self.classes = list(classes)
        self.features = features
        self.windows = windows
        self.sources = list(sources)  # the files the students were loaded from
        self.extractor = LogMel(features)

    @classmethod
    def load(
        cls,
        student: str | Path,
        features: FeatureParams,
        evaluate: EvaluateParams,
        device: str = "auto",
        stride_s: float | None = None,
        threads: int | None = None,
    ) -> Predictor:
        """``student`` as :func:`student_files` takes it; ``stride_s`` replaces the evaluation stride
        (``evaluate.stride_s``); ``threads`` is ONNX Runtime's intra-op thread count.  PyTorch students run on
        ``device`` (``train.device``; auto: the GPU when there is one)."""
        files = student_files(student)
        loaded = [_load(path, features, threads, resolve_device(device)) for path in files]
        classes = loaded[0][1]
        for path, (_, other) in zip(files, loaded):
            if other != classes:
                raise ValueError(f"{path}: classes {other} differ from {files[0]}'s {classes}")
        windows = windowing(features, evaluate)
        if stride_s is not None:
            if stride_s <= 0:
                raise ValueError(f"stride must be positive (got {stride_s})")
            windows = dataclasses.replace(windows, stride_frames=stride_s / features.hop_s)
        return cls([model for model, _ in loaded], classes, features, windows, files)

    @property
    def stride_s(self) -> float:
        return self.windows.stride_frames * self.features.hop_s

    def read(self, path: Path) -> tuple[np.ndarray, float, tuple[str, ...]]:
        """(log-Mel, seconds, warnings); raises :class:`UnusableAudio` saying why a file cannot be used."""
        if not path.is_file():
            raise UnusableAudio("no such file")
        info = check_audio(path)
        samples, sound = 0, False

        def counted(blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
            nonlocal samples, sound
            for block in blocks:
                samples, sound = samples + len(block), sound or bool(np.any(block))
                yield block

        logmel = self.extractor.streamed(counted(audio_blocks(path, self.features.sample_rate)))
        seconds = samples / self.features.sample_rate
        if not sound:
            raise UnusableAudio("digital silence: every sample is 0")
        if seconds < MIN_SECONDS:
            raise UnusableAudio(f"too short: {seconds:.2f} s of audio, at least {MIN_SECONDS} s needed")
        warnings = []
        if info.sample_rate < self.features.sample_rate:
            warnings.append(
                f"recorded at {info.sample_rate} Hz: nothing above {info.sample_rate // 2} Hz, unlike the "
                f"{self.features.sample_rate} Hz audio the student was trained on; "
                "the prediction may be less reliable"
            )
        if info.channels > 1:
            warnings.append(f"{info.channels} channels averaged to mono")
        return logmel, seconds, tuple(warnings)

    def scores(self, logmels: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """(N, K) probabilities, and (N, K) logits when there is a single student (else None)."""
        logits = [utterance_logits(student, logmels, self.windows) for student in self.students]
        probabilities = np.mean([torch.softmax(torch.from_numpy(x), dim=1).numpy() for x in logits], axis=0)
        return probabilities, logits[0] if len(logits) == 1 else None

    def predict(self, path: str | Path) -> Prediction:
        path = Path(path)
        try:
            logmel, seconds, warnings = self.read(path)
        except UnusableAudio as problem:
            return Prediction(path, error=str(problem))
        except Exception as problem:  # a decoder's failure on one file must not stop the others
            return Prediction(path, error=f"could not read: {problem}")
        probabilities, logits = self.scores([logmel])
        return Prediction(
            path,
            emotion=self.classes[int(probabilities[0].argmax())],
            probabilities=probabilities[0],
            logits=None if logits is None else logits[0],
            seconds=seconds,
            warnings=warnings,
        )
