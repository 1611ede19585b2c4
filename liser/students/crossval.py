"""Students per corpus, configuration and fold: trained on the fold's training speakers (and the unlabeled segments
when the configuration distils), chosen on its validation speakers and scored on its unseen test speakers.  A λ
set to ``auto`` is chosen per fold the paper's way (section 3.6): every candidate of ``loss.lambda_grid`` is
trained, and the one with the best validation UAR is kept.  All of a stage's students (folds x candidates) go
through the population engine (:mod:`liser.students.population`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from liser.features import FeatureStore
from liser.files import atomic_directory, write_json, write_parquet
from liser.folds import FoldsError, fold_utterances, labeled_share
from liser.manifests import read_manifest
from liser.metrics import sample_std, score
from liser.models.student import StudentConfig
from liser.params import EvaluateParams, FeatureParams, Params, StudentParams, TrainParams
from liser.runtime import resolve_device
from liser.students.batching import epoch_batches
from liser.students.checkpoints import save_student
from liser.students.configurations import Configuration, lambda_candidates
from liser.students.data import LabeledSet, UnlabeledSet, unlabeled_set
from liser.students.evaluate import utterance_logits, windowing
from liser.students.objective import Objective
from liser.students.population import Member, MemberResult, train_population
from liser.tracking import TrainingCurves
from liser.window_tables import read_softmaxes

__all__ = [
    "StudentSettings",
    "StudentInputs",
    "labeled_set",
    "fold_unlabeled_set",
    "student_config",
    "distilled_batches_per_epoch",
    "run_configuration",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudentSettings:
    """What a student stage reads of ``params.yaml``: exactly the settings its configuration uses."""

    folds: list[int]  # cv.folds
    features: FeatureParams
    student: StudentParams
    train: TrainParams
    evaluate: EvaluateParams
    candidates: list[tuple[float, float]]  # (λ_sd, λ_vd) to train per fold: loss.lambda_sd/_vd/_grid as used
    class_reduction: str = "mean"  # loss.class_reduction, for a configuration with an MAE distillation term
    min_face_fraction: float = 0.0  # windows.min_face_fraction, for a configuration distilling from the video teacher
    share_seed: int = 0  # label_efficiency.seed, for a configuration on a share of the labeled utterances

    @classmethod
    def read(cls, params: Params, configuration: Configuration) -> StudentSettings:
        """The settings ``configuration`` uses, and only those: a change to any other leaves its stage alone."""
        distils_with_mae = (configuration.speech or configuration.video) and configuration.distill_loss == "mae"
        return cls(
            folds=params.cv.folds,
            features=params.features,
            student=params.student,
            train=params.train,
            evaluate=params.evaluate,
            candidates=lambda_candidates(configuration, params.loss),
            class_reduction=params.loss.class_reduction if distils_with_mae else "mean",
            min_face_fraction=params.windows.min_face_fraction if configuration.video else 0.0,
            share_seed=params.label_efficiency.seed if configuration.labeled_percent < 100 else 0,
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


@dataclass(frozen=True)
class StudentInputs:
    """Where a corpus's students find their data."""

    manifest: Path
    folds: Path
    features: Path
    unlabeled_features: Path | None = None  # log-Mels of the unlabeled segments
    speech_softmaxes: Path | None = None  # folder of fold<k>.parquet
    video_softmaxes: Path | None = None  # one window-softmax table


def fold_unlabeled_set(
    inputs: StudentInputs, fold: int, configuration: Configuration, hop_s: float, min_face_fraction: float = 0.0
) -> UnlabeledSet | None:
    """The unlabeled segments with the window softmaxes of the teachers ``configuration`` distils from (for a
    matched-steps control, of both teachers: the set whose size it matches); video windows with a face in fewer
    than ``min_face_fraction`` of their frames give no target."""
    speech_wanted = configuration.speech or configuration.matched_steps
    video_wanted = configuration.video or configuration.matched_steps
    if not (speech_wanted or video_wanted):
        return None
    if inputs.unlabeled_features is None:
        raise ValueError(f"{configuration.name} uses the unlabeled segments: give their features")
    speech = video = None
    if speech_wanted:
        if inputs.speech_softmaxes is None:
            raise ValueError(f"{configuration.name} needs the speech teacher's window softmaxes")
        speech = read_softmaxes(inputs.speech_softmaxes / f"fold{fold}.parquet")
    if video_wanted:
        if inputs.video_softmaxes is None:
            raise ValueError(f"{configuration.name} needs the video teacher's window softmaxes")
        video = read_softmaxes(inputs.video_softmaxes)
    return unlabeled_set(FeatureStore(inputs.unlabeled_features), hop_s, speech, video, min_face_fraction)


def student_config(classes: tuple[str, ...], student: StudentParams, features: FeatureParams) -> StudentConfig:
    """Table 1's student for ``classes`` (K_S) with the sizes of ``student`` over ``features.n_mels`` bands."""
    return StudentConfig(
        speech_classes=len(classes),
        video_classes=student.video_classes,
        n_mels=features.n_mels,
        conv_channels=student.conv_channels,
        lstm_hidden=student.lstm_hidden,
        distill_hidden=student.distill_hidden,
    )


