"""The speech teachers' stages: one teacher per labeled corpus and fold (HuBERT + LoRA trained on
``training_fraction`` of the fold's non-test speakers, the best epoch picked on the others, scored on the fold's
test speakers), and each fold's teacher's window softmaxes of the unlabeled window table (incremental, as
:func:`liser.teachers.speech.window_softmaxes` describes).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from liser.corpora import EMOTIONS
from liser.files import write_json, write_parquet
from liser.folds import fold_utterances
from liser.params import SpeechTeacherParams
from liser.runtime import keep_freed_buffers
from liser.teachers import speech

__all__ = ["speech_teacher_runs", "speech_window_softmaxes", "fold_folder"]

log = logging.getLogger(__name__)


def fold_folder(root: str | Path, fold: int) -> Path:
    return Path(root) / f"fold{fold}"


def _mean_and_spread(per_fold: dict[int, dict]) -> dict:
    uars = [scores["test"]["uar"] for scores in per_fold.values()]
    wars = [scores["test"]["war"] for scores in per_fold.values()]
    return {
        "uar": float(np.mean(uars)),
        "uar_std": float(np.std(uars)),
        "war": float(np.mean(wars)),
        "war_std": float(np.std(wars)),
    }


def speech_teacher_runs(
    corpus: str,
    folds_to_run: list[int],
    params: SpeechTeacherParams,
    base: str | Path,
    manifest: str | Path,
    folds: str | Path,
    out: str | Path,
    metrics: str | Path,
) -> dict:
    """One teacher per fold in ``out/fold<k>/``, LoRA on the pretrained model in ``base``; metrics per fold and their
    mean and spread."""
    keep_freed_buffers()
    torch.set_num_threads(params.threads)
    utterances = pd.read_parquet(manifest)
    speaker_roles = pd.read_csv(folds, dtype={"speaker": str})
    classes = list(EMOTIONS[corpus])
    per_fold: dict[int, dict] = {}
    for fold in folds_to_run:
        non_test = pd.concat(
            [fold_utterances(utterances, speaker_roles, fold, role) for role in ("train", "validation")],
            ignore_index=True,
        )
        train, selection = speech.teacher_split(
            non_test, params.training_fraction, params.seed + fold, folds=speaker_roles, fold=fold
        )
        test = fold_utterances(utterances, speaker_roles, fold, "test")
        log.info(
            "%s fold %d: speech teacher on %d utterances, epoch picked on %d, tested on %d",
            corpus,
            fold,
            len(train),
            len(selection),
            len(test),
        )
        model = speech.build_speech_teacher(
            base,
            len(classes),
            params.lora_rank,
            params.lora_alpha,
            params.lora_dropout,
            seed=params.seed + fold,
        )
        result = speech.train_speech_teacher(
            speech.load_items(train),
            speech.load_items(selection),
            model,
            epochs=params.epochs,
            lr=params.lr,
            batch_size=params.batch_size,
            max_seconds=params.max_seconds,
            seed=params.seed + fold,
            eval_batch_size=params.eval_batch_size,
        )
        scores, _ = speech.evaluate_speech_teacher(result.model, speech.load_items(test), params.eval_batch_size)
        per_fold[fold] = {
            "test": {"uar": scores.uar, "war": scores.war},
            "selection_uar": float(result.history["validation_uar"].max()),
            "best_epoch": int(result.best_epoch),
            "utterances": {"train": len(train), "selection": len(selection), "test": len(test)},
        }
        folder = fold_folder(out, fold)
        speech.save_speech_teacher(folder, result.model, classes, corpus=corpus, fold=fold, **per_fold[fold]["test"])
        write_parquet(folder / "history.parquet", result.history)
        log.info("%s fold %d: speech teacher test UAR %.3f", corpus, fold, scores.uar)
    summary = {"test": _mean_and_spread(per_fold), "folds": {str(k): v for k, v in per_fold.items()}}
    write_json(metrics, summary)
    return summary


def speech_window_softmaxes(
    teachers: str | Path,
    folds_to_run: list[int],
    manifest: str | Path,
    windows: str | Path,
    out: str | Path,
    base: str | Path | None = None,
    batch_size: int = 32,
    threads: int = 2,
) -> dict:
    """Score the window table with each fold's speech teacher into ``out/fold<k>.parquet``; ``base`` is the
    pretrained model the teachers were trained on (default: the folder recorded with them)."""
    keep_freed_buffers()
    torch.set_num_threads(threads)
    audio = pd.read_parquet(manifest)
    window_table = pd.read_parquet(windows)
    counts = {}
    for fold in folds_to_run:
        model, classes, _ = speech.load_speech_teacher(fold_folder(teachers, fold), base)
        table = speech.window_softmaxes(
            model, audio, window_table, batch_size, classes=classes, out=Path(out) / f"fold{fold}.parquet"
        )
        counts[f"fold{fold}"] = {"windows": len(table), "mean_p_max": float(table["p_max"].mean())}
    return counts
