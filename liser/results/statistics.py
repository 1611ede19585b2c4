"""Is one configuration better than another?  Paired contrasts over the folds of one cross-validation.

The unit of every inference is the fold: the two configurations are scored on the same test speakers of each fold
(a fold's score being the mean over its seeds, seeds sharing a fold's speakers and teachers are not independent),
so a contrast is the k per-fold differences ``candidate - baseline``, with k - 1 degrees of freedom.  For each
contrast :func:`fold_contrast` gives

- the mean difference;
- the plain paired t interval: mean ± t(k-1) · s / sqrt(k), s the sample standard deviation of the differences;
- the Nadeau-Bengio corrected interval: mean ± t(k-1) · s · sqrt(1/k + n_test/n_train).  The folds' training sets
  overlap (each utterance trains in k - 2 of them here), so their differences are positively correlated and the
  plain variance s²/k understates the mean's; Nadeau and Bengio ("Inference for the generalization error", Machine
  Learning 52, 2003) correct it by replacing 1/k with 1/k + n_test/n_train, the ratio of test to training
  utterances (:func:`ratio_of_test_to_train`, the mean over folds of each fold's own counts);
- the folds won, lost and tied.

An interval that excludes 0 is a measured gain or loss; one that spans it says these folds do not settle it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["FoldContrast", "fold_contrast", "ratio_of_test_to_train"]


@dataclass(frozen=True)
class FoldContrast:
    """``candidate - baseline`` over ``folds`` paired folds."""

    folds: int
    mean: float
    std: float  # sample standard deviation (ddof 1) of the per-fold differences
    t_low: float  # the plain paired t interval
    t_high: float
    corrected_low: float  # the Nadeau-Bengio corrected interval
    corrected_high: float
    test_train_ratio: float  # n_test / n_train in the correction
    won: int
    lost: int
    tied: int
    confidence: float = 0.95

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def ratio_of_test_to_train(utterances: Sequence[Mapping[str, int]]) -> float:
    """n_test / n_train of the correction: the mean over folds of each fold's test over training utterances
    (``utterances``: one ``{"train": n, "test": n, ...}`` per fold)."""
    if not utterances or any(fold["train"] <= 0 for fold in utterances):
        raise ValueError("every fold needs its count of training and test utterances")
    return float(np.mean([fold["test"] / fold["train"] for fold in utterances]))


def _t_quantile(probability: float, dof: int) -> float:
    from scipy import stats  # only here: the rest of the package needs no SciPy

    return float(stats.t.ppf(probability, dof))


def fold_contrast(
    candidate: Sequence[float], baseline: Sequence[float], ratio: float, confidence: float = 0.95
) -> FoldContrast:
    """The paired contrast of two configurations' per-fold scores (the same folds, in the same order) with
    ``ratio`` = n_test / n_train (:func:`ratio_of_test_to_train`).  With one fold both intervals are unbounded."""
    candidate, baseline = np.asarray(candidate, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if candidate.shape != baseline.shape or candidate.ndim != 1 or len(candidate) == 0:
        raise ValueError(
            f"per-fold scores must be two equal, non-empty lists (got {candidate.shape} and {baseline.shape})"
        )
    if not 0 < confidence < 1 or ratio < 0:
        raise ValueError(f"confidence must lie in (0, 1) and the ratio be >= 0 (got {confidence} and {ratio})")
    differences = candidate - baseline
    k, mean = len(differences), float(differences.mean())
    std = float(differences.std(ddof=1)) if k > 1 else math.nan
    if k > 1:
        t = _t_quantile(0.5 + confidence / 2, k - 1)
        plain, corrected = t * std / math.sqrt(k), t * std * math.sqrt(1 / k + ratio)
    else:
        plain = corrected = math.inf
    return FoldContrast(
        folds=k,
        mean=mean,
        std=std,
        t_low=mean - plain,
        t_high=mean + plain,
        corrected_low=mean - corrected,
        corrected_high=mean + corrected,
        test_train_ratio=ratio,
        won=int((differences > 0).sum()),
        lost=int((differences < 0).sum()),
        tied=int((differences == 0).sum()),
        confidence=confidence,
    )
