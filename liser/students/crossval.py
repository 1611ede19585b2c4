"""Students per corpus, configuration and fold: trained on the fold's training speakers (and the unlabeled segments
when the configuration distils), chosen on its validation speakers and scored on its unseen test speakers.

Per fold, every seed of ``train.seeds`` trains every candidate of the configuration
(:func:`liser.students.configurations.candidates`): the λ values of ``loss.lambda_grid`` for a λ set to ``auto``
(section 3.6), or further draws of the seed for a configuration without teachers under
``train.selection_budget: matched``.  Per fold and seed the candidate with the best validation UAR is kept (never
test), and a fold's score is the mean over its seeds: the folds are the units every comparison is made over
(:mod:`liser.results.statistics`).  All of a stage's students (folds x seeds x candidates) go through the
population engine (:mod:`liser.students.population`).

A stage writes two files of figures: the few a person compares across experiments (``metrics``, declared as DVC
metrics: test UAR and WAR over folds, pooled UAR, the candidates' mean test UAR, steps, the λ chosen most often),
and every fold, seed and candidate beside its students (``<out>/results.json``), which the report reads."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from liser.features import FeatureStore
from liser.files import atomic_directory, write_json, write_parquet
from liser.folds import FoldsError, fold_utterances, labeled_share
from liser.manifests import read_manifest
from liser.metrics import Scores, sample_std, score
from liser.models.student import StudentConfig
from liser.params import EvaluateParams, FeatureParams, Params, StudentParams, TrainParams
from liser.runtime import resolve_device
from liser.students.batching import epoch_batches
from liser.students.checkpoints import save_student
from liser.students.configurations import (
    RESULTS_FILE,
    Candidate,
    Configuration,
    candidates,
    configuration,
    draw_seed,
)
from liser.students.data import LabeledSet, UnlabeledSet, unlabeled_set
from liser.students.evaluate import utterance_logits, windowing
from liser.students.objective import Objective
from liser.students.population import Member, MemberResult, train_population
from liser.tracking import TrainingCurves

__all__ = [
    "StudentSettings",
    "StudentInputs",
    "labeled_set",
    "fold_unlabeled_set",
    "student_config",
    "distilled_batches_per_epoch",
    "run_configuration",
    "run_shares",
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
    candidates: list[Candidate]  # to train per fold and seed: loss.lambda_*, train.selection_budget as used
    class_reduction: str = "mean"  # loss.class_reduction, for a configuration with an MAE distillation term
    min_face_fraction: float = 0.0  # windows.min_face_fraction, for a configuration distilling from the video teacher
    share_seed: int = 0  # label_efficiency.seed, for a configuration on a share of the labeled utterances

    @classmethod
    def read(cls, params: Params, configuration: Configuration) -> StudentSettings:
        """The settings ``configuration`` uses, and only those: a change to any other leaves its stage alone."""
        # two-stage: the MAE's class reduction only scales its first stage's one loss term, which AdamW ignores
        weighs_mae = configuration.distils and configuration.distill_loss == "mae" and not configuration.two_stage
        return cls(
            folds=params.cv.folds,
            features=params.features,
            student=params.student,
            train=params.train,
            evaluate=params.evaluate,
            candidates=candidates(configuration, params.loss, params.train.selection_budget),
            class_reduction=params.loss.class_reduction if weighs_mae else "mean",
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
        speech = inputs.speech_softmaxes / f"fold{fold}.parquet"  # read a part at a time by unlabeled_set
    if video_wanted:
        if inputs.video_softmaxes is None:
            raise ValueError(f"{configuration.name} needs the video teacher's window softmaxes")
        video = inputs.video_softmaxes
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


@dataclass(frozen=True)
class _Unit:
    """One student of a stage: a fold, a seed and one of the configuration's candidates."""

    fold: _Fold
    seed: int
    candidate: int  # index into StudentSettings.candidates


@dataclass
class _Trained:
    result: MemberResult
    test_logits: np.ndarray
    test: Scores
    validation: dict[str, float]
    distillation: MemberResult | None  # two-stage: its first stage


