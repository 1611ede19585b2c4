"""Many students trained at once as one batched model: a population.

A stage trains one student per fold (and per λ candidate, and per seed).  Each is a ~105K-parameter network whose
batch of 25 crops leaves a GPU idle, so here the M members are one model: their weights stacked along a leading
member axis, the convolutions grouped by member, BatchNorm over member x channel, the LSTM and the heads as
batched matrix products, and one AdamW over the stacked weights.  Each member keeps its own fold, loss weights
(λ_sd, λ_vd, confidence, distillation loss), seed and data order, and ends with the weights of its own best
validation epoch: a member's result is the one it gets trained alone by the plain one-student loop the tests keep as
their oracle (``tests/reference_student.py``), within float rounding.  This is the students' only training path: a
single student is a population of one, trained as the :class:`liser.models.student.Student` module itself.

Members whose epoch has ended (their folds differ in size) or whose last batch is short are padded; padding takes
no part in BatchNorm's statistics, the loss or the optimiser step, which is what keeps members independent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F
from torch.profiler import record_function
from tqdm import tqdm

from liser.metrics import score
from liser.models.student import Student, StudentConfig
from liser.params import TrainParams
from liser.runtime import resolve_device, resolve_precision
from liser.students.batching import (
    BatchOrder,
    FeatureBank,
    StreamedBank,
    StreamedWindowTargets,
    WindowTargets,
    plan_batch,
    window_targets,
)
from liser.students.data import LabeledSet, UnlabeledSet, frame_counts
from liser.students.evaluate import Windowing, utterance_logits
from liser.students.objective import Objective, StackedObjectives
from liser.training import full_state, seed_everything

__all__ = [
    "Member",
    "MemberResult",
    "PopulationStudent",
    "StackedAdamW",
    "UNLABELED_IN_MEMORY_BYTES",
    "train_population",
]

log = logging.getLogger(__name__)


@dataclass
class Member:
    """One student of a population: its data, its loss, its seed."""

    name: str
    train: LabeledSet | None  # None: distillation alone (first stage of two-stage training)
    validation: LabeledSet | None  # None: no epoch is chosen, the last is kept
    objective: Objective = field(default_factory=Objective)
    unlabeled: UnlabeledSet | None = None  # drawn only when the objective distils
    seed: int = 0
    initial_state: dict[str, torch.Tensor] | None = None  # e.g. after distillation alone
    batches_per_epoch: int | None = None  # an epoch of this many batches (a supervised run matched to a distilled one)


@dataclass
class MemberResult:
    model: Student  # the best-validation epoch's weights (the last epoch's without validation), on the CPU
    best_epoch: int
    history: pd.DataFrame  # epoch, train_loss[, validation_uar, validation_war]
    steps: int  # optimiser steps taken


# --- the batched model -------------------------------------------------------------------------------------------


class PopulationStudent:
    """M students of one :class:`StudentConfig` as stacked tensors, named as :class:`Student`'s state dict."""

    def __init__(self, config: StudentConfig, states: Sequence[dict[str, torch.Tensor]], device: torch.device):
        self.config = config
        self.members = len(states)
        self.tensors = {name: torch.stack([state[name] for state in states]).to(device) for name in states[0]}
        for name, tensor in self.tensors.items():
            tensor.requires_grad_(tensor.is_floating_point() and not name.endswith(("running_mean", "running_var")))
        self.parameters = {name: t for name, t in self.tensors.items() if t.requires_grad}

    def member_state(self, member: int) -> dict[str, torch.Tensor]:
        return {name: tensor[member].detach().to("cpu", copy=True) for name, tensor in self.tensors.items()}

    def member_model(self, member: int, device: torch.device | str = "cpu") -> Student:
        model = Student(self.config)
        model.load_state_dict(self.member_state(member))
        return model.to(device).eval()

    def _batch_norm(self, h: torch.Tensor, block: int, present: torch.Tensor | None) -> torch.Tensor:
        """BatchNorm2d of every member's channels in training mode; ``present`` (B, M) marks real items."""
        t, prefix = self.tensors, f"conv.{block}.1."
        weight, bias = t[prefix + "weight"].flatten(), t[prefix + "bias"].flatten()
        mean_run, var_run = t[prefix + "running_mean"], t[prefix + "running_var"]
        momentum, eps = 0.1, 1e-5
        if present is None:  # every member has a full batch: one fused call is exact
            t[prefix + "num_batches_tracked"] += 1
            return F.batch_norm(h, mean_run.view(-1), var_run.view(-1), weight, bias, True, momentum, eps)
        batch, members = present.shape
        maps = h.view(batch, members, -1, *h.shape[2:]).float()  # (B, M, C, H, W)
        mask = present.to(maps.dtype)[:, :, None, None, None]
        count = present.sum(dim=0).to(maps.dtype) * h.shape[2] * h.shape[3]  # (M,)
        active = count > 0
        safe = count.clamp(min=1)[:, None]
        mean = (maps * mask).sum(dim=(0, 3, 4)) / safe  # (M, C)
        centred = maps - mean[None, :, :, None, None]
        var = (centred.square() * mask).sum(dim=(0, 3, 4)) / safe
        with torch.no_grad():
            unbiased = var * (count / (count - 1).clamp(min=1))[:, None]
            keep = active[:, None]
            mean_run.copy_(torch.where(keep, (1 - momentum) * mean_run + momentum * mean, mean_run))
            var_run.copy_(torch.where(keep, (1 - momentum) * var_run + momentum * unbiased, var_run))
            t[prefix + "num_batches_tracked"] += active.long()
        scale = weight.view(members, -1) / torch.sqrt(var + eps)
        normed = centred * scale[None, :, :, None, None] + bias.view(members, -1)[None, :, :, None, None]
        return normed.to(h.dtype).view_as(h)

    def forward(self, crops: torch.Tensor, present: torch.Tensor | None = None):
        """``crops`` (B, M, mels, frames), member m's batch in column m -> three (M, B, classes) logits."""
        t, c = self.tensors, self.config
        batch, members = crops.shape[:2]
        h = crops.clone(memory_format=torch.channels_last)  # (a member axis of 1 leaves the layout ambiguous)
        for block, (kernel, pool) in enumerate(zip(c.kernels, c.pools)):
            # channels-last weights keep every layer in NHWC, as the Student does: 1.5x faster on a CPU
            weight = t[f"conv.{block}.0.weight"].flatten(0, 1).clone(memory_format=torch.channels_last)
            h = F.conv2d(
                h,
                weight,
                t[f"conv.{block}.0.bias"].flatten(),
                padding=(kernel[0] // 2, kernel[1] // 2),
                groups=members,
            )
            h = F.max_pool2d(F.relu(self._batch_norm(h, block, present)), pool)
        _, channels, mels, steps = h.shape
        sequence = h.view(batch, members, channels // members, mels, steps).permute(1, 0, 4, 2, 3).flatten(3)
        hidden = self._lstm(sequence)  # (M, B, H)
        return (
            self._linear(hidden, "sup_head"),
            self._mlp(hidden, "sd_head"),
            self._mlp(hidden, "vd_head"),
        )

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        weight, bias = self.tensors[f"{name}.weight"], self.tensors[f"{name}.bias"]
        return torch.baddbmm(bias[:, None, :].to(x.dtype), x, weight.transpose(1, 2).to(x.dtype))

    def _mlp(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return self._linear(F.relu(self._linear(x, f"{name}.0")), f"{name}.2")

    def _lstm(self, sequence: torch.Tensor) -> torch.Tensor:
        """One LSTM layer per member (PyTorch's gate order i, f, g, o); the last hidden state."""
        t = self.tensors
        members, batch, steps, _ = sequence.shape
        w_ih, w_hh = t["lstm.weight_ih_l0"].to(sequence.dtype), t["lstm.weight_hh_l0"].to(sequence.dtype)
        bias = (t["lstm.bias_ih_l0"] + t["lstm.bias_hh_l0"]).to(sequence.dtype)
        inputs = torch.bmm(sequence.flatten(1, 2), w_ih.transpose(1, 2)).view(members, batch, steps, -1)
        inputs = inputs + bias[:, None, None, :]
        size = w_hh.shape[2]
        hidden = sequence.new_zeros(members, batch, size)
        cell = sequence.new_zeros(members, batch, size)
        for step in range(steps):
            gates = inputs[:, :, step] + torch.bmm(hidden, w_hh.transpose(1, 2))
            i, f, g, o = gates.chunk(4, dim=-1)
            cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
            hidden = torch.sigmoid(o) * torch.tanh(cell)
        return hidden


class _OneStudent:
    """A population of one as the plain :class:`Student` module with PyTorch's AdamW: the same model and update,
    with PyTorch's fused LSTM and optimiser, which are faster on a CPU than the batched forms."""

    members = 1

    def __init__(
        self,
        config: StudentConfig,
        state: dict[str, torch.Tensor],
        device: torch.device,
        lr: float,
        weight_decay: float,
    ):
        self.config = config
        self.model = Student(config)
        self.model.load_state_dict(state)
        self.model.to(device).train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=weight_decay)

    def forward(self, crops: torch.Tensor, present: torch.Tensor | None = None):
        output = self.model(crops)
        return output.sup[None], output.sd[None], output.vd[None]

    def member_state(self, member: int) -> dict[str, torch.Tensor]:
        return full_state(self.model)

    def member_model(self, member: int, device: torch.device | str = "cpu") -> Student:
        model = Student(self.config)
        model.load_state_dict(self.member_state(member))
        return model.to(device).eval()

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def step(self, moving: dict[str, torch.Tensor]) -> None:
        for prefix in ("sd_head", "vd_head"):  # a head outside the loss has no gradient (None), as when alone
            if not bool(moving[f"{prefix}."][0]):
                for parameter in getattr(self.model, prefix).parameters():
                    parameter.grad = None
        if bool(moving[""][0]):
            self.optimizer.step()


class StackedAdamW:
    """AdamW (PyTorch's update, without amsgrad) over stacked member weights.

    ``step(moving)`` moves, for each tensor, only the members marked in ``moving[prefix]`` (the longest prefix
    of its name that is given, else ``moving[""]``): as in PyTorch, a weight that took no part in a member's
    loss (a head whose teacher has no item in the batch) keeps its value, moments and step count."""

    def __init__(
        self,
        parameters: dict[str, torch.Tensor],
        members: int,
        lr: float,
        weight_decay: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        self.parameters, self.lr, self.weight_decay, self.betas, self.eps = parameters, lr, weight_decay, betas, eps
        device = next(iter(parameters.values())).device
        self.steps = {name: torch.zeros(members, dtype=torch.float64, device=device) for name in parameters}
        self.moments = {name: (torch.zeros_like(p), torch.zeros_like(p)) for name, p in parameters.items()}

    def zero_grad(self) -> None:
        for p in self.parameters.values():
            p.grad = None

    @torch.no_grad()
    def step(self, moving: dict[str, torch.Tensor]) -> None:
        beta1, beta2 = self.betas
        for name, p in self.parameters.items():
            prefix = max((key for key in moving if name.startswith(key)), key=len)
            members = moving[prefix]
            self.steps[name] += members.to(torch.float64)
            steps = self.steps[name].clamp(min=1)
            shape = (-1,) + (1,) * (p.dim() - 1)
            step_size = (self.lr / (1 - beta1**steps)).float().view(shape)
            correction2 = torch.sqrt(1 - beta2**steps).float().view(shape)
            grad = p.grad if p.grad is not None else torch.zeros_like(p)
            first, second = self.moments[name]
            new_first = torch.lerp(first, grad, 1 - beta1)
            new_second = second * beta2 + grad * grad * (1 - beta2)
            denom = new_second.sqrt() / correction2 + self.eps
            updated = p * (1 - self.lr * self.weight_decay) - step_size * new_first / denom
            mask = members.view(shape)
            p.copy_(torch.where(mask, updated, p))
            first.copy_(torch.where(mask, new_first, first))
            second.copy_(torch.where(mask, new_second, second))


# --- training ----------------------------------------------------------------------------------------------------


class _MemberData:
    """One member's items as rows of the shared banks, its generator and its epoch's batches."""

    def __init__(
        self,
        member: Member,
        labeled_rows: np.ndarray,
        unlabeled_rows: np.ndarray | None,
        labeled_bank: FeatureBank | None,
        unlabeled_bank: FeatureBank | StreamedBank | None,
        targets: dict[str, WindowTargets | StreamedWindowTargets | None],
        params: TrainParams,
        seed: int,
    ):
        self.labeled_rows = labeled_rows
        self.unlabeled_rows = unlabeled_rows if member.objective.distils else None
        self.n_labeled = len(labeled_rows)
        self.n_unlabeled = 0 if self.unlabeled_rows is None else len(self.unlabeled_rows)
        self.labeled_lengths = labeled_bank.lengths[labeled_rows] if labeled_bank is not None else np.zeros(0, int)
        self.unlabeled_lengths = None if self.unlabeled_rows is None else unlabeled_bank.lengths[self.unlabeled_rows]
        self.targets = targets
        self.rng = np.random.default_rng(seed)  # as train_student's generator for this seed
        self.order = BatchOrder(
            self.n_labeled,
            self.n_unlabeled,
            params.batch_size,
            self.rng,
            params.batch_composition,
            params.labeled_per_batch,
            member.batches_per_epoch,
        )
        self.batches_per_epoch = self.order.batches_per_epoch
        self.epoch_batches = iter(())

    def next_batch(self) -> np.ndarray:
        return next(self.epoch_batches)

    def start_epoch(self) -> None:
        self.epoch_batches = self.order.epoch()


class _BankBuilder:
    """Items of several members gathered once: an item met again (same name, same values) is stored once."""

    def __init__(self):
        self.features: list[np.ndarray] = []
        self.by_name: dict[str, list[int]] = {}

    def rows(self, names: Sequence[str], features: Sequence[np.ndarray]) -> np.ndarray:
        return np.array([self._row(name, logmel) for name, logmel in zip(names, features)], dtype=np.int64)

    def _row(self, name: str, logmel: np.ndarray) -> int:
        for row in self.by_name.get(name, []):
            if self.features[row] is logmel or np.array_equal(self.features[row], logmel):
                return row
        self.by_name.setdefault(name, []).append(len(self.features))
        self.features.append(logmel)
        return len(self.features) - 1

    def bank(self, device: torch.device) -> FeatureBank | None:
        return FeatureBank(self.features, device) if self.features else None


class _SequenceRows:
    """Items of several members left in their sequences: a sequence met again (members sharing one unlabeled set)
    gives the same rows, so no item is read to be compared."""

    def __init__(self):
        self.sources: list[Sequence[np.ndarray]] = []
        self.first_row: dict[int, int] = {}
        self.total = 0

    def rows(self, names: Sequence[str], features: Sequence[np.ndarray]) -> np.ndarray:
        if id(features) not in self.first_row:
            self.first_row[id(features)] = self.total
            self.sources.append(features)
            self.total += len(features)
        return self.first_row[id(features)] + np.arange(len(features), dtype=np.int64)

    def bank(self, device: torch.device) -> StreamedBank | None:
        return StreamedBank(self.sources, device) if self.sources else None


# Unlabeled log-Mels up to this size are gathered into one tensor on the training device (a batch's crops are then
# one gather there); larger ones are read from their store a crop at a time.  Building the in-memory bank holds
# the items and their concatenation at once, so 2 GiB can peak near 4 GiB of host memory: the paper's MSP-Face
# (46.55 h, about 1.3 GB of 64-band float32 log-Mel) stays in memory, VoxCeleb2 (about 70 GB) streams.  Both give
# the same crops, so the limit changes no result.
UNLABELED_IN_MEMORY_BYTES = 2 * 2**30


def _unlabeled_rows(
    members: Sequence[Member], n_mels: int, stream: bool | None, device: torch.device
) -> _BankBuilder | _SequenceRows:
    """Where the distilling members' unlabeled items are read from: in memory, or streamed (``stream`` None: by
    their size, :data:`UNLABELED_IN_MEMORY_BYTES`, known from their lengths without reading their frames)."""
    sets = {id(m.unlabeled.features): m.unlabeled.features for m in members if m.objective.distils}
    frames = sum(int(frame_counts(features).sum()) for features in sets.values())
    size = frames * n_mels * np.dtype(np.float32).itemsize
    if stream is None:
        stream = size > UNLABELED_IN_MEMORY_BYTES
    if sets:
        where = "read from their files a crop at a time" if stream else f"held in one tensor on {device}"
        log.info("unlabeled log-Mels: %d items, %.2f GB, %s", sum(map(len, sets.values())), size / 1e9, where)
    return _SequenceRows() if stream else _BankBuilder()


def _initial_state(member: Member, config: StudentConfig) -> dict[str, torch.Tensor]:
    """The member's starting weights: drawn from its seed exactly as a student trained alone draws them."""
    torch.manual_seed(member.seed)
    model = Student(config)
    if member.initial_state is not None:
        model.load_state_dict(member.initial_state)
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def _assemble(plans, data, members, labeled_bank, unlabeled_bank, batch, config, frames, pad, device):
    """One step's tensors for every member at once: crops (M, B, mels, frames), labels, each teacher's targets
    (M, B, K), and which positions hold a labeled item, an item with each teacher's target, any item.  Each bank is
    read once (one gather when in memory), each distinct teacher table with one gather (members of one fold share
    theirs)."""
    keys = ("member", "position", "row", "start", "item")
    labeled_parts, unlabeled_parts = {k: [] for k in keys}, {k: [] for k in keys}
    label_parts = []
    for m, (plan, d) in enumerate(zip(plans, data)):
        if plan is None:
            continue
        for parts, where, rows in (
            (labeled_parts, plan.labeled, d.labeled_rows),
            (unlabeled_parts, ~plan.labeled, d.unlabeled_rows),
        ):
            positions = np.flatnonzero(where)
            if len(positions) == 0:
                continue
            items = plan.items[positions]
            parts["member"].append(np.full(len(positions), m))
            parts["position"].append(positions)
            parts["row"].append(rows[items])
            parts["start"].append(plan.starts[positions])
            parts["item"].append(items)
            if parts is labeled_parts:
                label_parts.append(members[m].train.labels[items])
    members_n = len(plans)
    crops = torch.full((members_n, batch, config.n_mels, frames), pad, device=device)
    labels = torch.zeros((members_n, batch), dtype=torch.long, device=device)
    speech = torch.zeros((members_n, batch, config.speech_classes), device=device)
    video = torch.zeros((members_n, batch, config.video_classes), device=device)
    is_labeled = torch.zeros((members_n, batch), dtype=torch.bool, device=device)
    has_target = {"speech": torch.zeros_like(is_labeled), "video": torch.zeros_like(is_labeled)}
    present = torch.zeros((batch, members_n), dtype=torch.bool, device=device)
    sizes = torch.tensor([0 if plan is None else len(plan) for plan in plans], device=device)
    present |= torch.arange(batch, device=device)[:, None] < sizes[None, :]

    def tensor(parts, key):
        return torch.from_numpy(np.concatenate(parts[key])).to(device)

    if labeled_parts["member"]:
        member, position = tensor(labeled_parts, "member"), tensor(labeled_parts, "position")
        crops[member, position] = labeled_bank.crops(
            tensor(labeled_parts, "row"), tensor(labeled_parts, "start"), frames, pad
        )
        labels[member, position] = torch.from_numpy(np.concatenate(label_parts)).to(device)
        is_labeled[member, position] = True
    if unlabeled_parts["member"]:
        member, position = tensor(unlabeled_parts, "member"), tensor(unlabeled_parts, "position")
        starts, items = tensor(unlabeled_parts, "start"), tensor(unlabeled_parts, "item")
        crops[member, position] = unlabeled_bank.crops(tensor(unlabeled_parts, "row"), starts, frames, pad)
        owners = np.concatenate(unlabeled_parts["member"])
        for teacher, into in (("speech", speech), ("video", video)):
            for table in {id(d.targets[teacher]): d.targets[teacher] for d in data if d.targets[teacher]}.values():
                mine = np.isin(owners, [m for m, d in enumerate(data) if d.targets[teacher] is table])
                if mine.any():
                    pick = torch.from_numpy(np.flatnonzero(mine)).to(device)
                    targets, has = table.targets(items[pick], starts[pick], frames)
                    into[member[pick], position[pick]] = targets
                    has_target[teacher][member[pick], position[pick]] = has
    return crops, labels, speech, video, is_labeled, has_target, present


def train_population(
    members: Sequence[Member],
    config: StudentConfig,
    params: TrainParams,
    windowing: Windowing,
    validation_windowing: Windowing | None = None,
    name: str = "students",
    stream_unlabeled: bool | None = None,
) -> list[MemberResult]:
    """Train every member for ``params.epochs`` epochs of its own data, all in one batched model; each keeps the
    epoch with its best validation UAR (ties keep the earlier epoch), or its last epoch without validation.
    Under ``params.precision`` bfloat16 the training forward pass and each epoch's validation run in bfloat16
    autocast (validation took a third of a demo student's time in float32); the kept weights stay float32.

    Each member's epochs hold the batches of :class:`liser.students.batching.BatchOrder`
    (``params.batch_composition``) over its labeled and, when its objective distils, unlabeled items, drawn from
    its own generator (its seed); its loss is :mod:`liser.students.objective`'s.

    The unlabeled log-Mels are held in memory up to :data:`UNLABELED_IN_MEMORY_BYTES`, else read a crop at a time
    (:class:`liser.students.batching.StreamedBank`); ``stream_unlabeled`` True or False forces one or the other.
    """
    if not members:
        raise ValueError("a population needs at least one member")
    validation_windowing = validation_windowing or windowing
    device = resolve_device(params.device)
    precision = resolve_precision(params.precision, device)
    seed_everything(members[0].seed, params.threads)  # each member then draws from its own seed
    states = [_initial_state(m, config) for m in members]
    if len(members) == 1:  # PyTorch's own LSTM and AdamW: on a CPU faster than the batched forms for one
        model = optimizer = _OneStudent(config, states[0], device, params.lr, params.weight_decay)
    else:
        model = PopulationStudent(config, states, device)
        optimizer = StackedAdamW(model.parameters, len(members), params.lr, params.weight_decay)
    for member in members:
        if member.objective.distils and member.unlabeled is None:
            raise ValueError(f"{member.name}: its objective distils, but it has no unlabeled set")
        if member.train is None and not member.objective.distils:
            raise ValueError(f"{member.name}: no labeled data and nothing to distil")
    labeled, unlabeled = _BankBuilder(), _unlabeled_rows(members, config.n_mels, stream_unlabeled, device)
    member_rows = []
    for member in members:
        distils = member.objective.distils
        member_rows.append(
            (
                labeled.rows(member.train.utterances, member.train.features) if member.train else np.zeros(0, int),
                unlabeled.rows(member.unlabeled.segments, member.unlabeled.features) if distils else None,
            )
        )
    labeled_bank, unlabeled_bank = labeled.bank(device), unlabeled.bank(device)
    # one per unlabeled set (a fold's), shared by its members
    targets_of: dict[int, dict[str, WindowTargets | StreamedWindowTargets | None]] = {}
    for member in members:
        if member.objective.distils and id(member.unlabeled) not in targets_of:
            streamed = isinstance(unlabeled, _SequenceRows)  # sets too large to hold: their targets stream too
            targets_of[id(member.unlabeled)] = window_targets(member.unlabeled, device, streamed)
    data = [
        _MemberData(
            member,
            labeled_rows,
            unlabeled_rows,
            labeled_bank,
            unlabeled_bank,
            targets_of[id(member.unlabeled)] if member.objective.distils else {"speech": None, "video": None},
            params,
            member.seed,
        )
        for member, (labeled_rows, unlabeled_rows) in zip(members, member_rows)
    ]
    objectives = StackedObjectives([m.objective for m in members], device)
    frames, pad = windowing.window_frames, windowing.pad_value
    total_steps = max(d.batches_per_epoch for d in data) * params.epochs
    epoch_of = [0] * len(members)
    batch_in_epoch = [0] * len(members)
    losses: list[list[float]] = [[] for _ in members]
    rows: list[list[dict]] = [[] for _ in members]
    best = [(-1.0, 0, None) for _ in members]  # (validation UAR, epoch, state)
    steps_taken = [0] * len(members)
    progress = tqdm(range(total_steps), desc=name, unit="step", mininterval=5)
    for _ in progress:
        plans = []
        for m, d in enumerate(data):
            if epoch_of[m] == params.epochs and batch_in_epoch[m] == 0:
                plans.append(None)  # done
                continue
            if batch_in_epoch[m] == 0:
                d.start_epoch()
            plans.append(plan_batch(d.next_batch(), d.n_labeled, d.labeled_lengths, d.unlabeled_lengths, frames, d.rng))
        if all(plan is None for plan in plans):
            break
        active = torch.tensor([plan is not None for plan in plans], device=device)
        sizes = [0 if plan is None else len(plan) for plan in plans]
        batch = max(sizes)
        with record_function("population.data"):  # phases named for benchmarks/paper_scale.py --profile
            step = _assemble(plans, data, members, labeled_bank, unlabeled_bank, batch, config, frames, pad, device)
        crops, labels, speech, video, is_labeled, has_target, present = step
        full = all(size == batch for size in sizes)
        present_t = None if full else present
        with record_function("population.forward"):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16"):
                sup, sd, vd = model.forward(crops.permute(1, 0, 2, 3), present_t)
            sup, sd, vd = sup.float(), sd.float(), vd.float()
        member_losses, entering = objectives.losses(
            {"sup_head": sup, "sd_head": sd, "vd_head": vd},
            labels,
            is_labeled,
            {"speech": speech, "video": video},
            has_target,
            torch.tensor(sizes, dtype=torch.float32, device=device),
        )
        optimizer.zero_grad()
        with record_function("population.backward"):
            member_losses.sum().backward()
        with record_function("population.optimizer"):
            optimizer.step({"": active, **{f"{head}.": active & rows.any(dim=1) for head, rows in entering.items()}})
        values = member_losses.detach().cpu().tolist()
        for m, d in enumerate(data):
            if plans[m] is None:
                continue
            steps_taken[m] += 1
            losses[m].append(values[m])
            batch_in_epoch[m] += 1
            if batch_in_epoch[m] == d.batches_per_epoch:
                batch_in_epoch[m] = 0
                epoch_of[m] += 1
                with record_function("population.validation"):
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16"):
                        best[m] = _end_epoch(
                            model, m, members[m], epoch_of[m], losses[m], rows[m], best[m], validation_windowing, device
                        )
                losses[m] = []
    results = []
    for m in range(len(members)):
        _, epoch, state = best[m]
        final = Student(config)
        final.load_state_dict(state if state is not None else model.member_state(m))
        results.append(
            MemberResult(
                final.eval(), epoch if state is not None else params.epochs, pd.DataFrame(rows[m]), steps_taken[m]
            )
        )
    return results


def _end_epoch(
    model: PopulationStudent,
    m: int,
    member: Member,
    epoch: int,
    losses: list[float],
    rows: list[dict],
    best: tuple,
    windowing: Windowing,
    device: torch.device,
) -> tuple:
    """Record the member's epoch; score its validation utterances and keep its weights when they are its best."""
    row = {"epoch": epoch, "train_loss": float(np.mean(losses))}
    if member.validation is None:
        rows.append(row)
        log.info("%s epoch %d: loss %.4f", member.name, epoch, row["train_loss"])
        return best
    student = model.member_model(m, device)
    scores = score(member.validation.labels, utterance_logits(student, member.validation.features, windowing))
    rows.append({**row, "validation_uar": scores.uar, "validation_war": scores.war})
    log.info("%s epoch %d: loss %.4f, validation UAR %.4f", member.name, epoch, row["train_loss"], scores.uar)
    if scores.uar > best[0]:
        return scores.uar, epoch, model.member_state(m)
    return best
