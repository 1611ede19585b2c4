import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.metrics import confusion_matrix as sk_confusion

from liser.metrics import confusion_matrix, sample_std, uar, war


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


def test_one_standard_deviation_convention():
    assert sample_std([0.4, 0.5]) == pytest.approx(0.0707107, abs=1e-7)  # ddof 1, not 0.05
    assert sample_std([0.4]) == 0.0
