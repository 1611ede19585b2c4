"""The speech teachers' stages (``speech_teacher``, ``speech_teacher_labeled``): one teacher per labeled corpus and
fold (HuBERT + LoRA, scored on the fold's test speakers), in ``<out>/fold<k>/``; for Figure 2, one stage per corpus
for every share, in ``<out>/<percent>/fold<k>/``.

A teacher is trained only on the base its params name: a ``data/speech_base`` whose record says it was made for
other ``speech_base`` params is refused (:func:`liser.teachers.speech_base.check_speech_base`).  On a CPU with the
same thread count, the stages write the same bytes on every run (:mod:`liser.teachers.speech_training`).

Which labeled utterances a fold's teacher learns from (``speech_teacher.split``): ``train_only``, the student's
training speakers, its epoch picked on the student's validation speakers; ``non_test``, ``training_fraction`` of the
fold's non-test speakers, the epoch picked on the others.  For Figure 2's runs on p % of the labeled training
utterances (``label_efficiency.teacher: share``) the teacher learns from the same p % the students see, so no label
outside the share reaches a student through its teacher.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from liser.files import atomic_directory, read_json, write_json, write_parquet
from liser.folds import fold_utterances, labeled_share
from liser.metrics import sample_std
from liser.params import SpeechTeacherParams
from liser.runtime import keep_freed_buffers
from liser.teachers.speech_base import SpeechBaseChoice, check_speech_base
from liser.teachers.speech_evaluation import evaluate_speech_teacher
from liser.teachers.speech_input import load_items
from liser.teachers.speech_model import TEACHER_FILE, build_speech_teacher, fold_folder, save_speech_teacher
from liser.teachers.speech_training import teacher_split, train_speech_teacher
from liser.tracking import TrainingCurves

RESULTS_FILE = "results.json"  # every fold's figures, beside the teachers

__all__ = ["TeacherStage", "teacher_utterances", "speech_teacher_runs", "share_teacher_runs", "shares_teacher_runs"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TeacherStage:
    """What a speech-teacher stage works on: a labeled corpus (its name, class names in label order, utterance table
    and speaker folds), the base folder, and where the teachers, metrics and DVCLive curves go."""

    corpus: str
    classes: Sequence[str]  # liser.corpora.corpus_classes
    base: Path
    manifest: Path
    folds: Path
    out: Path
    metrics: Path | None  # None: only the figures returned (and results.json beside the teachers)
    live: Path | None = None


def _mean_and_spread(per_fold: dict[int, dict]) -> dict:
    uars = [scores["test"]["uar"] for scores in per_fold.values()]
    wars = [scores["test"]["war"] for scores in per_fold.values()]
    return {
        "uar": float(np.mean(uars)),
        "uar_std": sample_std(uars),
        "war": float(np.mean(wars)),
        "war_std": sample_std(wars),
    }


def teacher_utterances(
    utterances: pd.DataFrame,
    speaker_roles: pd.DataFrame,
    fold: int,
    params: SpeechTeacherParams,
    labeled_percent: int = 100,
    share_seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The fold's teacher's training and epoch-selection utterances under ``params.split``, from the labeled
    utterances a student of ``labeled_percent`` % sees: that share of the training speakers' utterances (drawn as
    the students draw it, with ``share_seed + fold``) and the validation speakers' utterances."""
    train = labeled_share(fold_utterances(utterances, speaker_roles, fold, "train"), labeled_percent, share_seed + fold)
    validation = fold_utterances(utterances, speaker_roles, fold, "validation")
    if params.split == "train_only":
        return train, validation
    return teacher_split(
        pd.concat([train, validation], ignore_index=True),
        params.training_fraction,
        params.seed + fold,
        folds=speaker_roles,
        fold=fold,
    )


