"""What the teacher stages do: obtain each teacher (train it, or load published weights), score it on
labeled data it never saw, and turn the unlabeled window table into its window softmaxes.

- One video teacher for the project: S2D loaded from the published checkpoint or, without one, trained on a
  FERV39k-layout corpus; scored on that corpus's test clips when the corpus is there.
- One speech teacher per labeled corpus and fold: HuBERT + LoRA trained on ``training_fraction`` of the fold's
  non-test speakers, the best epoch picked on the others, scored on the fold's test speakers.

Window softmaxes are incremental: windows an earlier run of the same teacher (same weights fingerprint) already
scored are taken from the existing file, so adding segments scores only the new windows.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..corpora import EMOTIONS
from ..corpora.ferv39k import read_ferv39k
from ..files import write_json, write_parquet
from ..folds import fold_utterances
from ..models.s2d import S2DConfig
from ..params import SpeechTeacherParams, VideoTeacherParams
from ..runtime import keep_freed_buffers
from . import speech, video

__all__ = [
    "VIDEO_TEACHER_FILE",
    "video_teacher_run",
    "video_window_softmaxes",
    "speech_teacher_runs",
    "speech_window_softmaxes",
    "fold_folder",
]

log = logging.getLogger(__name__)

VIDEO_TEACHER_FILE = "teacher.safetensors"
FINGERPRINT_ATTR = "teacher_sha256"  # in the Parquet file's pandas metadata


def fold_folder(root: str | Path, fold: int) -> Path:
    return Path(root) / f"fold{fold}"


def _mean_and_spread(per_fold: dict[int, dict]) -> dict:
    uars = [scores["test"]["uar"] for scores in per_fold.values()]
    wars = [scores["test"]["war"] for scores in per_fold.values()]
    return {"uar": float(np.mean(uars)), "uar_std": float(np.std(uars)),
            "war": float(np.mean(wars)), "war_std": float(np.std(wars))}  # fmt: skip


# --- the video teacher -----------------------------------------------------------------------------------------


def video_teacher_run(params: VideoTeacherParams, out: str | Path, metrics: str | Path) -> dict:
    """Write ``out/teacher.safetensors`` (and the training history when trained) and the teacher's metrics."""
    out = Path(out)
    keep_freed_buffers()
    torch.set_num_threads(params.threads)
    config = S2DConfig.small() if params.size == "small" else S2DConfig.full()
    corpus = None
    if params.corpus is not None and params.corpus.is_dir():
        corpus = read_ferv39k(params.corpus).clips
    elif params.checkpoint is None:
        raise FileNotFoundError(f"{params.corpus}: the FERV39k-layout corpus to train the video teacher on is missing")
    summary: dict = {"size": params.size}
    out.mkdir(parents=True, exist_ok=True)
    if params.checkpoint is None:
        result = video.train_video_teacher(
            corpus, config, epochs=params.epochs, lr=params.lr, batch_size=params.batch_size, seed=params.seed,
            threads=params.threads, eval_batch_size=params.eval_batch_size,
        )  # fmt: skip
        model = result.model
        write_parquet(out / "history.parquet", result.history)
        summary.update(source="trained", best_epoch=int(result.best_epoch),
                       train_clips=int((corpus["split"] == "train").sum()))  # fmt: skip
    else:
        model = video.build_video_teacher(config, params.checkpoint, params.mobilefacenet)
        summary.update(source=str(params.checkpoint))
    if corpus is not None and (corpus["split"] == "test").any():
        scores = video.evaluate_video_teacher(model, corpus, "test", params.eval_batch_size)
        summary["test"] = {"uar": scores["uar"], "war": scores["war"], "clips": scores["clips"]}
        log.info("video teacher: test UAR %.3f, WAR %.3f on %d clips", scores["uar"], scores["war"], scores["clips"])
    video.save_video_teacher(out / VIDEO_TEACHER_FILE, model, **summary)
    write_json(metrics, summary)
    return summary


def _existing(path: Path, fingerprint: str) -> pd.DataFrame | None:
    """An earlier softmax table at ``path`` when the same teacher wrote it."""
    if not path.is_file():
        return None
    earlier = pd.read_parquet(path)
    if earlier.attrs.get(FINGERPRINT_ATTR) != fingerprint:
        log.info("%s was written by another teacher; every window is scored again", path)
        return None
    return earlier


