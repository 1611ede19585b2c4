"""The objective: the paper's mini-batch losses by hand, crop targets, the unlabeled set, and what distillation
buys; the configurations and their lambdas."""

import numpy as np
import pandas as pd
import pytest
import torch

from liser.features import FeatureStore
from liser.files import write_npy, write_parquet
from liser.folds import labeled_share
from liser.students.batching import WindowTargets
from liser.students.configurations import CONFIGURATIONS, configuration, lambda_candidates, run_location
from liser.students.data import unlabeled_set
from liser.students.evaluate import score, utterance_logits
from liser.students.objective import Objective, StackedObjectives
from liser.students.population import Member, train_population
from liser.window_tables import Softmaxes
from tests.helpers import section
from tests.student_data import CONFIG, WINDOWING, band_set, known_answer, teacher_knows, train_one, train_params

LOGITS = {
    "sup_head": torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
    "sd_head": torch.tensor([[0.0, 0.0], [0.0, 0.0], [np.log(3.0), 0.0]]),  # softmaxes .5/.5, .5/.5, .75/.25
    "vd_head": torch.zeros(3, 3),  # 1/3 each
}
# batch row 0 is labeled (class 0); rows 1 and 2 are unlabeled, with these teacher targets
TARGETS = {
    "speech": torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.8, 0.2]]),
    "video": torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.5, 0.25, 0.25]]),
}


def hand_ce(logits, label):
    return -np.log(np.exp(logits[label]) / np.exp(logits).sum())


def batch_losses(*objectives: Objective, has_video=(False, True, True)) -> list[float]:
    """The engine's loss of this one batch for members with these objectives (the same batch for each)."""
    members = len(objectives)

    def stacked(tensor):
        return tensor.expand(members, *tensor.shape)

    losses, _ = StackedObjectives(objectives, "cpu").losses(
        {head: stacked(logits) for head, logits in LOGITS.items()},
        stacked(torch.tensor([0, 0, 0])),
        stacked(torch.tensor([True, False, False])),
        {teacher: stacked(targets) for teacher, targets in TARGETS.items()},
        {"speech": stacked(torch.tensor([False, True, True])), "video": stacked(torch.tensor(has_video))},
        torch.full((members,), 3.0),
    )
    return losses.tolist()


SUP = hand_ce([2.0, 0.0], 0)


def test_eq4_by_hand():
    mae_s = [(0.5 + 0.5) / 2, (0.05 + 0.05) / 2]  # |.5-1|,|.5-0| ; |.75-.8|,|.25-.2|
    mae_v = [(2 / 3 + 1 / 3 + 1 / 3) / 3, (1 / 6 + 1 / 12 + 1 / 12) / 3]
    expected = (SUP + 2.0 * sum(mae_s) + 0.5 * sum(mae_v)) / 3
    assert batch_losses(Objective(lambda_sd=2.0, lambda_vd=0.5)) == pytest.approx([expected], rel=1e-6)


def test_eq5_weights_each_term_by_the_teacher_confidence():
    sd = 1.0 * 0.5 + 0.8 * 0.05
    vd = 1.0 * (4 / 3) / 3 + 0.5 * (1 / 3) / 3
    expected = (SUP + 2.0 * sd + 0.5 * vd) / 3
    assert batch_losses(Objective(lambda_sd=2.0, lambda_vd=0.5, confidence=True)) == pytest.approx([expected], 1e-6)


def test_summed_mae_and_soft_cross_entropy():
    summed = (SUP + 1.0 * (1.0 + 0.1)) / 3
    ce = (SUP - np.log(0.5) - (0.8 * np.log(0.75) + 0.2 * np.log(0.25))) / 3
    assert batch_losses(Objective(lambda_sd=1.0, class_reduction="sum")) == pytest.approx([summed], rel=1e-5)
    assert batch_losses(Objective(lambda_sd=1.0, distill_loss="ce")) == pytest.approx([ce], rel=1e-5)


def test_each_member_gets_its_own_loss_in_one_expression():
    objectives = [Objective(), Objective(lambda_sd=2.0, lambda_vd=0.5, confidence=True), Objective(lambda_vd=1.0)]
    together = batch_losses(*objectives)
    assert together == pytest.approx([batch_losses(o)[0] for o in objectives], rel=1e-6)
    assert together[0] == pytest.approx(SUP / 3, rel=1e-6)  # no teacher: the unlabeled items add nothing


def test_an_item_without_a_video_target_has_no_video_term_but_counts():
    only_row_2 = (SUP + 1.0 * (1 / 6 + 1 / 12 + 1 / 12) / 3) / 3  # row 1 has no face: no term, still in N_u
    assert batch_losses(Objective(lambda_vd=1.0), has_video=(False, False, True)) == pytest.approx([only_row_2], 1e-6)


def test_crop_targets_average_the_windows_inside_the_crop():
    probabilities = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.2, 0.8]], dtype=np.float32)
    midpoints = np.array([8.0, 25.0, 41.0, 108.0])  # 0.533 s windows at a 32 ms hop
    targets = WindowTargets([probabilities], [midpoints])
    got, has = targets.targets(torch.tensor([0, 0, 0]), torch.tensor([0, 20, 200]), 94)
    np.testing.assert_allclose(got.numpy(), [[0.5, 0.5], [0.7 / 3, 2.3 / 3], [0.2, 0.8]], rtol=1e-6)  # 200: nearest
    assert has.tolist() == [True, True, True]


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