def distilled_batches_per_epoch(n_labeled: int, n_unlabeled: int, train: TrainParams) -> int:
    """Batches in an epoch of a run that distils over ``n_unlabeled`` segments, under ``train.batch_composition``."""
    return epoch_batches(n_labeled, n_unlabeled, train.batch_size, train.batch_composition, train.labeled_per_batch)


@dataclass
class _Fold:
    """One fold's labeled sets and unlabeled set."""

    fold: int
    sets: dict[str, LabeledSet]
    unlabeled: UnlabeledSet | None  # None when the configuration does not distil
    batches_per_epoch: int | None = None  # a matched-steps control: the distilled run's batches per epoch


def _load_fold(
    name: str,
    fold: int,
    configuration: Configuration,
    settings: StudentSettings,
    inputs: StudentInputs,
    utterances: pd.DataFrame,
    speaker_roles: pd.DataFrame,
    store: FeatureStore,
) -> _Fold:
    if fold not in set(speaker_roles["fold"]):
        raise FoldsError(f"{inputs.folds} has no fold {fold} (cv.folds = {settings.folds}): dvc repro folds")
    by_role = {role: fold_utterances(utterances, speaker_roles, fold, role) for role in ("train", "validation", "test")}
    by_role["train"] = labeled_share(by_role["train"], configuration.labeled_percent, settings.share_seed + fold)
    sets = {role: labeled_set(rows, store) for role, rows in by_role.items()}
    unlabeled = fold_unlabeled_set(inputs, fold, configuration, settings.features.hop_s, settings.min_face_fraction)
    log.info(
        "%s fold %d: %s utterances, %s unlabeled segments",
        name,
        fold,
        {r: len(s.labels) for r, s in sets.items()},
        0 if unlabeled is None else len(unlabeled),
    )
    if configuration.matched_steps:
        batches = distilled_batches_per_epoch(len(sets["train"].labels), len(unlabeled), settings.train)
        log.info("%s fold %d: %d batches per epoch, as vid-sp-dstl", name, fold, batches)
        return _Fold(fold, sets, None, batches)
    return _Fold(fold, sets, unlabeled)


def _train(members: list[Member], config: StudentConfig, settings: StudentSettings, name: str) -> list[MemberResult]:
    """The members in populations of ``train.population`` (auto: all at once on a GPU, one by one on a CPU)."""
    train = settings.train
    size = train.population
    if size == "auto":
        size = len(members) if resolve_device(train.device).type == "cuda" else 1
    windows = windowing(settings.features, settings.evaluate)
    validation_windows = windowing(settings.features, settings.evaluate, settings.evaluate.validation_stride_s)
    results = []
    for start in range(0, len(members), size):
        chunk = members[start : start + size]
        label = name if len(chunk) == len(members) else f"{name} {start + 1}-{start + len(chunk)}/{len(members)}"
        results += train_population(chunk, config, train, windows, validation_windows, label)
    return results


def _scored(result: MemberResult, fold: _Fold, settings: StudentSettings) -> dict:
    test_logits = utterance_logits(
        result.model, fold.sets["test"].features, windowing(settings.features, settings.evaluate)
    )
    best = result.history.loc[result.history["epoch"] == result.best_epoch].iloc[0]
    return {
        "test_logits": test_logits,
        "test": score(fold.sets["test"].labels, test_logits),
        "validation": {"uar": float(best["validation_uar"]), "war": float(best["validation_war"])},
    }


