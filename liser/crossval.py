"""One student per corpus and fold, trained on the fold's training speakers, chosen on its
validation speakers and scored on its unseen test speakers."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .checkpoints import save_student
from .corpora import EMOTIONS
from .evaluate import Windowing, score, utterance_logits
from .features import FeatureStore, LogMel
from .files import write_json, write_parquet
from .folds import fold_utterances
from .models.student import StudentConfig
from .params import Params
from .train import LabeledSet, train_supervised

__all__ = ["windowing", "labeled_set", "run_fold"]

log = logging.getLogger(__name__)


def windowing(params: Params) -> Windowing:
    features = params.features
    return Windowing(
        window_frames=features.segment_frames,
        stride_frames=params.evaluate.stride_s / features.hop_s,
        pad_value=LogMel.silence_of(features),
        batch_size=params.evaluate.eval_batch_size,
    )


def labeled_set(utterances: pd.DataFrame, store: FeatureStore) -> LabeledSet:
    kept = utterances[utterances["utterance"].isin(store.index["utterance"])]
    if len(kept) < len(utterances):
        log.warning("%d utterances have no features and are left out", len(utterances) - len(kept))
    return LabeledSet(
        utterances=list(kept["utterance"]),
        features=[store[u] for u in kept["utterance"]],
        labels=kept["label"].to_numpy(dtype=np.int64),
    )


def run_fold(
    corpus: str,
    fold: int,
    params: Params,
    manifest: Path,
    folds: Path,
    features: Path,
    out: Path,
    metrics: Path,
) -> dict:
    """Train on the fold's train speakers, select on validation, score on test; write everything."""
    utterances = pd.read_parquet(manifest)
    speaker_roles = pd.read_csv(folds, dtype={"speaker": str})
    if fold not in set(speaker_roles["fold"]):
        raise ValueError(f"{folds} has no fold {fold} (cv.folds = {params.cv.folds})")
    store = FeatureStore(features)
    sets = {role: labeled_set(fold_utterances(utterances, speaker_roles, fold, role), store)
            for role in ("train", "validation", "test")}  # fmt: skip
    classes = list(EMOTIONS[corpus])
    config = StudentConfig(
        speech_classes=len(classes),
        video_classes=params.student.video_classes,
        n_mels=params.features.n_mels,
        conv_channels=params.student.conv_channels,
        lstm_hidden=params.student.lstm_hidden,
        distill_hidden=params.student.distill_hidden,
    )
    log.info("%s fold %d: %s utterances", corpus, fold, {r: len(s.labels) for r, s in sets.items()})
    windows = windowing(params)
    result = train_supervised(sets["train"], sets["validation"], config, params.train, windows)

    test_logits = utterance_logits(result.model, sets["test"].features, windows)
    test = score(sets["test"].labels, test_logits)
    best = result.history.loc[result.history["epoch"] == result.best_epoch].iloc[0]
    out.mkdir(parents=True, exist_ok=True)
    save_student(out / "student.safetensors", result.model, classes, corpus=corpus, fold=fold,
                 best_epoch=result.best_epoch, test_uar=test.uar, test_war=test.war)  # fmt: skip
    write_parquet(out / "history.parquet", result.history)
    predictions = pd.DataFrame(
        {
            "utterance": sets["test"].utterances,
            "label": sets["test"].labels,
            "predicted": test_logits.argmax(axis=1),
            "actual_emotion": [classes[i] for i in sets["test"].labels],
            "predicted_emotion": [classes[i] for i in test_logits.argmax(axis=1)],
        }
    )
    for k, name in enumerate(classes):
        predictions[f"logit_{name}"] = test_logits[:, k]
    write_parquet(out / "predictions.parquet", predictions)
    summary = {
        "test": test.as_dict(),
        "validation": {"uar": float(best["validation_uar"]), "war": float(best["validation_war"])},
        "best_epoch": int(result.best_epoch),
        "utterances": {role: len(s.labels) for role, s in sets.items()},
    }
    write_json(metrics, summary)
    return summary
