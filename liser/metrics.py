"""Unweighted and weighted average recall, and the confusion matrix, of predictions or of logits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["confusion_matrix", "uar", "war", "Scores", "score", "sample_std"]


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts with true classes as rows and predicted classes as columns."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if labels.shape != predictions.shape:
        raise ValueError(f"{labels.shape[0]} labels but {predictions.shape[0]} predictions")
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def uar(labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> float:
    """Unweighted average recall: the mean of per-class recalls over the classes that occur."""
    matrix = confusion_matrix(labels, predictions, n_classes)
    support = matrix.sum(axis=1)
    present = support > 0
    if not present.any():
        raise ValueError("no labels to score")
    return float(np.mean(np.diag(matrix)[present] / support[present]))


def war(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Weighted average recall, i.e. accuracy: recalls weighted by class support."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if len(labels) == 0:
        raise ValueError("no labels to score")
    return float(np.mean(labels == predictions))


@dataclass(frozen=True)
class Scores:
    uar: float
    war: float
    confusion: np.ndarray

    def as_dict(self) -> dict[str, float]:
        return {"uar": self.uar, "war": self.war}


def score(labels: np.ndarray, logits: np.ndarray) -> Scores:
    """UAR, WAR and confusion of the classes with the highest logit (or probability)."""
    n_classes = logits.shape[1]
    predictions = logits.argmax(axis=1)
    return Scores(
        uar(labels, predictions, n_classes), war(labels, predictions), confusion_matrix(labels, predictions, n_classes)
    )


def sample_std(values) -> float:
    """The sample standard deviation (ddof 1) of per-fold scores, the one convention of every report here; 0 for
    a single value.  Comparisons between configurations are :mod:`liser.results.statistics`'."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0