def video_window_softmaxes(teacher: str | Path, windows: str | Path, faces: str | Path, out: str | Path,
                           batch_size: int = 8, threads: int = 2) -> dict:  # fmt: skip
    """Score every window of the window table with the video teacher into ``out`` (Parquet)."""
    keep_freed_buffers()
    torch.set_num_threads(threads)
    model, _ = video.load_video_teacher(Path(teacher) / VIDEO_TEACHER_FILE)
    fingerprint = speech.teacher_fingerprint(model)
    out = Path(out)
    table = video.window_softmaxes(model, pd.read_parquet(windows), faces, batch_size,
                                   existing=_existing(out, fingerprint))  # fmt: skip
    table.attrs = {FINGERPRINT_ATTR: fingerprint}
    write_parquet(out, table)
    return {"windows": len(table), "segments": int(table["segment"].nunique()),
            "mean_p_max": float(table["p_max"].mean())}  # fmt: skip


# --- the speech teachers ---------------------------------------------------------------------------------------


def speech_teacher_runs(
    corpus: str,
    folds_to_run: list[int],
    params: SpeechTeacherParams,
    manifest: str | Path,
    folds: str | Path,
    out: str | Path,
    metrics: str | Path,
) -> dict:
    """One teacher per fold in ``out/fold<k>/``; metrics per fold and their mean and spread."""
    keep_freed_buffers()
    torch.set_num_threads(params.threads)
    utterances = pd.read_parquet(manifest)
    speaker_roles = pd.read_csv(folds, dtype={"speaker": str})
    classes = list(EMOTIONS[corpus])
    per_fold: dict[int, dict] = {}
    for fold in folds_to_run:
        non_test = pd.concat([fold_utterances(utterances, speaker_roles, fold, role)
                              for role in ("train", "validation")], ignore_index=True)  # fmt: skip
        train, selection = speech.teacher_split(non_test, params.training_fraction, params.seed + fold,
                                                folds=speaker_roles, fold=fold)  # fmt: skip
        test = fold_utterances(utterances, speaker_roles, fold, "test")
        log.info("%s fold %d: speech teacher on %d utterances, epoch picked on %d, tested on %d",
                 corpus, fold, len(train), len(selection), len(test))  # fmt: skip
        model = speech.build_speech_teacher(params.source, len(classes), params.lora_rank, params.lora_alpha,
                                            params.lora_dropout, seed=params.seed + fold)  # fmt: skip
        result = speech.train_speech_teacher(
            speech.load_items(train), speech.load_items(selection), model, epochs=params.epochs, lr=params.lr,
            batch_size=params.batch_size, max_seconds=params.max_seconds, seed=params.seed + fold,
            eval_batch_size=params.eval_batch_size,
        )  # fmt: skip
        scores, _ = speech.evaluate_speech_teacher(result.model, speech.load_items(test), params.eval_batch_size)
        per_fold[fold] = {
            "test": {"uar": scores.uar, "war": scores.war},
            "selection_uar": float(result.history["validation_uar"].max()),
            "best_epoch": int(result.best_epoch),
            "utterances": {"train": len(train), "selection": len(selection), "test": len(test)},
        }
        folder = fold_folder(out, fold)
        speech.save_speech_teacher(folder, result.model, classes, corpus=corpus, fold=fold,
                                   **per_fold[fold]["test"])  # fmt: skip
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
    base_source: str | None = None,
    batch_size: int = 32,
    threads: int = 2,
) -> dict:
    """Score the window table with each fold's speech teacher into ``out/fold<k>.parquet``."""
    keep_freed_buffers()
    torch.set_num_threads(threads)
    audio = pd.read_parquet(manifest)
    window_table = pd.read_parquet(windows)
    counts = {}
    for fold in folds_to_run:
        model, classes, _ = speech.load_speech_teacher(fold_folder(teachers, fold), base_source)
        table = speech.window_softmaxes(model, audio, window_table, batch_size, classes=classes,
                                        out=Path(out) / f"fold{fold}.parquet")  # fmt: skip
        counts[f"fold{fold}"] = {"windows": len(table), "mean_p_max": float(table["p_max"].mean())}
    return counts