def speech_teacher_runs(
    stage: TeacherStage,
    folds_to_run: list[int],
    params: SpeechTeacherParams,
    base_choice: SpeechBaseChoice,
    labeled_percent: int = 100,
    share_seed: int = 0,
    curves: TrainingCurves | None = None,
    curve_prefix: str = "",
) -> dict:
    """One teacher per fold in ``stage.out/fold<k>/``, LoRA on the pretrained model in ``stage.base`` (checked to be
    the one ``base_choice`` names), on the utterances of :func:`teacher_utterances`; metrics per fold and their mean
    and spread in ``stage.metrics``; each fold's training curves in the DVCLive folder ``stage.live`` as it trains
    (:mod:`liser.tracking`), or, given ``curves`` (which the caller finishes), as its runs ``<curve_prefix>fold<k>``."""
    check_speech_base(stage.base, base_choice)
    finish = curves is None
    curves = TrainingCurves(stage.live) if curves is None else curves
    keep_freed_buffers()
    torch.set_num_threads(params.threads)
    utterances = pd.read_parquet(stage.manifest)
    speaker_roles = pd.read_csv(stage.folds, dtype={"speaker": str})
    classes, corpus = list(stage.classes), stage.corpus
    per_fold: dict[int, dict] = {}
    for fold in folds_to_run:
        train, selection = teacher_utterances(utterances, speaker_roles, fold, params, labeled_percent, share_seed)
        test = fold_utterances(utterances, speaker_roles, fold, "test")
        log.info(
            "%s fold %d: speech teacher on %d utterances, epoch picked on %d, tested on %d",
            corpus,
            fold,
            len(train),
            len(selection),
            len(test),
        )
        model = build_speech_teacher(stage.base, len(classes), params, seed=params.seed + fold)
        result = train_speech_teacher(
            load_items(train),
            load_items(selection),
            model,
            params,
            seed=params.seed + fold,
            on_epoch=curves.logger(f"{curve_prefix}fold{fold}"),
        )
        scores, _ = evaluate_speech_teacher(result.model, load_items(test), params.eval_batch_size)
        per_fold[fold] = {
            "test": {"uar": scores.uar, "war": scores.war},
            "selection_uar": float(result.history["validation_uar"].max()),
            "best_epoch": int(result.best_epoch),
            "utterances": {"train": len(train), "selection": len(selection), "test": len(test)},
            "split": params.split,
            "labeled_percent": labeled_percent,
        }
        folder = fold_folder(stage.out, fold)
        save_speech_teacher(folder, result.model, classes, corpus=corpus, fold=fold, **per_fold[fold]["test"])
        write_parquet(folder / "history.parquet", result.history)
        log.info("%s fold %d: speech teacher test UAR %.3f", corpus, fold, scores.uar)
    if finish:
        curves.finish()
    return _write_results(stage, {"test": _mean_and_spread(per_fold)}, per_fold)


def share_teacher_runs(
    stage: TeacherStage,
    folds_to_run: list[int],
    params: SpeechTeacherParams,
    base_choice: SpeechBaseChoice,
    teacher: str,
    share_seed: int,
    labeled_percent: int,
    full_teachers: str | Path,
    curves: TrainingCurves | None = None,
    curve_prefix: str = "",
) -> dict:
    """Figure 2's speech teachers for ``labeled_percent`` %: with ``teacher`` ``share`` (``label_efficiency.teacher``)
    trained on that share, drawn with ``share_seed`` (``label_efficiency.seed``, :func:`speech_teacher_runs`, which
    ``curves`` and ``curve_prefix`` go to); with ``all`` the full run's teachers in ``full_teachers``, copied."""
    if teacher == "share":
        return speech_teacher_runs(
            stage, folds_to_run, params, base_choice, labeled_percent, share_seed, curves, curve_prefix
        )
    per_fold = {}
    for fold in folds_to_run:
        source, target = fold_folder(full_teachers, fold), fold_folder(stage.out, fold)
        with atomic_directory(target) as staging:
            shutil.copytree(source, staging, dirs_exist_ok=True)
        info = read_json(target / TEACHER_FILE)["info"]
        per_fold[fold] = {"test": {"uar": info["uar"], "war": info["war"]}, "labeled_percent": 100}
    log.info("%s: the full run's speech teachers copied for the %d %% students", stage.corpus, labeled_percent)
    if curves is None:
        TrainingCurves(stage.live).finish()  # the declared DVCLive folder, without curves: nothing trained here
    return _write_results(stage, {"test": _mean_and_spread(per_fold), "teacher": "all"}, per_fold)


def shares_teacher_runs(
    stage: TeacherStage,
    folds_to_run: list[int],
    params: SpeechTeacherParams,
    base_choice: SpeechBaseChoice,
    teacher: str,
    share_seed: int,
    percents: list[int],
    full_teachers: str | Path,
) -> dict:
    """:func:`share_teacher_runs` for each of ``percents`` (``label_efficiency.percents``), one after another, into
    ``stage.out/<percent>/``, their curves as runs ``<percent>/fold<k>`` of ``stage.live``; ``stage.metrics`` gets
    each share's figures under its percent.  One stage for every share keeps a no-op `dvc repro` fast: DVC takes
    time to check each stage, run or not."""
    curves = TrainingCurves(stage.live)
    figures = {}
    for percent in percents:
        share = dataclasses.replace(stage, out=Path(stage.out) / str(percent), metrics=None, live=None)
        results = share_teacher_runs(
            share, folds_to_run, params, base_choice, teacher, share_seed, percent, full_teachers, curves, f"{percent}/"
        )
        figures[str(percent)] = {key: value for key, value in results.items() if key != "folds"}
    curves.finish()
    write_json(stage.metrics, figures)
    return figures


def _write_results(stage: TeacherStage, figures: dict, per_fold: dict[int, dict]) -> dict:
    """The stage's metrics (the figures a person compares across experiments: test UAR/WAR, mean and spread over
    folds) and, in ``stage.out/results.json`` beside the teachers, every fold's detail."""
    results = {**figures, "folds": {str(k): v for k, v in per_fold.items()}}
    write_json(Path(stage.out) / RESULTS_FILE, results)
    if stage.metrics is not None:
        write_json(stage.metrics, figures)
    return results
