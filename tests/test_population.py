"""Many students as one batched model: each member ends where training it alone ends."""

import numpy as np
import torch

from liser.models.student import StudentConfig
from liser.params import TrainParams
from liser.students.batching import FeatureBank, WindowTargets, plan_batch
from liser.students.crops import random_crop
from liser.students.distill import Objective, UnlabeledSet, crop_targets
from liser.students.evaluate import utterance_logits
from liser.students.population import Member, train_population
from liser.students.train import train_student
from tests.test_distill import known_answer, teacher_knows
from tests.test_train import WINDOWING, band_set

CONFIG = StudentConfig(speech_classes=2, video_classes=7)


def with_video(unlabeled: UnlabeledSet, seed: int) -> UnlabeledSet:
    rng = np.random.default_rng(seed)
    video = [rng.dirichlet(np.ones(7), size=len(m)).astype(np.float32) for m in unlabeled.window_midpoints]
    return UnlabeledSet(unlabeled.segments, unlabeled.features, unlabeled.window_midpoints, unlabeled.speech, video)


def test_batched_crops_and_targets_are_the_item_by_item_ones():
    items = band_set(12, 4)
    unlabeled = with_video(teacher_knows(band_set(9, 5)), 6)
    bank, targets = FeatureBank(items.features), WindowTargets(unlabeled.video, unlabeled.window_midpoints)
    segments = FeatureBank(unlabeled.features)
    frames, pad = WINDOWING.window_frames, WINDOWING.pad_value
    for seed in range(5):
        batch = np.random.default_rng(seed).permutation(12 + 9)[:10]
        one_by_one, batched = np.random.default_rng(seed), np.random.default_rng(seed)
        plan = plan_batch(batch, 12, bank.lengths, segments.lengths, frames, batched)
        for position, item in enumerate(batch):
            if item < 12:
                expected = random_crop(items.features[item], frames, one_by_one, pad)
                got = bank.crops(torch.tensor([item]), torch.tensor(plan.starts[[position]]), frames, pad)[0]
            else:
                row = item - 12
                logmel = unlabeled.features[row]
                start = 0 if logmel.shape[1] <= frames else int(one_by_one.integers(0, logmel.shape[1] - frames + 1))
                expected = np.pad(
                    logmel[:, start : start + frames],
                    ((0, 0), (0, max(0, frames - logmel.shape[1]))),
                    constant_values=pad,
                )
                got = segments.crops(torch.tensor([row]), torch.tensor([start]), frames, pad)[0]
                assert plan.starts[position] == start
                target, has = targets.targets(torch.tensor([row]), torch.tensor([start]), frames)
                assert bool(has[0])
                target = target[0]
                np.testing.assert_allclose(
                    target.numpy(),
                    crop_targets(unlabeled.video[row], unlabeled.window_midpoints[row], start, frames),
                    rtol=1e-6,
                )
            np.testing.assert_array_equal(got.numpy(), expected)
        assert one_by_one.random() == batched.random()  # both generators drew the same numbers


def test_a_crop_between_windows_takes_the_nearest_window():
    targets = WindowTargets([np.eye(3, dtype=np.float32)], [np.array([10.0, 200.0, 400.0])])
    got = targets.targets(torch.tensor([0]), torch.tensor([250]), 94)[0][0]
    np.testing.assert_array_equal(got.numpy(), [0, 1, 0])  # the crop [250, 344) centres on 297: 200 is nearer
    np.testing.assert_array_equal(got.numpy(), crop_targets(np.eye(3), np.array([10.0, 200.0, 400.0]), 250, 94))


def three_members():
    """Three members with different folds (data and sizes), lambdas, losses and seeds."""
    speech_only = teacher_knows(known_answer(11, 7))
    both = with_video(teacher_knows(known_answer(13, 8)), 9)
    return [
        Member("fold0 no-dstl", band_set(21, 1), band_set(8, 2), Objective(), None, seed=0),
        Member("fold1 sp-dstl", band_set(14, 3), band_set(9, 4), Objective(lambda_sd=5.0), speech_only, seed=1),
        Member(
            "fold2 conf-vid-sp-dstl ce",
            band_set(17, 5),
            band_set(7, 6),
            Objective(lambda_sd=0.5, lambda_vd=10.0, confidence=True, distill_loss="ce"),
            both,
            seed=2,
        ),
    ]


