"""A student stage end to end on a tiny corpus: seeds, candidates chosen on validation, the equal selection budget,
two-stage training counted whole, and the two files of figures (the few a person compares, and every detail)."""

import dataclasses
import functools

import numpy as np
import pandas as pd
import pytest
import torch

import liser.students.crossval as crossval
import liser.students.population as population
from liser.files import read_json, write_npy, write_parquet
from liser.manifests import Manifest, write_manifest
from liser.metrics import sample_std, uar
from liser.models.student import Student
from liser.params import load_params
from liser.students.batching import epoch_batches
from liser.students.configurations import CONFIGURATIONS, Candidate, candidates, configuration, draw_seed
from liser.students.crossval import StudentInputs, StudentSettings, run_configuration
from liser.students.objective import Objective
from liser.students.population import Member, StackedAdamW, train_population
from liser.window_tables import softmax_frame, write_softmaxes
from tests.helpers import REPO
from tests.student_data import CONFIG, WINDOWING, band_set, teacher_knows, train_one, train_params, with_video

CLASSES = ("low", "high")
# fold k tests on two speakers, validates on the next two, trains on the other two
SPEAKERS = ["s0", "s1", "s2", "s3", "s4", "s5"]
ROLES = {
    0: ("test", "test", "validation", "validation", "train", "train"),
    1: ("train", "train", "test", "test", "validation", "validation"),
}


