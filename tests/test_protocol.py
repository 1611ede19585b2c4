"""Protocol choices that keep comparisons fair: which labels a share's teacher sees, how batches are composed and
how many steps a run takes, and which windows give video targets."""

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from liser.features import FeatureStore
from liser.files import write_json, write_npy, write_parquet
from liser.folds import fold_utterances, labeled_share, speaker_folds
from liser.models.student import Student
from liser.params import load_params
from liser.students.batching import BatchOrder, WindowTargets
from liser.students.configurations import configuration
from liser.students.crossval import distilled_batches_per_epoch
from liser.students.data import UnlabeledSet, unlabeled_set
from liser.students.objective import Objective
from liser.students.population import Member, train_population
from liser.teachers import speech_runs
from liser.teachers.speech_base import SpeechBaseChoice
from liser.training import shuffled_batches
from liser.window_tables import Softmaxes
from tests.helpers import REPO, section
from tests.reference_student import crop_targets
from tests.student_data import CONFIG, WINDOWING, known_answer, teacher_knows, train_params, with_video
from tests.test_speech_teacher import speakers_table

# --- a share's speech teacher sees only what the share's students see ------------------------------------------


@pytest.fixture
def corpus():
    utterances = speakers_table(10)
    utterances["utterance"] = utterances["utterance"].astype(str)
    return utterances, speaker_folds(utterances, n_folds=5, seed=0)


@pytest.mark.parametrize("split", ["train_only", "non_test"])
@pytest.mark.parametrize("percent", [25, 50, 100])
def test_a_share_teacher_never_sees_a_label_outside_the_share(corpus, split, percent):
    utterances, folds = corpus
    params = section("speech_teacher", split=split)
    fold = 2
    share = labeled_share(fold_utterances(utterances, folds, fold, "train"), percent, 7 + fold)  # the students'
    validation = fold_utterances(utterances, folds, fold, "validation")
    seen_by_students = set(share["utterance"]) | set(validation["utterance"])
    train, selection = speech_runs.teacher_utterances(utterances, folds, fold, params, percent, share_seed=7)
    assert set(train["utterance"]) | set(selection["utterance"]) <= seen_by_students
    assert not set(train["speaker"]) & set(selection["speaker"])
    tested = set(fold_utterances(utterances, folds, fold, "test")["utterance"])
    assert not (set(train["utterance"]) | set(selection["utterance"])) & tested
    if split == "train_only":  # the student's training speakers train it, its validation speakers pick its epoch
        assert set(train["utterance"]) == set(share["utterance"])
        assert set(selection["utterance"]) == set(validation["utterance"])
    else:  # its own 80/20 split of everything the share's students see
        assert set(train["utterance"]) | set(selection["utterance"]) == seen_by_students


def test_the_default_teacher_split_keeps_the_students_validation_speakers_out_of_its_training(corpus, repo_params):
    utterances, folds = corpus
    assert repo_params.speech_teacher.split == "train_only" and repo_params.label_efficiency.teacher == "share"
    train, _ = speech_runs.teacher_utterances(utterances, folds, 0, repo_params.speech_teacher)
    validation = set(fold_utterances(utterances, folds, 0, "validation")["speaker"])
    assert not set(train["speaker"]) & validation


def test_teacher_all_copies_the_full_runs_teachers_without_training(tmp_path):
    full = tmp_path / "full"
    for fold in (0, 1):
        (full / f"fold{fold}").mkdir(parents=True)
        (full / f"fold{fold}" / "adapter_model.safetensors").write_bytes(b"weights of fold %d" % fold)
        write_json(full / f"fold{fold}" / "teacher.json", {"info": {"uar": 0.4 + fold / 10, "war": 0.5}})
    nowhere = tmp_path / "not-needed"
    stage = speech_runs.TeacherStage(
        "ravdess", ["a", "b"], nowhere, nowhere, nowhere, tmp_path / "share", tmp_path / "metrics.json"
    )
    summary = speech_runs.share_teacher_runs(
        stage,
        [0, 1],
        section("speech_teacher"),
        SpeechBaseChoice("pretrain", None),
        "all",
        0,
        50,
        full,
    )
    assert (tmp_path / "share" / "fold1" / "adapter_model.safetensors").read_bytes() == b"weights of fold 1"
    assert summary["teacher"] == "all" and summary["test"]["uar"] == pytest.approx(0.45)


