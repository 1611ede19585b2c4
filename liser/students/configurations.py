"""The student configurations of the paper: Table 2, the ablations of Table 3 and the label-efficiency
study of Figure 2, each a way of building the mini-batch loss from the loss parameters, and the candidates each
trains per fold and seed, of which the one with the best validation UAR is kept (:func:`candidates`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from liser.params import LossParams
from liser.students.objective import Objective

__all__ = [
    "Configuration",
    "CONFIGURATIONS",
    "TABLE_2",
    "TABLE_3",
    "FIGURE_2",
    "CONTROLS",
    "configuration",
    "Candidate",
    "candidates",
    "lambda_candidates",
    "matched_budget",
    "draw_seed",
    "RESULTS_FILE",
    "SHARES",
    "run_location",
]

RESULTS_FILE = "results.json"  # in a run's output folder: its every fold, seed and candidate (liser.students.crossval)
SHARES = "-labeled"  # Figure 2: one stage per configuration trains every share, into <name>-labeled/<percent>/


@dataclass(frozen=True)
class Configuration:
    name: str
    speech: bool = False  # distils from the speech teacher, weighted by loss.lambda_sd
    video: bool = False  # distils from the video teacher, weighted by loss.lambda_vd
    confidence: bool = False  # eq. (5) instead of eq. (4)
    distill_loss: Literal["mae", "ce"] = "mae"
    two_stage: bool = False  # distillation on unlabeled data first, then fine-tuning on labeled data
    labeled_percent: int = 100  # of each fold's labeled training utterances
    # supervised, but each epoch as many batches as vid-sp-dstl's: separates what distillation adds from the
    # optimisation steps the unlabeled items bring with them under train.batch_composition: pooled
    matched_steps: bool = False

    @property
    def distils(self) -> bool:
        return self.speech or self.video

    @property
    def run_name(self) -> str:
        """The run's name in reports: the configuration, plus the labeled share when it is not all."""
        return self.name if self.labeled_percent == 100 else f"{self.name}{SHARES}{self.labeled_percent}"

    def objective(self, lambda_sd: float, lambda_vd: float, class_reduction: str = "mean") -> Objective:
        """The loss with these weights (a teacher the configuration does not use gets 0) and, for an MAE term,
        ``class_reduction`` (``loss.class_reduction``)."""
        return Objective(
            lambda_sd=lambda_sd if self.speech else 0.0,
            lambda_vd=lambda_vd if self.video else 0.0,
            confidence=self.confidence,
            distill_loss=self.distill_loss,
            class_reduction=class_reduction,
        )


CONFIGURATIONS = {
    c.name: c
    for c in (
        Configuration("no-dstl"),
        Configuration("no-dstl-matched-steps", matched_steps=True),
        Configuration("vid-dstl", video=True),
        Configuration("sp-dstl", speech=True),
        Configuration("vid-sp-dstl", speech=True, video=True),
        Configuration("conf-vid-sp-dstl", speech=True, video=True, confidence=True),
        Configuration("distill-ce-vid", video=True, distill_loss="ce"),
        Configuration("distill-ce-sp", speech=True, distill_loss="ce"),
        Configuration("two-stage-vid", video=True, two_stage=True),
        Configuration("two-stage-sp", speech=True, two_stage=True),
    )
}

TABLE_2 = ["no-dstl", "vid-dstl", "sp-dstl", "vid-sp-dstl", "conf-vid-sp-dstl"]
# Table 3: each ablation next to the single-teacher configuration it changes, per teacher.
TABLE_3 = {
    "video": {"vid-dstl / sp-dstl": "vid-dstl", "distill-ce": "distill-ce-vid", "two-stage-train": "two-stage-vid"},
    "speech": {"vid-dstl / sp-dstl": "sp-dstl", "distill-ce": "distill-ce-sp", "two-stage-train": "two-stage-sp"},
}
FIGURE_2 = ["no-dstl", "vid-sp-dstl"]
CONTROLS = ["no-dstl-matched-steps"]  # beside Table 2: the budget without the teachers