def _write_fold(
    out: Path,
    corpus: str,
    configuration: Configuration,
    fold: _Fold,
    result: MemberResult,
    scored: dict,
    distillation: pd.DataFrame | None,
    classes: tuple[str, ...],
    chosen: tuple[float, float],
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    test, test_logits = scored["test"], scored["test_logits"]
    save_student(
        out / "student.safetensors",
        result.model,
        list(classes),
        corpus=corpus,
        fold=fold.fold,
        configuration=configuration.run_name,
        best_epoch=result.best_epoch,
        test_uar=test.uar,
        test_war=test.war,
        lambda_sd=chosen[0],
        lambda_vd=chosen[1],
    )
    write_parquet(out / "history.parquet", result.history)
    if distillation is not None:
        write_parquet(out / "distillation_history.parquet", distillation)
    labels = fold.sets["test"].labels
    predictions = pd.DataFrame(
        {
            "utterance": fold.sets["test"].utterances,
            "label": labels,
            "predicted": test_logits.argmax(axis=1),
            "actual_emotion": [classes[i] for i in labels],
            "predicted_emotion": [classes[i] for i in test_logits.argmax(axis=1)],
        }
    )
    for k, name in enumerate(classes):
        predictions[f"logit_{name}"] = test_logits[:, k]
    write_parquet(out / "predictions.parquet", predictions)


def _fold_summary(per_fold: dict[int, dict]) -> dict:
    """Mean and sample standard deviation (ddof 1) over folds, and the mean optimiser steps of a fold's student."""
    summary: dict = {}
    for split in ("test", "validation"):
        for metric in ("uar", "war"):
            values = np.array([m[split][metric] for m in per_fold.values()])
            summary.setdefault(split, {})[metric] = float(values.mean())
            summary[split][f"{metric}_std"] = sample_std(values)
    summary["steps"] = float(np.mean([m["steps"] for m in per_fold.values()]))
    return summary


def run_configuration(
    corpus: str,
    configuration: Configuration,
    settings: StudentSettings,
    inputs: StudentInputs,
    out: Path,
    metrics: Path,
    live: Path | None = None,
) -> dict:
    """Every fold of ``settings.folds`` (times every λ candidate) trained as populations; per fold the candidate
    with the best validation UAR (never test) goes to ``out/fold<k>/``.  ``metrics``: mean ± std over folds, and per
    fold its scores, chosen λ, optimiser steps and every candidate's validation and test UAR.  ``out`` appears
    whole when every fold is done.  ``live``: the DVCLive folder of the kept students' curves
    (:mod:`liser.tracking`), logged from their histories once they are chosen."""
    manifest = read_manifest(inputs.manifest)
    speaker_roles = pd.read_csv(inputs.folds, dtype={"speaker": str})
    store = FeatureStore(inputs.features)
    name = f"{corpus} {configuration.run_name}"
    folds = [
        _load_fold(name, k, configuration, settings, inputs, manifest.utterances, speaker_roles, store)
        for k in settings.folds
    ]
    config = student_config(manifest.classes, settings.student, settings.features)
    candidates = settings.candidates
    pairs = [(fold, candidate) for fold in folds for candidate in candidates]
    objectives = [configuration.objective(*candidate, settings.class_reduction) for _, candidate in pairs]
    distillations: list[pd.DataFrame | None] = [None] * len(pairs)
    initial: list[dict | None] = [None] * len(pairs)
    seed = settings.train.seed
    if configuration.two_stage:
        first = [
            Member(f"fold{f.fold} {_label(c)} distillation", None, None, o, f.unlabeled, seed=seed)
            for (f, c), o in zip(pairs, objectives)
        ]
        stage_one = _train(first, config, settings, f"{name} distillation")
        initial = [r.model.state_dict() for r in stage_one]
        distillations = [r.history for r in stage_one]
    members = [
        Member(
            f"fold{f.fold} {_label(c)}",
            f.sets["train"],
            f.sets["validation"],
            Objective() if configuration.two_stage else o,
            None if configuration.two_stage else f.unlabeled,
            seed=seed,
            initial_state=state,
            batches_per_epoch=f.batches_per_epoch,
        )
        for (f, c), o, state in zip(pairs, objectives, initial)
    ]
    results = _train(members, config, settings, name)
    scored = [_scored(r, f, settings) for r, (f, _) in zip(results, pairs)]
    per_fold = {}
    curves = TrainingCurves(live)
    with atomic_directory(out) as staging:
        for fold in folds:
            rows = [i for i, (f, _) in enumerate(pairs) if f is fold]
            chosen = max(rows, key=lambda i: (scored[i]["validation"]["uar"], -i))  # ties: the earlier candidate
            curves.log_history(f"fold{fold.fold}", results[chosen].history)
            _write_fold(
                staging / f"fold{fold.fold}",
                corpus,
                configuration,
                fold,
                results[chosen],
                scored[chosen],
                distillations[chosen],
                manifest.classes,
                pairs[chosen][1],
            )
            lambda_sd, lambda_vd = pairs[chosen][1]
            per_fold[fold.fold] = {
                "test": scored[chosen]["test"].as_dict(),
                "validation": scored[chosen]["validation"],
                "best_epoch": int(results[chosen].best_epoch),
                "steps": int(results[chosen].steps),
                "lambda_sd": lambda_sd,
                "lambda_vd": lambda_vd,
            }
            if len(candidates) > 1:
                per_fold[fold.fold]["candidates"] = [
                    {
                        "lambda_sd": pairs[i][1][0],
                        "lambda_vd": pairs[i][1][1],
                        "validation_uar": scored[i]["validation"]["uar"],
                        "test_uar": scored[i]["test"].uar,
                    }
                    for i in rows
                ]
            log.info(
                "%s fold %d: test UAR %.3f (%s)", name, fold.fold, scored[chosen]["test"].uar, _label(pairs[chosen][1])
            )
    curves.finish()
    summary = {**_fold_summary(per_fold), "folds": {str(k): v for k, v in per_fold.items()}}
    write_json(metrics, summary)
    return summary


def _label(candidate: tuple[float, float]) -> str:
    return f"lambda_sd={candidate[0]:g} lambda_vd={candidate[1]:g}"