# --- batch composition and steps -------------------------------------------------------------------------------


def test_pooled_batches_are_todays_shuffled_pass():
    order, rng = BatchOrder(7, 30, 5, np.random.default_rng(3)), np.random.default_rng(3)
    for _ in range(2):
        expected = list(shuffled_batches(37, 5, rng))
        got = list(order.epoch())
        assert len(got) == order.batches_per_epoch == 8
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)


def test_fixed_batches_hold_exactly_n_labeled_items_while_labeled_items_remain():
    n_labeled, n_unlabeled, batch_size, per_batch = 23, 50, 8, 3
    order = BatchOrder(n_labeled, n_unlabeled, batch_size, np.random.default_rng(0), "fixed", per_batch)
    assert order.batches_per_epoch == 8  # ceil(23 / 3): an epoch is one pass over the labeled items
    unlabeled_seen = []
    for _ in range(3):
        batches = list(order.epoch())
        labeled = [b[b < n_labeled] for b in batches]
        assert [len(b) for b in labeled] == [3] * 7 + [2]
        assert sorted(np.concatenate(labeled)) == list(range(n_labeled))  # each labeled item once per epoch
        assert all(len(b) - len(b[b < n_labeled]) == batch_size - per_batch for b in batches)
        unlabeled_seen += [int(i) - n_labeled for b in batches for i in b[b >= n_labeled]]
    # the unlabeled items go round in turn across epochs: each once before any twice
    assert sorted(unlabeled_seen[:50]) == list(range(50)) and sorted(unlabeled_seen[50:100]) == list(range(50))


def test_fixed_composition_gives_supervised_and_distilled_runs_the_same_steps():
    supervised = BatchOrder(23, 0, 8, np.random.default_rng(0), "fixed", 3)
    distilled = BatchOrder(23, 500, 8, np.random.default_rng(0), "fixed", 3)
    assert supervised.batches_per_epoch == distilled.batches_per_epoch == 8
    assert all(len(b) == 3 for b in list(supervised.epoch())[:-1])
    pooled_supervised, pooled_distilled = BatchOrder(23, 0, 8, np.random.default_rng(0)), BatchOrder(23, 500, 8, None)
    assert (pooled_supervised.batches_per_epoch, pooled_distilled.batches_per_epoch) == (3, 66)


def test_an_epoch_stretched_to_a_distilled_runs_batches_passes_the_labeled_items_again():
    order = BatchOrder(10, 0, 4, np.random.default_rng(1), batches_per_epoch=7)
    batches = list(order.epoch())
    assert len(batches) == 7 and [len(b) for b in batches] == [4, 4, 2, 4, 4, 2, 4]
    assert sorted(np.concatenate(batches[:3])) == list(range(10))


def test_fixed_needs_room_for_unlabeled_items():
    with pytest.raises(ValueError, match="labeled_per_batch"):
        section("train", batch_composition="fixed", batch_size=5, labeled_per_batch=5)


def test_the_matched_steps_control_takes_the_distilled_runs_steps():
    assert configuration("no-dstl-matched-steps").matched_steps and not configuration("no-dstl").matched_steps
    params = train_params(epochs=2, batch_size=4)
    labeled, validation = known_answer(6, 0), known_answer(4, 1)
    unlabeled = teacher_knows(known_answer(14, 2))
    batches = distilled_batches_per_epoch(len(labeled.labels), len(unlabeled), params)
    assert batches == 5  # ceil((6 + 14) / 4)
    members = [
        Member("vid-sp-dstl", labeled, validation, Objective(lambda_sd=1.0), unlabeled),
        Member("no-dstl-matched-steps", labeled, validation, batches_per_epoch=batches),
        Member("no-dstl", labeled, validation),
    ]
    steps = [r.steps for r in train_population(members, CONFIG, params, WINDOWING)]
    assert steps == [10, 10, 4]
    fixed = params.model_copy(update={"batch_composition": "fixed", "labeled_per_batch": 2})
    assert distilled_batches_per_epoch(len(labeled.labels), len(unlabeled), fixed) == 3  # ceil(6 / 2)
    assert [r.steps for r in train_population(members[::2], CONFIG, fixed, WINDOWING)] == [6, 6]