def configuration(name: str, labeled_percent: int = 100) -> Configuration:
    if name not in CONFIGURATIONS:
        raise ValueError(f"unknown configuration {name!r}; known: {', '.join(CONFIGURATIONS)}")
    if not 0 < labeled_percent <= 100:
        raise ValueError(f"labeled_percent must be in 1..100, got {labeled_percent}")
    return replace(CONFIGURATIONS[name], labeled_percent=labeled_percent)


def run_location(run: str) -> tuple[str, str, str | None]:
    """Where a run's results are, under a corpus's output and metrics folders: (its folder, its stage's metrics
    file, the run's key in that file or None for the whole file).  ``no-dstl`` is ``no-dstl/`` and
    ``no-dstl.json``; a Figure 2 share, ``no-dstl-labeled25``, is ``no-dstl-labeled/25/`` and key ``25`` of
    ``no-dstl-labeled.json``: one stage trains all of a configuration's shares."""
    name, shares, percent = run.rpartition(SHARES)
    if shares and name in CONFIGURATIONS and percent.isdigit():
        return f"{name}{SHARES}/{percent}", f"{name}{SHARES}.json", percent
    return run, f"{run}.json", None


def lambda_candidates(configuration: Configuration, loss: LossParams) -> list[tuple[float, float]]:
    """(λ_sd, λ_vd) pairs to train: each λ the configuration uses is its fixed value, or every value of
    ``loss.lambda_grid`` when it is ``auto``; one it does not use is 0 (and is not read).  5 pairs for one teacher
    on auto, 25 for both."""

    def values(uses: bool, key: str) -> list[float]:
        if not uses:
            return [0.0]
        value = getattr(loss, key)
        return [float(v) for v in loss.lambda_grid] if value == "auto" else [float(value)]

    return [
        (sd, vd) for sd in values(configuration.speech, "lambda_sd") for vd in values(configuration.video, "lambda_vd")
    ]


@dataclass(frozen=True)
class Candidate:
    """One student a configuration trains per fold and seed; the one with the best validation UAR is kept."""

    lambda_sd: float = 0.0
    lambda_vd: float = 0.0
    draw: int = 0  # which initialisation and data order of the seed: 0 is the seed itself (:func:`draw_seed`)

    @property
    def label(self) -> str:
        lambdas = f"lambda_sd={self.lambda_sd:g} lambda_vd={self.lambda_vd:g}"
        return lambdas if self.draw == 0 else f"{lambdas} draw {self.draw}"


def matched_budget(loss: LossParams) -> int:
    """The most candidates a distilled configuration trains per fold and seed: the size of its λ grid (25 with
    both teachers on ``auto``, 1 with both fixed)."""
    return max(len(lambda_candidates(c, loss)) for c in CONFIGURATIONS.values() if c.distils and not c.two_stage)


def candidates(configuration: Configuration, loss: LossParams, budget: Literal["matched", "none"]) -> list[Candidate]:
    """The candidates ``configuration`` trains per fold and seed.

    A distilled configuration: its λ candidates (:func:`lambda_candidates`).  Two-stage training: one, with λ = 1 for
    its teacher, because its first stage optimises that teacher's term alone and AdamW's step does not depend on
    the scale of the loss (the other λ would give the same weights; docs/paper-map.md); its second stage has no λ.
    A configuration that does not distil: with ``budget`` ``matched``, as many candidates as
    :func:`matched_budget`, each another draw of the seed, so that its best-on-validation student is chosen from
    as many as a distilled run's is; with ``none``, one."""
    if configuration.two_stage:
        return [Candidate(float(configuration.speech), float(configuration.video))]
    if configuration.distils:
        return [Candidate(sd, vd) for sd, vd in lambda_candidates(configuration, loss)]
    draws = matched_budget(loss) if budget == "matched" else 1
    return [Candidate(draw=draw) for draw in range(draws)]


def draw_seed(seed: int, draw: int) -> int:
    """The seed of draw ``draw`` of training seed ``seed``: the seed itself for draw 0, else one derived from both
    (NumPy's SeedSequence), so that every (seed, draw) starts its own way and a draw 0 run is the plain seed's."""
    if draw == 0:
        return seed
    return int(np.random.SeedSequence([seed, draw]).generate_state(1)[0])