def _scored(result: MemberResult, fold: _Fold, settings: StudentSettings, first: MemberResult | None) -> _Trained:
    test_logits = utterance_logits(
        result.model, fold.sets["test"].features, windowing(settings.features, settings.evaluate)
    )
    best = result.history.loc[result.history["epoch"] == result.best_epoch].iloc[0]
    validation = {"uar": float(best["validation_uar"]), "war": float(best["validation_war"])}
    return _Trained(result, test_logits, score(fold.sets["test"].labels, test_logits), validation, first)


def _write_student(
    out: Path,
    corpus: str,
    configuration: Configuration,
    unit: _Unit,
    candidate: Candidate,
    trained: _Trained,
    classes: tuple[str, ...],
) -> None:
    """The kept student of one fold and seed, its training history and its test predictions."""
    out.mkdir(parents=True, exist_ok=True)
    save_student(
        out / "student.safetensors",
        trained.result.model,
        list(classes),
        corpus=corpus,
        fold=unit.fold.fold,
        seed=unit.seed,
        configuration=configuration.run_name,
        best_epoch=trained.result.best_epoch,
        test_uar=trained.test.uar,
        test_war=trained.test.war,
        lambda_sd=candidate.lambda_sd,
        lambda_vd=candidate.lambda_vd,
    )
    write_parquet(out / "history.parquet", trained.result.history)
    if trained.distillation is not None:
        write_parquet(out / "distillation_history.parquet", trained.distillation.history)
    labels, predicted = unit.fold.sets["test"].labels, trained.test_logits.argmax(axis=1)
    predictions = pd.DataFrame(
        {
            "utterance": unit.fold.sets["test"].utterances,
            "label": labels,
            "predicted": predicted,
            "actual_emotion": [classes[i] for i in labels],
            "predicted_emotion": [classes[i] for i in predicted],
        }
    )
    for k, name in enumerate(classes):
        predictions[f"logit_{name}"] = trained.test_logits[:, k]
    write_parquet(out / "predictions.parquet", predictions)


def _steps(trained: _Trained) -> int:
    """Optimiser steps of a student, both stages of two-stage training counted."""
    return trained.result.steps + (0 if trained.distillation is None else trained.distillation.steps)


def _seed_record(rows: list[int], kept: int, trained: list[_Trained], candidates: list[Candidate]) -> dict:
    """One fold and seed (``rows``: its units, in candidate order): the kept candidate, its scores and steps, and
    every candidate's validation and test scores."""
    chosen, candidate = trained[kept], candidates[rows.index(kept)]
    record = {
        "chosen": rows.index(kept),
        "lambda_sd": candidate.lambda_sd,
        "lambda_vd": candidate.lambda_vd,
        "best_epoch": int(chosen.result.best_epoch),
        "steps": _steps(chosen),
        "test": chosen.test.as_dict(),
        "validation": chosen.validation,
        "candidates": [
            {
                "validation_uar": trained[i].validation["uar"],
                "test_uar": trained[i].test.uar,
                "test_war": trained[i].test.war,
            }
            for i in rows
        ],
    }
    if chosen.distillation is not None:
        record["distillation_steps"] = chosen.distillation.steps
    return record


def _mean(values) -> float:
    return float(np.mean(list(values)))


def _fold_record(fold: _Fold, by_seed: dict[int, dict]) -> dict:
    """A fold's scores: means over its seeds of the kept students'."""
    seeds = list(by_seed.values())
    return {
        "utterances": {role: len(fold.sets[role].labels) for role in ("train", "validation", "test")},
        "test": {m: _mean(s["test"][m] for s in seeds) for m in ("uar", "war")},
        "validation": {m: _mean(s["validation"][m] for s in seeds) for m in ("uar", "war")},
        "candidates_test_uar": _mean(c["test_uar"] for s in seeds for c in s["candidates"]),
        "steps": _mean(s["steps"] for s in seeds),
        "seeds": {str(seed): record for seed, record in by_seed.items()},
    }


def _most_chosen(values: list[float]) -> float:
    """The value chosen most often (ties: the smaller)."""
    counts = Counter(values)
    return min(counts, key=lambda value: (-counts[value], value))