# --- windows with little face give no video target -------------------------------------------------------------


def test_a_crop_over_windows_without_a_face_has_no_video_target():
    probabilities = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], dtype=np.float32)
    midpoints = np.array([8.0, 25.0, 200.0])
    valid = np.array([False, True, False])
    np.testing.assert_allclose(crop_targets(probabilities, midpoints, 0, 94, valid), [0.0, 1.0])  # only the face
    assert crop_targets(probabilities, midpoints, 150, 94, valid) is None  # covers only a faceless window
    targets = WindowTargets([probabilities], [midpoints], valid=[valid])
    got, has = targets.targets(torch.tensor([0, 0]), torch.tensor([0, 150]), 94)
    np.testing.assert_allclose(got[0].numpy(), [0.0, 1.0])
    assert has.tolist() == [True, False]


def test_the_face_threshold_marks_video_windows_from_the_softmax_table(tmp_path):
    store = tmp_path / "features"
    write_npy(store / "logmel.npy", np.zeros((40, 64), dtype=np.float32))
    write_parquet(store / "index.parquet", pd.DataFrame({"utterance": ["s1"], "offset": [0], "frames": [40]}))
    windows = pd.DataFrame({"segment": "s1", "window": [0, 1], "start_s": [0, 0.533], "end_s": [0.533, 1.067]})
    frame = windows.assign(**{f"p_{k}": 1 / 7 for k in range(7)}, p_max=1 / 7, face_fraction=[0.25, 0.75])
    video = Softmaxes(frame, tuple(str(k) for k in range(7)), "video teacher")
    marked = unlabeled_set(FeatureStore(store), 0.032, video=video, min_face_fraction=0.5)
    assert marked.video_valid[0].tolist() == [False, True] and marked.video[0].shape == (2, 7)
    assert unlabeled_set(FeatureStore(store), 0.032, video=video).video_valid is None  # 0: every window counts
    faceless = Softmaxes(frame.drop(columns="face_fraction"), video.classes, "video teacher")
    with pytest.raises(ValueError, match="video_softmaxes again"):
        unlabeled_set(FeatureStore(store), 0.032, video=faceless, min_face_fraction=0.5)


def test_without_any_face_window_the_video_head_does_not_learn():
    params = train_params(epochs=1, batch_size=6)
    unlabeled = with_video(teacher_knows(known_answer(8, 2)), 4)
    faceless = UnlabeledSet(
        unlabeled.segments,
        unlabeled.features,
        unlabeled.window_midpoints,
        unlabeled.speech,
        unlabeled.video,
        [np.zeros(len(m), dtype=bool) for m in unlabeled.window_midpoints],
    )
    member = Member("vid-dstl", known_answer(6, 0), known_answer(4, 1), Objective(lambda_vd=1.0), faceless)
    torch.manual_seed(0)
    initial = Student(CONFIG).state_dict()
    (result,) = train_population([member], CONFIG, params, WINDOWING)
    trained = result.model.state_dict()
    for name in initial:
        if name.startswith("vd_head"):
            torch.testing.assert_close(trained[name], initial[name])
    assert not torch.equal(trained["sup_head.weight"], initial["sup_head.weight"])


def test_only_the_video_students_read_the_face_threshold():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    readers = {name for name, stage in stages.items() if "windows.min_face_fraction" in stage.get("params", [])}
    video = {"vid-dstl", "vid-sp-dstl", "conf-vid-sp-dstl", "distill-ce-vid", "two-stage-vid", "vid-sp-dstl-labeled"}
    assert readers == video | {"report"}  # the report states it, with the reading that chose it
    assert "windows" not in stages["windows"]["params"]  # the windows themselves do not depend on it
    assert load_params(REPO / "params.yaml").windows.min_face_fraction == 0.5
