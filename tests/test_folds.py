import pandas as pd
import pytest

from liser.folds import check_folds, fold_utterances, speaker_folds


def corpus(n_male: int, n_female: int, per_speaker: int = 3) -> pd.DataFrame:
    rows = []
    for i in range(n_male + n_female):
        gender = "male" if i < n_male else "female"
        rows += [{"utterance": f"s{i}_u{j}", "speaker": f"s{i}", "gender": gender} for j in range(per_speaker)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("n_male,n_female,k", [(12, 12, 5), (48, 43, 5), (5, 5, 5), (3, 4, 2), (2, 2, 2)])
def test_roles_are_disjoint_and_every_speaker_is_tested_once(n_male, n_female, k):
    folds = speaker_folds(corpus(n_male, n_female), k, seed=0)
    assert sorted(folds["fold"].unique()) == list(range(k))
    for _, members in folds.groupby("fold"):
        roles = {r: set(members.loc[members.role == r, "speaker"]) for r in ("train", "validation", "test")}
        assert not roles["train"] & roles["validation"]
        assert not roles["train"] & roles["test"]
        assert not roles["validation"] & roles["test"]
        assert set().union(*roles.values()) == {f"s{i}" for i in range(n_male + n_female)}
    tested = folds[folds.role == "test"]["speaker"]
    assert tested.is_unique and set(tested) == {f"s{i}" for i in range(n_male + n_female)}


def test_test_sets_are_gender_balanced():
    folds = speaker_folds(corpus(12, 12), 5, seed=3)
    test = folds[folds.role == "test"]
    per_fold = test.groupby(["fold", "gender"]).size().unstack()
    assert (per_fold.max() - per_fold.min()).max() <= 1
    assert ((per_fold["male"] - per_fold["female"]).abs() <= 1).all()


def test_deterministic_from_the_seed():
    utterances = corpus(10, 10)
    assert speaker_folds(utterances, 5, seed=1).equals(speaker_folds(utterances, 5, seed=1))
    assert not speaker_folds(utterances, 5, seed=1).equals(speaker_folds(utterances, 5, seed=2))


def test_utterances_follow_their_speakers():
    utterances = corpus(6, 6)
    folds = speaker_folds(utterances, 3, seed=0)
    test = fold_utterances(utterances, folds, 0, "test")
    assert set(test["speaker"]) == set(folds[(folds.fold == 0) & (folds.role == "test")]["speaker"])
    assert len(test) == 3 * test["speaker"].nunique()


def test_too_few_speakers():
    with pytest.raises(ValueError, match="2 speakers cannot make 5"):
        speaker_folds(corpus(1, 1), 5, seed=0)


def test_check_folds_catches_a_leak():
    folds = speaker_folds(corpus(5, 5), 5, seed=0)
    leaked = folds.copy()
    speaker = leaked.loc[(leaked.fold == 0) & (leaked.role == "test"), "speaker"].iloc[0]
    leaked.loc[(leaked.fold == 0) & (leaked.role == "train"), "speaker"] = speaker
    with pytest.raises(ValueError):
        check_folds(leaked)