def alone(member: Member, params: TrainParams):
    return train_student(
        member.train,
        member.validation,
        CONFIG,
        params.model_copy(update={"seed": member.seed}),
        WINDOWING,
        unlabeled=member.unlabeled,
        objective=member.objective,
    )


def test_each_member_ends_as_it_would_alone():
    params = TrainParams(lr=3e-3, epochs=3, batch_size=8, seed=0, threads=1, precision="float32")
    members = three_members()
    for member, together in zip(members, train_population(members, CONFIG, params, WINDOWING)):
        lone = alone(member, params)
        assert together.best_epoch == lone.best_epoch, member.name
        np.testing.assert_allclose(together.history["train_loss"], lone.history["train_loss"], rtol=1e-3)
        np.testing.assert_array_equal(together.history["validation_uar"], lone.history["validation_uar"])
        test = band_set(10, 11)
        together_logits = utterance_logits(together.model, test.features, WINDOWING)
        lone_logits = utterance_logits(lone.model, test.features, WINDOWING)
        np.testing.assert_allclose(together_logits, lone_logits, atol=2e-2)
        np.testing.assert_array_equal(together_logits.argmax(axis=1), lone_logits.argmax(axis=1))


def test_members_take_the_same_steps_as_alone():
    """Weight by weight after one epoch.  Adam divides each gradient by its own running size, so an element whose
    gradient is rounding noise (a convolution's bias before BatchNorm, a few near-zero others) moves by a full
    step either way: those may differ; every other weight must agree to float precision."""
    params = TrainParams(lr=3e-3, epochs=1, batch_size=8, seed=0, threads=1, precision="float32")
    members = three_members()
    for member, together in zip(members, train_population(members, CONFIG, params, WINDOWING)):
        lone = alone(member, params).model.state_dict()
        weights = {
            k: v for k, v in lone.items() if v.is_floating_point() and not k.endswith(("0.bias", "running_mean"))
        }
        off = sum(int(((together.model.state_dict()[k] - v).abs() > 1e-5).sum()) for k, v in weights.items())
        assert off / sum(v.numel() for v in weights.values()) < 1e-2, (member.name, off)


def test_validation_is_scored_at_its_own_stride(monkeypatch):
    import dataclasses

    import liser.students.population

    strides, scored = [], liser.students.population.utterance_logits

    def recording(model, features, windowing):
        strides.append(windowing.stride_frames)
        return scored(model, features, windowing)

    monkeypatch.setattr(liser.students.population, "utterance_logits", recording)
    params = TrainParams(lr=3e-3, epochs=2, batch_size=8, seed=0, threads=1, precision="float32")
    validation_windows = dataclasses.replace(WINDOWING, stride_frames=15.625)
    train_population(three_members()[:1], CONFIG, params, WINDOWING, validation_windows)
    assert strides == [15.625, 15.625]  # once per epoch, at the validation stride


def test_a_population_of_one_is_the_plain_student():
    """One member trains the Student module itself (PyTorch's LSTM and AdamW), with the batched data path."""
    params = TrainParams(lr=3e-3, epochs=2, batch_size=8, seed=0, threads=1, precision="float32")
    for member in three_members():
        (one,) = train_population([member], CONFIG, params, WINDOWING)
        lone = alone(member, params)
        assert one.best_epoch == lone.best_epoch, member.name
        np.testing.assert_allclose(one.history["train_loss"], lone.history["train_loss"], rtol=1e-5)
        np.testing.assert_array_equal(one.history["validation_uar"], lone.history["validation_uar"])
        for name, value in lone.model.state_dict().items():
            if value.is_floating_point() and not name.endswith(("0.bias", "running_mean")):
                torch.testing.assert_close(one.model.state_dict()[name], value, rtol=1e-3, atol=1e-4, msg=name)
