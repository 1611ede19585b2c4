"""Students per corpus, configuration and fold: trained on the fold's training speakers (and the
unlabeled segments when the configuration distils), chosen on its validation speakers and scored on
its unseen test speakers."""

from __future__ import annotations

import logging
import math
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from liser.corpora import EMOTIONS
from liser.features import FeatureStore
from liser.files import write_json, write_parquet
from liser.folds import fold_utterances
from liser.logs import configure_logging
from liser.metrics import score
from liser.models.student import StudentConfig
from liser.params import Params
from liser.students.checkpoints import save_student
from liser.students.configurations import Configuration
from liser.students.distill import UnlabeledSet, unlabeled_set
from liser.students.evaluate import utterance_logits, windowing
from liser.students.train import LabeledSet, distil_only, train_student

__all__ = [
    "labeled_set",
    "labeled_share",
    "StudentInputs",
    "fold_unlabeled_set",
    "student_config",
    "run_fold",
    "run_configuration",
]

log = logging.getLogger(__name__)


def labeled_set(utterances: pd.DataFrame, store: FeatureStore) -> LabeledSet:
    kept = utterances[utterances["utterance"].isin(store.index["utterance"])]
    if len(kept) < len(utterances):
        log.warning("%d utterances have no features and are left out", len(utterances) - len(kept))
    return LabeledSet(
        utterances=list(kept["utterance"]),
        features=[store[u] for u in kept["utterance"]],
        labels=kept["label"].to_numpy(dtype=np.int64),
    )


def labeled_share(utterances: pd.DataFrame, percent: int, seed: int) -> pd.DataFrame:
    """``percent`` % of the utterances of each class (rounded up, at least one), drawn with ``seed``."""
    if percent == 100:
        return utterances
    rng = np.random.default_rng(seed)
    kept = []
    for _, members in utterances.groupby("label", sort=True):
        count = max(1, math.ceil(len(members) * percent / 100))
        kept.extend(members.index[np.sort(rng.permutation(len(members))[:count])])
    return utterances.loc[sorted(kept)].reset_index(drop=True)


@dataclass(frozen=True)
class StudentInputs:
    """Where a corpus's students find their data."""

    manifest: Path
    folds: Path
    features: Path
    unlabeled_features: Path | None = None  # log-Mels of the unlabeled segments
    speech_softmaxes: Path | None = None  # folder of fold<k>.parquet
    video_softmaxes: Path | None = None  # one Parquet file


def fold_unlabeled_set(
    inputs: StudentInputs, fold: int, configuration: Configuration, hop_s: float
) -> UnlabeledSet | None:
    """The unlabeled segments with the window softmaxes of the teachers ``configuration`` distils from."""
    if not (configuration.speech or configuration.video):
        return None
    if inputs.unlabeled_features is None:
        raise ValueError(f"{configuration.name} distils over unlabeled segments: give their features")
    speech = video = None
    if configuration.speech:
        if inputs.speech_softmaxes is None:
            raise ValueError(f"{configuration.name} needs the speech teacher's window softmaxes")
        speech = pd.read_parquet(inputs.speech_softmaxes / f"fold{fold}.parquet")
    if configuration.video:
        if inputs.video_softmaxes is None:
            raise ValueError(f"{configuration.name} needs the video teacher's window softmaxes")
        video = pd.read_parquet(inputs.video_softmaxes)
    return unlabeled_set(FeatureStore(inputs.unlabeled_features), hop_s, speech, video)


def student_config(corpus: str, params: Params) -> StudentConfig:
    return StudentConfig(
        speech_classes=len(EMOTIONS[corpus]),
        video_classes=params.student.video_classes,
        n_mels=params.features.n_mels,
        conv_channels=params.student.conv_channels,
        lstm_hidden=params.student.lstm_hidden,
        distill_hidden=params.student.distill_hidden,
    )


