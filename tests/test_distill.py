"""Distillation: the paper's mini-batch losses by hand, crop targets, and what distillation buys."""

import numpy as np
import pandas as pd
import pytest
import torch

from liser.features import FeatureStore
from liser.files import write_npy, write_parquet
from liser.folds import labeled_share
from liser.models.student import StudentConfig, StudentOutput
from liser.params import LossParams, TrainParams
from liser.students.configurations import CONFIGURATIONS, configuration, lambda_candidates
from liser.students.distill import Objective, UnlabeledSet, batch_loss, crop_targets, unlabeled_set
from liser.students.evaluate import score, utterance_logits
from liser.students.train import LabeledSet, distil_only, train_student
from liser.window_tables import Softmaxes

from .test_train import WINDOWING, band_set


def tiny_output():
    sup = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    sd = torch.tensor([[0.0, 0.0], [0.0, 0.0], [np.log(3.0), 0.0]])  # softmaxes .5/.5, .5/.5, .75/.25
    vd = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # 1/3 each
    return StudentOutput(sup=sup, sd=sd, vd=vd)


def hand_ce(logits, label):
    return -np.log(np.exp(logits[label]) / np.exp(logits).sum())


TARGETS_S = torch.tensor([[1.0, 0.0], [0.8, 0.2]])  # for batch rows 1 and 2
TARGETS_V = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.25, 0.25]])


def test_eq4_by_hand():
    objective = Objective(lambda_sd=2.0, lambda_vd=0.5)
    loss = batch_loss(
        tiny_output(), torch.tensor([0]), torch.tensor([0]), torch.tensor([1, 2]), TARGETS_S, TARGETS_V, objective
    )
    sup = hand_ce([2.0, 0.0], 0)
    mae_s = [(0.5 + 0.5) / 2, (0.05 + 0.05) / 2]  # |.5-1|,|.5-0| ; |.75-.8|,|.25-.2|
    mae_v = [(2 / 3 + 1 / 3 + 1 / 3) / 3, (1 / 6 + 1 / 12 + 1 / 12) / 3]
    expected = (sup + 2.0 * sum(mae_s) + 0.5 * sum(mae_v)) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_eq5_weights_each_term_by_the_teacher_confidence():
    objective = Objective(lambda_sd=2.0, lambda_vd=0.5, confidence=True)
    loss = batch_loss(
        tiny_output(), torch.tensor([0]), torch.tensor([0]), torch.tensor([1, 2]), TARGETS_S, TARGETS_V, objective
    )
    sup = hand_ce([2.0, 0.0], 0)
    sd = 1.0 * 0.5 + 0.8 * 0.05
    vd = 1.0 * (4 / 3) / 3 + 0.5 * (1 / 3) / 3
    assert loss.item() == pytest.approx((sup + 2.0 * sd + 0.5 * vd) / 3, rel=1e-6)


def test_summed_mae_and_soft_cross_entropy():
    summed = batch_loss(
        tiny_output(),
        torch.tensor([], dtype=torch.long),
        torch.tensor([], dtype=torch.long),
        torch.tensor([2]),
        TARGETS_S[1:],
        None,
        Objective(lambda_sd=1.0, class_reduction="sum"),
    )
    assert summed.item() == pytest.approx(0.1, rel=1e-5)
    ce = batch_loss(
        tiny_output(),
        torch.tensor([], dtype=torch.long),
        torch.tensor([], dtype=torch.long),
        torch.tensor([2]),
        TARGETS_S[1:],
        None,
        Objective(lambda_sd=1.0, distill_loss="ce"),
    )
    assert ce.item() == pytest.approx(-(0.8 * np.log(0.75) + 0.2 * np.log(0.25)), rel=1e-5)


def test_crop_targets_average_the_windows_inside_the_crop():
    probabilities = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.2, 0.8]])
    midpoints = np.array([8.0, 25.0, 41.0, 108.0])  # 0.533 s windows at a 32 ms hop
    np.testing.assert_allclose(crop_targets(probabilities, midpoints, 0, 94), [0.5, 0.5])
    np.testing.assert_allclose(crop_targets(probabilities, midpoints, 20, 94), [0.7 / 3, 2.3 / 3])
    np.testing.assert_allclose(crop_targets(probabilities, midpoints, 200, 94), [0.2, 0.8])  # none inside: nearest


def test_unlabeled_set_keeps_windows_every_teacher_scored(tmp_path):
    store_dir = tmp_path / "features"
    write_npy(store_dir / "logmel.npy", np.zeros((30, 64), dtype=np.float32))  # (frames, mels), stacked
    write_parquet(
        store_dir / "index.parquet", pd.DataFrame({"utterance": ["s1", "s2"], "offset": [0, 10], "frames": [10, 20]})
    )
    windows = pd.DataFrame(
        {
            "segment": ["s1", "s2", "s2", "s3"],
            "window": [0, 0, 1, 0],
            "start_s": [0, 0, 0.533, 0],
            "end_s": [0.533, 0.533, 1.067, 0.533],
        }
    )
    speech = Softmaxes(windows.assign(p_a=0.25, p_b=0.75, p_max=0.75), ("a", "b"), "speech teacher")
    video_frame = windows.iloc[:2].assign(**{f"p_{k}": 1 / 7 for k in range(7)}, p_max=1 / 7)
    video = Softmaxes(video_frame, tuple(str(k) for k in range(7)), "video teacher")
    both = unlabeled_set(FeatureStore(store_dir), 0.032, speech, video)
    assert list(both.segments) == ["s1", "s2"] and both.speech[1].shape == (1, 2) and both.video[1].shape == (1, 7)
    np.testing.assert_allclose(both.window_midpoints[0], [0.2665 / 0.032])
    speech_only = unlabeled_set(FeatureStore(store_dir), 0.032, speech=speech)
    assert [len(m) for m in speech_only.window_midpoints] == [1, 2] and speech_only.video is None