def test_lambda_zero_is_exactly_no_dstl():
    train, validation, params = band_set(16, 1), band_set(8, 2), train_params(epochs=2)
    plain = train_one(train, validation, params)
    zero = train_one(train, validation, params, unlabeled=teacher_knows(band_set(12, 3)), objective=Objective())
    for (name, a), (_, b) in zip(plain.model.state_dict().items(), zero.model.state_dict().items()):
        assert torch.equal(a, b), name
    pd.testing.assert_frame_equal(plain.history, zero.history)


def test_distillation_beats_no_dstl_when_the_teacher_knows():
    few, validation, test = known_answer(4, 1), known_answer(8, 2), known_answer(24, 3)
    params = train_params(epochs=4)
    plain = train_one(few, validation, params)
    distilled = train_one(
        few, validation, params, unlabeled=teacher_knows(known_answer(32, 4)), objective=Objective(lambda_sd=5.0)
    )
    uar = {
        name: score(test.labels, utterance_logits(r.model, test.features, WINDOWING)).uar
        for name, r in (("no-dstl", plain), ("sp-dstl", distilled))
    }
    assert uar["sp-dstl"] >= uar["no-dstl"] + 0.15, uar


def test_two_stage_starts_from_the_distilled_weights():
    unlabeled, params = teacher_knows(band_set(12, 3)), train_params(epochs=2)
    first = train_one(None, None, params, unlabeled=unlabeled, objective=Objective(lambda_sd=1.0))
    assert list(first.history["epoch"]) == [1, 2] and first.history["train_loss"].notna().all()
    assert first.best_epoch == 2  # no validation: the last epoch is kept
    state = first.model.state_dict()
    fresh = train_one(band_set(8, 1), band_set(8, 2), train_params(epochs=1))
    started = train_one(band_set(8, 1), band_set(8, 2), train_params(epochs=1), initial_state=state)
    assert not torch.equal(fresh.model.sd_head[0].weight, started.model.sd_head[0].weight)
    torch.testing.assert_close(started.model.sd_head[0].weight, state["sd_head.0.weight"])  # not in stage 2's loss
    with pytest.raises(ValueError, match="nothing to distil"):
        train_population([Member("nothing", None, None, Objective(), unlabeled)], CONFIG, params, WINDOWING)


def test_configurations_use_their_lambdas_only():
    loss = section("loss", lambda_sd=0.5, lambda_vd=5.0)

    def objective(name):
        (pair,) = lambda_candidates(CONFIGURATIONS[name], loss)
        return CONFIGURATIONS[name].objective(*pair, loss.class_reduction)

    assert objective("no-dstl") == Objective(class_reduction="mean")
    assert objective("vid-dstl").lambda_sd == 0 and objective("vid-dstl").lambda_vd == 5
    assert objective("conf-vid-sp-dstl").confidence
    assert objective("distill-ce-sp") == Objective(lambda_sd=0.5, distill_loss="ce")
    assert configuration("vid-sp-dstl", 50).run_name == "vid-sp-dstl-labeled50"
    with pytest.raises(ValueError, match="unknown configuration"):
        configuration("vid-dstl-ce")


def test_a_share_run_lives_in_its_configurations_figure_2_stage():
    assert run_location("vid-sp-dstl") == ("vid-sp-dstl", "vid-sp-dstl.json", None)
    assert run_location("vid-sp-dstl-labeled50") == ("vid-sp-dstl-labeled/50", "vid-sp-dstl-labeled.json", "50")
    assert run_location("no-dstl-labeled25")[0] == "no-dstl-labeled/25"
    assert run_location("mine-labeled50")[2] is None  # not a configuration of the paper: a run of its own


def test_auto_lambda_trains_the_grid_for_the_teachers_used():
    loss = section("loss", lambda_sd="auto", lambda_vd="auto", lambda_grid=[0.1, 1, 10])
    assert lambda_candidates(CONFIGURATIONS["no-dstl"], loss) == [(0.0, 0.0)]
    assert lambda_candidates(CONFIGURATIONS["vid-dstl"], loss) == [(0.0, 0.1), (0.0, 1.0), (0.0, 10.0)]
    assert len(lambda_candidates(CONFIGURATIONS["vid-sp-dstl"], loss)) == 9
    fixed_video = section("loss", lambda_sd="auto", lambda_vd=5.0, lambda_grid=[0.1, 1, 10])
    assert lambda_candidates(CONFIGURATIONS["vid-sp-dstl"], fixed_video) == [(0.1, 5.0), (1.0, 5.0), (10.0, 5.0)]


def test_labeled_share_keeps_every_class():
    table = pd.DataFrame({"utterance": [f"u{i}" for i in range(20)], "label": [0] * 12 + [1] * 8})
    quarter = labeled_share(table, 25, seed=0)
    assert quarter["label"].value_counts().to_dict() == {0: 3, 1: 2}
    assert labeled_share(table, 25, seed=0).equals(quarter) and not labeled_share(table, 25, seed=1).equals(quarter)
    assert labeled_share(table, 100, seed=0).equals(table)
