import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.metrics import confusion_matrix as sk_confusion

from liser.metrics import confusion_matrix, paired_difference, sample_std, uar, war


@pytest.mark.parametrize("seed", range(5))
def test_against_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 6, 200)
    predictions = np.where(rng.random(200) < 0.5, labels, rng.integers(0, 6, 200))
    assert uar(labels, predictions, 6) == pytest.approx(balanced_accuracy_score(labels, predictions))
    assert war(labels, predictions) == pytest.approx(accuracy_score(labels, predictions))
    np.testing.assert_array_equal(
        confusion_matrix(labels, predictions, 6), sk_confusion(labels, predictions, labels=range(6))
    )


def test_uar_differs_from_war_on_imbalanced_classes():
    labels = np.array([0] * 8 + [1] * 2)
    predictions = np.zeros(10, dtype=int)
    assert war(labels, predictions) == pytest.approx(0.8)
    assert uar(labels, predictions, 2) == pytest.approx(0.5)


def test_mismatched_lengths():
    with pytest.raises(ValueError):
        uar(np.array([0, 1]), np.array([0]), 2)


def test_paired_difference_mean_interval_and_wins():
    baseline = np.array([0.50, 0.52, 0.48, 0.55, 0.51])
    paired = paired_difference(baseline + np.array([0.01, 0.02, 0.03, 0.04, 0.05]), baseline)
    # differences 1..5 points: mean 3, sample std 1.5811, t(0.975, 4) = 2.776445
    assert paired.pairs == 5 and paired.wins == 5 and paired.ties == 0
    assert paired.mean == pytest.approx(0.03)
    assert paired.low == pytest.approx(0.03 - 0.01963243, abs=1e-7)
    assert paired.high == pytest.approx(0.03 + 0.01963243, abs=1e-7)
    assert paired_difference([0.5, 0.4], [0.5, 0.5]).as_dict()["ties"] == 1
    with pytest.raises(ValueError, match="equal"):
        paired_difference([0.5], [0.5, 0.6])


def test_one_standard_deviation_convention():
    assert sample_std([0.4, 0.5]) == pytest.approx(0.0707107, abs=1e-7)  # ddof 1, not 0.05
    assert sample_std([0.4]) == 0.0