def teacher_knows(labeled: LabeledSet, sharpness=0.9) -> UnlabeledSet:
    """Unlabeled items whose speech-teacher targets carry the (hidden) label: a known answer."""
    targets = [np.tile(np.where(np.arange(2) == y, sharpness, 1 - sharpness), (3, 1)) for y in labeled.labels]
    midpoints = [np.array([10.0, 40.0, 70.0]) for _ in labeled.labels]
    return UnlabeledSet(labeled.utterances, labeled.features, midpoints, targets, None)


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


PARAMS = TrainParams(lr=3e-3, epochs=6, batch_size=8, seed=0, threads=1, precision="float32")
CONFIG = StudentConfig(speech_classes=2)


def test_lambda_zero_is_exactly_no_dstl():
    train, validation = band_set(16, 1), band_set(8, 2)
    plain = train_student(train, validation, CONFIG, PARAMS.model_copy(update={"epochs": 2}), WINDOWING)
    unlabeled = teacher_knows(band_set(12, 3))
    zero = train_student(
        train,
        validation,
        CONFIG,
        PARAMS.model_copy(update={"epochs": 2}),
        WINDOWING,
        unlabeled=unlabeled,
        objective=Objective(lambda_sd=0.0, lambda_vd=0.0),
    )
    for (name, a), (_, b) in zip(plain.model.state_dict().items(), zero.model.state_dict().items()):
        assert torch.equal(a, b), name
    pd.testing.assert_frame_equal(plain.history, zero.history)


def test_distillation_beats_no_dstl_when_the_teacher_knows():
    few, validation, test = known_answer(4, 1), known_answer(8, 2), known_answer(24, 3)
    unlabeled = teacher_knows(known_answer(32, 4))
    params = PARAMS.model_copy(update={"epochs": 4})
    plain = train_student(few, validation, CONFIG, params, WINDOWING)
    distilled = train_student(
        few, validation, CONFIG, params, WINDOWING, unlabeled=unlabeled, objective=Objective(lambda_sd=5.0)
    )
    uar = {
        name: score(test.labels, utterance_logits(r.model, test.features, WINDOWING)).uar
        for name, r in (("no-dstl", plain), ("sp-dstl", distilled))
    }
    assert uar["sp-dstl"] >= uar["no-dstl"] + 0.15, uar


def test_two_stage_starts_from_the_distilled_weights():
    unlabeled = teacher_knows(band_set(12, 3))
    state, history = distil_only(
        unlabeled, CONFIG, PARAMS.model_copy(update={"epochs": 2}), WINDOWING, Objective(lambda_sd=1.0)
    )
    assert list(history["epoch"]) == [1, 2] and history["train_loss"].notna().all()
    fresh = train_student(band_set(8, 1), band_set(8, 2), CONFIG, PARAMS.model_copy(update={"epochs": 1}), WINDOWING)
    started = train_student(
        band_set(8, 1), band_set(8, 2), CONFIG, PARAMS.model_copy(update={"epochs": 1}), WINDOWING, initial_state=state
    )
    assert not torch.equal(fresh.model.sd_head[0].weight, started.model.sd_head[0].weight)
    with pytest.raises(ValueError, match="non-zero lambda"):
        distil_only(unlabeled, CONFIG, PARAMS, WINDOWING, Objective())


def test_configurations_use_their_lambdas_only():
    loss = LossParams(lambda_sd=0.5, lambda_vd=5.0)

    def objective(name):
        (pair,) = lambda_candidates(CONFIGURATIONS[name], loss)
        return CONFIGURATIONS[name].objective(loss, *pair)

    assert objective("no-dstl") == Objective(class_reduction="mean")
    assert objective("vid-dstl").lambda_sd == 0 and objective("vid-dstl").lambda_vd == 5
    assert objective("conf-vid-sp-dstl").confidence
    assert objective("distill-ce-sp") == Objective(lambda_sd=0.5, distill_loss="ce")
    assert configuration("vid-sp-dstl", 50).run_name == "vid-sp-dstl-labeled50"
    with pytest.raises(ValueError, match="unknown configuration"):
        configuration("vid-dstl-ce")


def test_auto_lambda_trains_the_grid_for_the_teachers_used():
    loss = LossParams(lambda_sd="auto", lambda_vd="auto", lambda_grid=[0.1, 1, 10])
    assert lambda_candidates(CONFIGURATIONS["no-dstl"], loss) == [(0.0, 0.0)]
    assert lambda_candidates(CONFIGURATIONS["vid-dstl"], loss) == [(0.0, 0.1), (0.0, 1.0), (0.0, 10.0)]
    assert len(lambda_candidates(CONFIGURATIONS["vid-sp-dstl"], loss)) == 9
    fixed_video = LossParams(lambda_sd="auto", lambda_vd=5.0, lambda_grid=[0.1, 1, 10])
    assert lambda_candidates(CONFIGURATIONS["vid-sp-dstl"], fixed_video) == [(0.1, 5.0), (1.0, 5.0), (10.0, 5.0)]


def test_labeled_share_keeps_every_class():
    table = pd.DataFrame({"utterance": [f"u{i}" for i in range(20)], "label": [0] * 12 + [1] * 8})
    quarter = labeled_share(table, 25, seed=0)
    assert quarter["label"].value_counts().to_dict() == {0: 3, 1: 2}
    assert labeled_share(table, 25, seed=0).equals(quarter) and not labeled_share(table, 25, seed=1).equals(quarter)
    assert labeled_share(table, 100, seed=0).equals(table)
