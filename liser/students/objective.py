"""The mini-batch loss of the paper (sections 2.4 and 3.4), for every member of a population at once.

For one student and one mini-batch of N_l labeled and N_u unlabeled items, eq. (4), or eq. (5) with
``confidence``:

    L = ( sum_labeled CE(g_sup, y)
          + sum_unlabeled [ lambda_sd * w_sd * D(g_sd, t_s) + lambda_vd * w_vd * D(g_vd, t_v) ] ) / (N_l + N_u)

D is the MAE between the head's softmax and the teacher's target (the mean over classes, or the sum with
``class_reduction="sum"``) or, for the distill-ce ablation, the cross-entropy against the soft target; w is the
target's maximum probability under eq. (5) and 1 under eq. (4).  A teacher whose lambda is 0 takes no part; an
unlabeled item without a target from a teacher (a crop over windows with no face) has no term for it, but still
counts in N_u.  Without any teacher the unlabeled items are not drawn at all, so such a run is exactly the
supervised one.

Every member of a population has its own :class:`Objective`; :class:`StackedObjectives` holds them as (M,) tensors
so that the loss of every member is one vectorised expression over (M, B) tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch.nn import functional as F

__all__ = ["Objective", "StackedObjectives", "HEADS"]

# The distillation heads, each with the weight of its term and the teacher whose targets it matches.
HEADS = (("sd_head", "lambda_sd", "speech"), ("vd_head", "lambda_vd", "video"))


@dataclass(frozen=True)
class Objective:
    """Which teachers the student learns from, and how."""

    lambda_sd: float = 0.0  # weight of the speech teacher's term; 0 leaves it out
    lambda_vd: float = 0.0  # weight of the video teacher's term
    confidence: bool = False  # eq. (5): each term also weighted by the teacher's maximum probability
    distill_loss: Literal["mae", "ce"] = "mae"
    class_reduction: Literal["mean", "sum"] = "mean"  # MAE over the classes of one item

    def __post_init__(self):
        if self.lambda_sd < 0 or self.lambda_vd < 0:
            raise ValueError(f"lambdas must be >= 0, got {self.lambda_sd} and {self.lambda_vd}")

    @property
    def distils(self) -> bool:
        return self.lambda_sd > 0 or self.lambda_vd > 0


class StackedObjectives:
    """The members' objectives as (M,) tensors on ``device``."""

    def __init__(self, objectives: Sequence[Objective], device: torch.device | str):
        def column(values, dtype=torch.float32):
            return torch.tensor(values, dtype=dtype, device=device)

        self.lambdas = {
            "lambda_sd": column([o.lambda_sd for o in objectives]),
            "lambda_vd": column([o.lambda_vd for o in objectives]),
        }
        self.confidence = column([o.confidence for o in objectives], torch.bool)
        self.cross_entropy = column([o.distill_loss == "ce" for o in objectives], torch.bool)
        self.summed = column([o.class_reduction == "sum" for o in objectives], torch.bool)

    def distillation(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(M, B) per-item term D of one teacher, times its confidence weight w."""
        errors = (torch.softmax(logits, dim=-1) - targets).abs().sum(dim=-1)
        mae = torch.where(self.summed[:, None], errors, errors / logits.shape[-1])
        ce = -(targets * F.log_softmax(logits, dim=-1)).sum(dim=-1)
        term = torch.where(self.cross_entropy[:, None], ce, mae)
        weight = torch.where(self.confidence[:, None], targets.max(dim=-1).values, torch.ones_like(term))
        return term * weight

    def losses(
        self,
        logits: dict[str, torch.Tensor],
        labels: torch.Tensor,
        is_labeled: torch.Tensor,
        targets: dict[str, torch.Tensor],
        has_target: dict[str, torch.Tensor],
        sizes: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Each member's batch loss (M,), and for each distillation head the (M, B) positions whose term enters it.

        ``logits`` per head (``sup_head``, ``sd_head``, ``vd_head``) are (M, B, classes); ``labels`` and
        ``is_labeled`` (M, B); ``targets`` and ``has_target`` per teacher (``speech``, ``video``): (M, B, classes)
        and (M, B); ``sizes`` (M,) the items of each member's batch (N_l + N_u; padding past it is ignored).
        """
        supervised = F.cross_entropy(logits["sup_head"].flatten(0, 1), labels.flatten(), reduction="none")
        total = (supervised.view_as(labels) * is_labeled).sum(dim=1)
        entering = {}
        for head, weight, teacher in HEADS:
            entering[head] = has_target[teacher] & (self.lambdas[weight][:, None] > 0)
            term = self.distillation(logits[head], targets[teacher])
            total = total + self.lambdas[weight] * (term * entering[head]).sum(dim=1)
        return total / sizes.clamp(min=1), entering