def _pooled(parts_by_seed: dict[int, list[tuple[np.ndarray, np.ndarray]]]) -> dict[str, float]:
    """UAR and WAR over the test predictions of every fold pooled, per seed; the mean over seeds."""
    scores = []
    for parts in parts_by_seed.values():
        labels = np.concatenate([labels for labels, _ in parts])
        logits = np.concatenate([logits for _, logits in parts])
        scores.append(score(labels, logits))
    return {"uar": _mean(s.uar for s in scores), "war": _mean(s.war for s in scores)}


def stage_metrics(configuration: Configuration, per_fold: dict[int, dict], pooled: dict, n_candidates: int) -> dict:
    """The figures a person compares across experiments (the stage's DVC metrics): test UAR and WAR as mean and
    sample std (ddof 1) of the per-fold scores, UAR over the pooled test predictions, validation UAR, the
    candidates' mean test UAR beside the kept one's, optimiser steps, and the λ chosen most often."""
    folds = list(per_fold.values())
    test = {}
    for metric in ("uar", "war"):
        values = [f["test"][metric] for f in folds]
        test[metric], test[f"{metric}_std"] = _mean(values), sample_std(values)
    test["pooled_uar"] = pooled["uar"]
    figures = {
        "test": test,
        "validation": {"uar": _mean(f["validation"]["uar"] for f in folds)},
        "candidates": {"count": n_candidates, "test_uar": _mean(f["candidates_test_uar"] for f in folds)},
        "steps": _mean(f["steps"] for f in folds),
    }
    if configuration.distils and not configuration.two_stage:
        chosen = [s for f in folds for s in f["seeds"].values()]
        for key, uses in (("lambda_sd", configuration.speech), ("lambda_vd", configuration.video)):
            if uses:
                figures[key] = _most_chosen([s[key] for s in chosen])
    return figures


def run_configuration(
    corpus: str,
    configuration: Configuration,
    settings: StudentSettings,
    inputs: StudentInputs,
    out: Path,
    metrics: Path,
    live: Path | None = None,
) -> dict:
    """Every fold of ``settings.folds`` times every seed of ``train.seeds`` times every candidate, trained as
    populations; per fold and seed the candidate with the best validation UAR (never test) is kept: the first seed's
    in ``out/fold<k>/``, a further seed's in ``out/fold<k>/seed<s>/``.  ``metrics`` gets :func:`stage_metrics`,
    ``out/results.json`` every fold, seed and candidate.  ``out`` appears whole when every fold is done.  ``live``:
    the DVCLive folder of the kept students' curves (:mod:`liser.tracking`), logged once they are chosen.
    Returns the figures of ``metrics``."""
    curves = TrainingCurves(live)
    figures = _run(corpus, configuration, settings, inputs, out, curves, "")
    curves.finish()
    write_json(metrics, figures)
    return figures