def write_store(folder, names, features):
    frames = [f.shape[1] for f in features]
    # rows of frames, as the features stage writes its store (C order)
    write_npy(folder / "logmel.npy", np.ascontiguousarray(np.concatenate([f.T for f in features]), np.float32))
    offsets = np.concatenate([[0], np.cumsum(frames)[:-1]])
    write_parquet(folder / "index.parquet", pd.DataFrame({"utterance": names, "offset": offsets, "frames": frames}))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """6 speakers with 4 utterances each (2 of each class), 2 folds, 10 unlabeled segments with speech softmaxes."""
    root = tmp_path_factory.mktemp("corpus")
    labeled = band_set(24, 1)
    utterances = pd.DataFrame(
        {
            "utterance": list(labeled.utterances),
            "speaker": [SPEAKERS[i // 4] for i in range(24)],
            "label": labeled.labels,
            "emotion": [CLASSES[y] for y in labeled.labels],
        }
    )
    write_manifest(root / "manifest.parquet", Manifest(utterances, CLASSES))
    folds = pd.DataFrame(
        [{"fold": k, "speaker": s, "role": r} for k, roles in ROLES.items() for s, r in zip(SPEAKERS, roles)]
    )
    folds.to_csv(root / "folds.csv", index=False)
    write_store(root / "features", labeled.utterances, labeled.features)
    unlabeled = teacher_knows(band_set(10, 5))
    write_store(root / "unlabeled", unlabeled.segments, unlabeled.features)
    windows = pd.DataFrame(
        [
            {"segment": s, "window": w, "start_s": 0.533 * w, "end_s": 0.533 * (w + 1)}
            for s in unlabeled.segments
            for w in range(3)
        ]
    )
    probabilities = np.concatenate(unlabeled.speech)
    for k in ROLES:
        frame = softmax_frame(windows, probabilities, CLASSES)
        write_softmaxes(root / "speech" / f"fold{k}.parquet", frame, CLASSES, "a stand-in teacher")
    return StudentInputs(
        root / "manifest.parquet",
        root / "folds.csv",
        root / "features",
        unlabeled_features=root / "unlabeled",
        speech_softmaxes=root / "speech",
    )


def settings_for(name: str, seeds=(0, 1), budget="matched", grid=(0.5, 5.0), lambdas="auto") -> StudentSettings:
    params = load_params(REPO / "params.yaml")
    train = train_params(epochs=1, batch_size=4, seeds=list(seeds), selection_budget=budget)
    loss = params.loss.model_copy(update={"lambda_sd": lambdas, "lambda_vd": lambdas, "lambda_grid": list(grid)})
    params = params.model_copy(
        update={"train": train, "loss": loss, "cv": params.cv.model_copy(update={"folds": [0, 1]})}
    )
    return StudentSettings.read(params, configuration(name))


def run(corpus, tmp_path, name, **options):
    out, metrics = tmp_path / name, tmp_path / f"{name}.json"
    figures = run_configuration("tiny", configuration(name), settings_for(name, **options), corpus, out, metrics)
    return figures, read_json(out / "results.json"), out, metrics


def test_a_configuration_without_teachers_gets_as_many_candidates_as_the_largest_lambda_grid(corpus, tmp_path):
    figures, results, out, metrics = run(corpus, tmp_path, "no-dstl")
    # vid-sp-dstl with both lambdas on auto over a grid of 2 trains 2 x 2 = 4 candidates: so does no-dstl, as draws
    assert results["trained_candidates"] == [dataclasses.asdict(Candidate(draw=d)) for d in range(4)]
    assert figures["candidates"]["count"] == 4 and read_json(metrics) == figures
    for k in ("0", "1"):
        fold = results["folds"][k]
        assert fold["utterances"] == {"train": 8, "validation": 8, "test": 8}
        for seed in ("0", "1"):
            record = fold["seeds"][seed]
            scored = record["candidates"]
            assert len(scored) == 4
            best = max(range(4), key=lambda i: (scored[i]["validation_uar"], -i))  # on validation, ties earlier
            assert record["chosen"] == best and record["test"]["uar"] == scored[best]["test_uar"]
        # a fold's score is the mean over its seeds
        assert fold["test"]["uar"] == pytest.approx(np.mean([fold["seeds"][s]["test"]["uar"] for s in ("0", "1")]))
        every = [c["test_uar"] for s in ("0", "1") for c in fold["seeds"][s]["candidates"]]
        assert fold["candidates_test_uar"] == pytest.approx(np.mean(every))
    per_fold = [results["folds"][k]["test"]["uar"] for k in ("0", "1")]
    assert figures["test"]["uar"] == pytest.approx(np.mean(per_fold))
    assert figures["test"]["uar_std"] == pytest.approx(sample_std(per_fold))
    assert "folds" not in figures and "lambda_sd" not in figures  # the detail stays out of the DVC metrics
    # the first seed's students in fold<k>/, the second's in fold<k>/seed1/; the pooled UAR from their predictions
    pooled = []
    for seed_folder in ("", "seed1"):
        predictions = pd.concat(
            [pd.read_parquet(out / f"fold{k}" / seed_folder / "predictions.parquet") for k in (0, 1)]
        )
        pooled.append(uar(predictions["label"], predictions["predicted"], 2))
        assert (out / "fold1" / seed_folder / "student.safetensors").is_file()
    assert figures["test"]["pooled_uar"] == pytest.approx(np.mean(pooled))
    assert not (out / "fold0" / "seed0").exists()


def test_without_a_budget_and_with_fixed_lambdas_one_candidate(corpus, tmp_path):
    no_budget = settings_for("no-dstl", budget="none")
    assert no_budget.candidates == [Candidate()]
    fixed = settings_for("no-dstl", lambdas=1.0)  # the demo: every distilled configuration trains one candidate
    assert fixed.candidates == [Candidate()]
    figures, results, _, _ = run(corpus, tmp_path, "no-dstl", seeds=(3,), budget="none")
    assert results["seeds"] == [3] and figures["candidates"] == {"count": 1, "test_uar": figures["test"]["uar"]}


def test_a_distilled_configuration_reports_the_lambda_it_chose_most(corpus, tmp_path):
    figures, results, _, _ = run(corpus, tmp_path, "sp-dstl", seeds=(0,))
    chosen = [results["folds"][k]["seeds"]["0"]["lambda_sd"] for k in ("0", "1")]
    assert figures["lambda_sd"] == (chosen[0] if chosen[0] == chosen[1] else min(chosen))
    assert "lambda_vd" not in figures and figures["candidates"]["count"] == 2


def test_two_stage_distils_once_per_fold_and_seed_and_counts_both_stages(corpus, tmp_path, monkeypatch):
    trained = []
    original = crossval._train

    def recording(members, *args):
        trained.append([m.name for m in members])
        return original(members, *args)

    monkeypatch.setattr(crossval, "_train", recording)
    figures, results, out, _ = run(corpus, tmp_path, "two-stage-sp")
    assert trained[0] == [f"fold{k} seed{s} distillation" for k in (0, 1) for s in (0, 1)]  # not once per lambda
    assert len(trained[1]) == 4  # stage 2: one candidate per fold and seed
    assert results["trained_candidates"] == [dataclasses.asdict(Candidate(lambda_sd=1.0))]
    distilling = epoch_batches(0, 10, 4)  # stage 1: the 10 unlabeled segments, 4 a batch, one epoch
    fine_tuning = epoch_batches(8, 0, 4)  # stage 2: the 8 labeled training utterances
    for fold in results["folds"].values():
        for record in fold["seeds"].values():
            assert record["distillation_steps"] == distilling and record["steps"] == distilling + fine_tuning
    assert figures["steps"] == distilling + fine_tuning
    assert "lambda_sd" not in figures  # no lambda is chosen
    assert (out / "fold0" / "distillation_history.parquet").is_file()


def test_two_stage_reads_neither_lambda_nor_the_class_reduction():
    params = load_params(REPO / "params.yaml")
    summed = params.model_copy(
        update={"loss": params.loss.model_copy(update={"lambda_sd": "auto", "class_reduction": "sum"})}
    )
    for name in ("two-stage-sp", "two-stage-vid"):
        assert StudentSettings.read(summed, CONFIGURATIONS[name]) == StudentSettings.read(params, CONFIGURATIONS[name])


def test_draws_of_a_seed_start_apart_and_draw_0_is_the_seed():
    assert draw_seed(7, 0) == 7
    draws = {draw_seed(seed, draw) for seed in (0, 1, 2) for draw in range(25)}
    assert len(draws) == 75
    assert draw_seed(1, 3) == draw_seed(1, 3)  # the same every run


def test_the_matched_budget_follows_the_lambda_grid():
    loss = load_params(REPO / "params.yaml").loss.model_copy(
        update={"lambda_sd": "auto", "lambda_vd": "auto", "lambda_grid": [0.1, 0.5, 1, 5, 10]}
    )
    assert len(candidates(CONFIGURATIONS["no-dstl"], loss, "matched")) == 25  # as vid-sp-dstl's 5 x 5
    assert len(candidates(CONFIGURATIONS["no-dstl-matched-steps"], loss, "matched")) == 25
    assert len(candidates(CONFIGURATIONS["vid-dstl"], loss, "matched")) == 5  # its own grid
    one_teacher = loss.model_copy(update={"lambda_sd": 1.0})
    assert len(candidates(CONFIGURATIONS["no-dstl"], one_teacher, "matched")) == 5
    assert len(candidates(CONFIGURATIONS["no-dstl"], loss, "none")) == 1


# --- two-stage: the first stage's lambda only scales its one loss term ---------------------------------------------


def stage_one(objectives, monkeypatch=None, eps=None):
    unlabeled = with_video(teacher_knows(band_set(20, 3)), 4, face_share=0.8)
    if eps is not None:
        monkeypatch.setattr(population, "StackedAdamW", functools.partial(StackedAdamW, eps=eps))
    members = [Member(f"{o}", None, None, o, unlabeled, seed=0) for o in objectives]
    return [r.model.state_dict() for r in train_population(members, CONFIG, train_params(epochs=3), WINDOWING)]


@pytest.mark.parametrize("teacher", ["lambda_sd", "lambda_vd"])
def test_without_adams_epsilon_the_first_stage_does_not_depend_on_lambda(teacher, monkeypatch):
    """AdamW moves each weight by m / (sqrt(v) + eps): scaling the loss by c scales m by c and sqrt(v) by c, so only
    eps sees lambda.  Scaled by powers of two every gradient is exactly c times as large, and with eps too small
    to matter the weights are bit for bit the same."""
    states = stage_one([Objective(**{teacher: value}) for value in (0.125, 1.0, 16.0)], monkeypatch, eps=1e-30)
    for state in states[1:]:
        for name, value in state.items():
            assert torch.equal(value, states[0][name]), name


def test_with_adams_epsilon_the_grids_extremes_give_nearly_the_same_first_stage():
    """With eps = 1e-8 lambda reaches the weights through the elements whose gradient is at eps's scale (chiefly the
    convolution biases that BatchNorm cancels), which then nudge the rounding of everything else.  Measured here
    (2-core AMD EPYC, 2026-12-05): lambda 0.1 and 10 end 10.8 % (speech) and 6.3 % (video) of the way the
    weights moved from their initialisation apart, where two seeds end apart by the whole distance."""
    torch.manual_seed(0)
    initial = Student(CONFIG).state_dict()

    def weights(state):
        kept = [k for k, v in state.items() if v.is_floating_point() and not k.endswith(("0.bias", "_mean", "_var"))]
        return torch.cat([state[k].flatten() for k in kept])

    for teacher in ("lambda_sd", "lambda_vd"):
        low, high = (
            train_one(
                None,
                None,
                train_params(epochs=3),
                unlabeled=with_video(teacher_knows(band_set(20, 3)), 4, face_share=0.8),
                objective=Objective(**{teacher: v}),
            ).model.state_dict()
            for v in (0.1, 10.0)
        )
        moved = float((weights(low) - weights(initial)).norm())
        assert float((weights(low) - weights(high)).norm()) < 0.2 * moved, teacher
