"""Paired contrasts over folds, against values worked out by hand (t quantiles from a printed t table)."""

import math

import pytest

from liser.results.statistics import fold_contrast, ratio_of_test_to_train

T_975_2 = 4.302653  # Student's t, 97.5th percentile, 2 degrees of freedom
T_975_4 = 2.776445  # 4 degrees of freedom


def test_five_folds_by_hand():
    baseline = [0.50, 0.52, 0.48, 0.55, 0.51]
    candidate = [b + d for b, d in zip(baseline, [0.01, 0.02, 0.03, 0.04, 0.05])]
    contrast = fold_contrast(candidate, baseline, ratio=1 / 3)
    # differences 0.01 ... 0.05: mean 0.03; variance (0.02² + 0.01² + 0 + 0.01² + 0.02²) / 4 = 2.5e-4, s = 0.0158114
    assert contrast.folds == 5 and contrast.mean == pytest.approx(0.03)
    assert contrast.std == pytest.approx(0.0158114, abs=1e-7)
    # plain: 2.776445 * 0.0158114 / sqrt(5) = 2.776445 * 0.0070711 = 0.0196324
    assert contrast.t_low == pytest.approx(0.03 - 0.0196324, abs=1e-6)
    assert contrast.t_high == pytest.approx(0.03 + 0.0196324, abs=1e-6)
    # Nadeau-Bengio: 2.776445 * sqrt(2.5e-4 * (1/5 + 1/3)) = 2.776445 * sqrt(1.3333e-4)
    #              = 2.776445 * 0.0115470 = 0.0320596
    assert contrast.corrected_low == pytest.approx(0.03 - 0.0320596, abs=1e-6)
    assert contrast.corrected_high == pytest.approx(0.03 + 0.0320596, abs=1e-6)
    assert (contrast.won, contrast.lost, contrast.tied) == (5, 0, 0)
    # the plain interval excludes 0, the corrected one does not: what the correction is for
    assert contrast.t_low > 0 > contrast.corrected_low


def test_wins_losses_ties_and_the_ratio_of_each_folds_counts():
    folds = [{"train": 30, "validation": 9, "test": 10}, {"train": 40, "test": 10}, {"train": 50, "test": 10}]
    ratio = ratio_of_test_to_train(folds)
    assert ratio == pytest.approx((1 / 3 + 1 / 4 + 1 / 5) / 3)  # 0.261111
    contrast = fold_contrast([0.5, 0.4, 0.6], [0.5, 0.5, 0.5], ratio)
    # differences 0, -0.1, +0.1: mean 0, s = 0.1
    assert (contrast.won, contrast.lost, contrast.tied) == (1, 1, 1)
    assert contrast.mean == pytest.approx(0.0, abs=1e-12) and contrast.std == pytest.approx(0.1)
    # plain: 4.302653 * 0.1 / sqrt(3) = 0.248414
    # corrected: 4.302653 * 0.1 * sqrt(1/3 + 0.261111) = 4.302653 * 0.1 * 0.7710022 = 0.331735
    assert contrast.t_high == pytest.approx(0.248414, abs=1e-6)
    assert contrast.corrected_high == pytest.approx(0.331735, abs=1e-6)
    assert contrast.corrected_low == pytest.approx(-0.331735, abs=1e-6)
    assert contrast.as_dict()["test_train_ratio"] == pytest.approx(ratio)


def test_equal_scores_give_a_zero_width_interval_and_one_fold_an_unbounded_one():
    same = fold_contrast([0.4, 0.5], [0.4, 0.5], ratio=0.5)
    assert same.t_low == same.t_high == same.corrected_low == same.corrected_high == 0.0 and same.tied == 2
    one = fold_contrast([0.6], [0.5], ratio=0.5)
    assert one.mean == pytest.approx(0.1) and one.won == 1
    assert one.t_low == one.corrected_low == -math.inf and one.t_high == one.corrected_high == math.inf


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="equal"):
        fold_contrast([0.5], [0.5, 0.6], ratio=0.3)
    with pytest.raises(ValueError, match="training and test"):
        ratio_of_test_to_train([{"train": 0, "test": 5}])