def _run(
    corpus: str,
    configuration: Configuration,
    settings: StudentSettings,
    inputs: StudentInputs,
    out: Path,
    curves: TrainingCurves,
    curve_prefix: str,
) -> dict:
    """:func:`run_configuration`'s work; the kept students' curves go to ``curves`` under ``curve_prefix``."""
    manifest = read_manifest(inputs.manifest)
    speaker_roles = pd.read_csv(inputs.folds, dtype={"speaker": str})
    store = FeatureStore(inputs.features)
    name = f"{corpus} {configuration.run_name}"
    folds = [
        _load_fold(name, k, configuration, settings, inputs, manifest.utterances, speaker_roles, store)
        for k in settings.folds
    ]
    config = student_config(manifest.classes, settings.student, settings.features)
    candidates, seeds = settings.candidates, settings.train.seeds
    objectives = [configuration.objective(c.lambda_sd, c.lambda_vd, settings.class_reduction) for c in candidates]
    units = [_Unit(fold, seed, i) for fold in folds for seed in seeds for i in range(len(candidates))]
    first: dict[tuple[int, int], MemberResult] = {}
    if configuration.two_stage:  # stage 1 once per fold and seed: its one candidate
        starts = [(fold, seed) for fold in folds for seed in seeds]
        distilling = [
            Member(f"fold{f.fold} seed{s} distillation", None, None, objectives[0], f.unlabeled, seed=s)
            for f, s in starts
        ]
        results = _train(distilling, config, settings, f"{name} distillation")
        first = {(f.fold, s): r for (f, s), r in zip(starts, results)}
    members = [
        Member(
            f"fold{u.fold.fold} seed{u.seed} {candidates[u.candidate].label}",
            u.fold.sets["train"],
            u.fold.sets["validation"],
            Objective() if configuration.two_stage else objectives[u.candidate],
            None if configuration.two_stage else u.fold.unlabeled,
            seed=draw_seed(u.seed, candidates[u.candidate].draw),
            initial_state=first[(u.fold.fold, u.seed)].model.state_dict() if configuration.two_stage else None,
            batches_per_epoch=u.fold.batches_per_epoch,
        )
        for u in units
    ]
    results = _train(members, config, settings, name)
    trained = [_scored(r, u.fold, settings, first.get((u.fold.fold, u.seed))) for r, u in zip(results, units)]
    per_fold: dict[int, dict] = {}
    pooled_parts: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {seed: [] for seed in seeds}
    with atomic_directory(out) as staging:
        for fold in folds:
            by_seed = {}
            for seed in seeds:
                rows = [i for i, u in enumerate(units) if u.fold is fold and u.seed == seed]
                kept = max(rows, key=lambda i: (trained[i].validation["uar"], -i))  # ties: the earlier candidate
                unit, candidate = units[kept], candidates[units[kept].candidate]
                folder = staging / f"fold{fold.fold}"
                if seed != seeds[0]:
                    folder = folder / f"seed{seed}"
                _write_student(folder, corpus, configuration, unit, candidate, trained[kept], manifest.classes)
                curves.log_history(
                    curve_prefix + (f"fold{fold.fold}" if len(seeds) == 1 else f"fold{fold.fold}/seed{seed}"),
                    trained[kept].result.history,
                )
                by_seed[seed] = _seed_record(rows, kept, trained, candidates)
                pooled_parts[seed].append((fold.sets["test"].labels, trained[kept].test_logits))
                log.info(
                    "%s fold %d seed %d: test UAR %.3f (%s)",
                    name,
                    fold.fold,
                    seed,
                    trained[kept].test.uar,
                    candidate.label,
                )
            per_fold[fold.fold] = _fold_record(fold, by_seed)
        pooled = _pooled(pooled_parts)
        figures = stage_metrics(configuration, per_fold, pooled, len(candidates))
        write_json(
            staging / RESULTS_FILE,
            {
                "corpus": corpus,
                "configuration": configuration.run_name,
                "seeds": list(seeds),
                "trained_candidates": [dataclasses.asdict(c) for c in candidates],
                **figures,
                "pooled": pooled,
                "folds": {str(k): v for k, v in per_fold.items()},
            },
        )
    return figures


def run_shares(
    corpus: str,
    name: str,
    shares: dict[int, StudentSettings],
    inputs: StudentInputs,
    out: Path,
    metrics: Path,
    live: Path | None = None,
) -> dict:
    """Figure 2: configuration ``name`` on each share of the labeled training utterances (``shares``: percent ->
    the settings it reads), one after another, each as :func:`run_configuration` into ``out/<percent>/``, with the
    speech teachers' softmaxes of its share, ``inputs.speech_softmaxes/<percent>/``; its curves are run
    ``<percent>/fold<k>`` of ``live``.  ``metrics`` gets every share's figures under its percent.  One stage for
    every share keeps a no-op `dvc repro` fast: DVC takes time to check each stage, run or not."""
    curves = TrainingCurves(live)
    figures = {}
    for percent, settings in shares.items():
        share_inputs = inputs
        if inputs.speech_softmaxes is not None:
            share_inputs = dataclasses.replace(inputs, speech_softmaxes=inputs.speech_softmaxes / str(percent))
        run = configuration(name, percent)
        figures[str(percent)] = _run(corpus, run, settings, share_inputs, out / str(percent), curves, f"{percent}/")
    curves.finish()
    write_json(metrics, figures)
    return figures