def run_fold(
    corpus: str, fold: int, configuration: Configuration, params: Params, inputs: StudentInputs, out: Path
) -> dict:
    """Train one student on the fold's training speakers (and the unlabeled segments when it distils),
    select on validation, score on test; write the student, its history and its test predictions."""
    utterances = pd.read_parquet(inputs.manifest)
    speaker_roles = pd.read_csv(inputs.folds, dtype={"speaker": str})
    if fold not in set(speaker_roles["fold"]):
        raise ValueError(f"{inputs.folds} has no fold {fold} (cv.folds = {params.cv.folds})")
    store = FeatureStore(inputs.features)
    by_role = {role: fold_utterances(utterances, speaker_roles, fold, role) for role in ("train", "validation", "test")}
    by_role["train"] = labeled_share(
        by_role["train"], configuration.labeled_percent, params.label_efficiency.seed + fold
    )
    sets = {role: labeled_set(rows, store) for role, rows in by_role.items()}
    classes = list(EMOTIONS[corpus])
    config = student_config(corpus, params)
    objective = configuration.objective(params.loss)
    unlabeled = fold_unlabeled_set(inputs, fold, configuration, params.features.hop_s) if objective.distils else None
    log.info(
        "%s %s fold %d: %s utterances, %s unlabeled segments",
        corpus,
        configuration.run_name,
        fold,
        {r: len(s.labels) for r, s in sets.items()},
        0 if unlabeled is None else len(unlabeled),
    )
    windows, validation_windows = windowing(params), windowing(params, params.evaluate.validation_stride_s)
    if configuration.two_stage:
        state, distillation = distil_only(unlabeled, config, params.train, windows, objective)
        result = train_student(
            sets["train"],
            sets["validation"],
            config,
            params.train,
            windows,
            validation_windowing=validation_windows,
            initial_state=state,
        )
    else:
        distillation = None
        result = train_student(
            sets["train"],
            sets["validation"],
            config,
            params.train,
            windows,
            validation_windowing=validation_windows,
            unlabeled=unlabeled,
            objective=objective,
        )

    test_logits = utterance_logits(result.model, sets["test"].features, windows)
    test = score(sets["test"].labels, test_logits)
    best = result.history.loc[result.history["epoch"] == result.best_epoch].iloc[0]
    out.mkdir(parents=True, exist_ok=True)
    save_student(
        out / "student.safetensors",
        result.model,
        classes,
        corpus=corpus,
        fold=fold,
        configuration=configuration.run_name,
        best_epoch=result.best_epoch,
        test_uar=test.uar,
        test_war=test.war,
    )
    write_parquet(out / "history.parquet", result.history)
    if distillation is not None:
        write_parquet(out / "distillation_history.parquet", distillation)
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
    return {
        "test": test.as_dict(),
        "validation": {"uar": float(best["validation_uar"]), "war": float(best["validation_war"])},
        "best_epoch": int(result.best_epoch),
        "utterances": {role: len(s.labels) for role, s in sets.items()},
        "unlabeled_segments": 0 if unlabeled is None else len(unlabeled),
    }


def _fold_summary(per_fold: dict[int, dict]) -> dict:
    summary: dict = {}
    for split in ("test", "validation"):
        for metric in ("uar", "war"):
            values = np.array([m[split][metric] for m in per_fold.values()])
            summary.setdefault(split, {})[metric] = float(values.mean())
            summary[split][f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return summary


def run_configuration(
    corpus: str, configuration: Configuration, params: Params, inputs: StudentInputs, out: Path, metrics: Path
) -> dict:
    """Every fold of ``params.cv.folds`` into ``out/fold<k>/``; ``metrics``: mean ± std over folds and each fold."""
    folds = params.cv.folds
    workers = min(params.train.fold_workers, len(folds))
    if workers == 1:
        per_fold = {fold: run_fold(corpus, fold, configuration, params, inputs, out / f"fold{fold}") for fold in folds}
    else:  # spawn, not fork: torch's thread pools do not survive a fork
        with ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"), initializer=configure_logging
        ) as pool:
            futures = {
                fold: pool.submit(run_fold, corpus, fold, configuration, params, inputs, out / f"fold{fold}")
                for fold in folds
            }
            per_fold = {fold: future.result() for fold, future in futures.items()}
    for fold, result in per_fold.items():
        log.info("%s %s fold %d: test UAR %.3f", corpus, configuration.run_name, fold, result["test"]["uar"])
    summary = {
        **_fold_summary(per_fold),
        "folds": {str(k): {key: v[key] for key in ("test", "validation", "best_epoch")} for k, v in per_fold.items()},
    }
    # the confusion matrices stay in each fold's predictions; the metrics file keeps the figures
    for fold_summary in summary["folds"].values():
        fold_summary["test"] = {k: v for k, v in fold_summary["test"].items() if k in ("uar", "war")}
    write_json(metrics, summary)
    return summary
