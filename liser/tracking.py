"""Training curves through DVCLive: one folder per stage, declared in ``dvc.yaml`` as the stage's metrics and
plots, so ``dvc exp show`` lists the best and final values and ``dvc plots show`` / ``dvc plots diff`` draw the
curves across experiments.

A stage's folder holds:

- ``plots/metrics/<run>/<curve>.tsv``: ``step`` (the epoch) and the value, one row per epoch, for each run of
  the stage (``fold0``, ``fold1``, ...; no ``<run>/`` level for a stage of one run) and each curve of
  :data:`CURVES`; appended as the run trains when the loop calls :meth:`TrainingCurves.log_epoch`.
- ``metrics.json``: written last, by :meth:`TrainingCurves.finish`, so a folder without it is a stage that did not
  finish.  ``best``: the validation UAR and WAR of the epoch each run keeps (its best validation UAR, ties the
  earlier epoch); ``final``: the last epoch's values; both are means over the runs, so a stage adds the same
  few columns to ``dvc exp show`` however many folds it has (per-fold scores are in the stage's own metrics
  file).  ``step`` (DVCLive's) is the last epoch.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from dvclive import Live

__all__ = ["CURVES", "TrainingCurves", "curve_summary"]

CURVES = ("train_loss", "validation_uar", "validation_war")
_SELECTION = "validation_uar"


class _StageLive(Live):
    """DVCLive without its set-up against the DVC repository around the working folder.  A stage needs none of it
    (dvc.yaml declares the files, experiments are ``dvc exp run``'s, the project reports to no Studio), and in
    dvclive 3.49 it fails in a git repository without commits (``scm.get_rev()``: "Empty git repo") and runs
    ``dvc init`` in a git repository without DVC."""

    def _init_dvc(self) -> None:
        self._dvc_repo = None


def _mean(rows: Sequence[Mapping[str, float]], names: Sequence[str]) -> dict[str, float]:
    return {name: float(np.mean([row[name] for row in rows])) for name in names if rows and name in rows[0]}


def curve_summary(runs: Mapping[str, Sequence[Mapping[str, float]]]) -> dict:
    """``best`` and ``final`` values, means over ``runs`` (each a list of epoch rows in epoch order)."""
    kept = []
    for rows in runs.values():
        scored = [row for row in rows if _SELECTION in row]
        if scored:
            kept.append(max(scored, key=lambda row: row[_SELECTION]))  # max keeps the first of equals
    final = [rows[-1] for rows in runs.values() if rows]
    summary = {"best": _mean(kept, ("validation_uar", "validation_war")), "final": _mean(final, CURVES)}
    return {key: values for key, values in summary.items() if values}


class TrainingCurves:
    """The DVCLive logger of one stage, writing into ``folder`` (``None``: nothing is written, the summary is
    still returned)."""

    def __init__(self, folder: str | Path | None):
        # dvc.yaml declares the folder's files itself, and a stage is no place to save an experiment or a report
        self._live = (
            None
            if folder is None
            else _StageLive(dir=os.fspath(folder), dvcyaml=False, save_dvc_exp=False, report=None, monitor_system=False)
        )
        self._runs: dict[str, list[dict[str, float]]] = {}

    def log_epoch(self, run: str, row: Mapping[str, float]) -> None:
        """One epoch's row (``epoch`` and any of :data:`CURVES`) of ``run`` (``""``: the stage's only run)."""
        self._runs.setdefault(run, []).append({k: float(row[k]) for k in ("epoch", *CURVES) if k in row})
        if self._live is None:
            return
        self._live.step = int(row["epoch"])
        for name in CURVES:
            if name in row:
                self._live.log_metric(f"{run}/{name}" if run else name, float(row[name]))

    def logger(self, run: str) -> Callable[[Mapping[str, float]], None]:
        """:meth:`log_epoch` for ``run``, the callback a training loop takes."""
        return functools.partial(self.log_epoch, run)

    def log_history(self, run: str, history: pd.DataFrame) -> None:
        """A run's whole history (one row per epoch), for runs whose curves are chosen after training."""
        for row in history.to_dict("records"):
            self.log_epoch(run, row)

    def finish(self) -> dict:
        """Write ``metrics.json`` (:func:`curve_summary` of the runs logged) and return the summary."""
        summary = curve_summary(self._runs)
        if self._live is not None:
            # the folder dvc.yaml declares as plots, there even when nothing trained (a published video teacher)
            Path(self._live.plots_dir, "metrics").mkdir(parents=True, exist_ok=True)
            self._live.summary = dict(summary)
            self._live.make_summary()  # adds DVCLive's `step`
        return summary
