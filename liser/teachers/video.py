"""The video teacher (section 3.2): S2D fine-tuned on FERV39k, scoring each 16-frame face window of the
unlabeled video with the seven FERV39k class probabilities.

Three jobs:

- :func:`train_video_teacher` fine-tunes S2D on the ``train`` split of a FERV39k-layout corpus
  (:mod:`liser.corpora.ferv39k`): a random 16-frame span of each clip per epoch (a shorter clip repeats its last
  frame), AdamW and cross-entropy, and the epoch with the best UAR on clips held out from the training split is
  kept.  The demo trains :meth:`S2DConfig.small` from scratch; with the published weights a caller builds the
  full network with :func:`build_video_teacher` and passes it in.
- :func:`evaluate_video_teacher`: UAR, WAR and confusion of whole clips.  A clip longer than 16 frames is
  scored, as the original S2D evaluation does, by averaging the probabilities of its first and last 16 frames.
- :func:`window_softmaxes` scores the window table from the face clips ``<faces_dir>/<segment>.mp4`` into a
  window-softmax table (:mod:`liser.window_tables`).

Frames are preprocessed as the spec says (:func:`liser.models.s2d.preprocess_clip`: bilinear antialiased resize
to the model's image size, /255, ImageNet mean and std).  For training, each clip is resized once when loaded and
kept as uint8 (the same resize, rounded), and the frozen landmark branch's maps are computed once per frame
(:meth:`S2D.landmark_features` under ``no_grad``) rather than in every epoch: the branch is per frame and frozen,
so a span's maps are the maps of its frames.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F
from tqdm import tqdm

from liser.corpora.ferv39k import CLASSES, read_clip_frames
from liser.corpora.mspface import check_segment_id
from liser.metrics import Scores, score
from liser.models.s2d import S2D, S2DConfig, pad_clip, preprocess_clip, preprocess_frames
from liser.models.s2d_checkpoint import load_mobilefacenet, load_s2d, load_s2d_checkpoint, save_s2d
from liser.runtime import resolve_device
from liser.teachers.window_scores import teacher_fingerprint
from liser.training import seed_everything, shuffled_batches, train_best_epoch
from liser.unlabeled.faces import read_face_clip
from liser.window_tables import WINDOW_KEYS, earlier_probabilities, softmax_frame, write_softmaxes

__all__ = [
    "VIDEO_CLASSES",
    "VideoTeacherResult",
    "build_video_teacher",
    "save_video_teacher",
    "load_video_teacher",
    "clip_views",
    "train_video_teacher",
    "predict_clips",
    "evaluate_video_teacher",
    "window_softmaxes",
]

log = logging.getLogger(__name__)

VIDEO_CLASSES = tuple(name.lower() for name in CLASSES)  # FERV39k's, in its order: the window tables' p_<class>
_WINDOW_NEEDS = (*WINDOW_KEYS, "first_frame", "last_frame", "face_fraction")


def _check_classes(model: S2D) -> None:
    if model.config.classes != len(CLASSES):
        raise ValueError(f"the video teacher has {len(CLASSES)} FERV39k classes; this S2D has {model.config.classes}")


# --- the model -----------------------------------------------------------------------------------------------


def build_video_teacher(
    config: S2DConfig | None = None,
    checkpoint: str | Path | None = None,
    mobilefacenet: str | Path | None = None,
    *,
    seed: int = 0,
    allow_missing: Sequence[str] = (),
) -> S2D:
    """S2D for the seven FERV39k classes.

    ``checkpoint``, a published S2D file (``cyinen/S2D``), is loaded strictly (``allow_missing``: patterns of keys
    the file may lack, see :func:`load_s2d_checkpoint`); ``mobilefacenet``, the landmark branch's published file.
    Without them the weights are fresh, drawn from ``seed``.  ``config`` defaults to the full network with a
    checkpoint and to :meth:`S2DConfig.small` without.
    """
    if config is None:
        config = S2DConfig.full() if checkpoint is not None else S2DConfig.small()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = S2D(config)
    _check_classes(model)
    if mobilefacenet is not None:
        load_mobilefacenet(mobilefacenet, model.landmark)
    if checkpoint is not None:
        info = load_s2d_checkpoint(checkpoint, model, allow_missing)
        log.info("video teacher: %s checkpoint %s (epoch %s)", info.layout, checkpoint, info.epoch)
    return model


def save_video_teacher(path: str | Path, model: S2D, **info: object) -> None:
    """One safetensors file: S2D, its landmark branch, the configuration, the class names and ``info``."""
    _check_classes(model)
    save_s2d(path, model, classes=list(CLASSES), **info)


def load_video_teacher(path: str | Path) -> tuple[S2D, dict]:
    """A teacher written by :func:`save_video_teacher`, in eval mode, and its recorded info."""
    model, classes, info = load_s2d(path)
    if classes != list(CLASSES):
        raise ValueError(f"{path}: classes {classes} are not the FERV39k classes {list(CLASSES)}")
    return model, info


def _logits(model: S2D, clips: torch.Tensor, landmarks: torch.Tensor | None = None) -> torch.Tensor:
    """Float32 logits; half precision under autocast on a GPU, float32 on a CPU."""
    if clips.device.type == "cuda":
        with torch.autocast(device_type="cuda", dtype=torch.float16):
            return model(clips, landmarks).float()
    return model(clips, landmarks)


# --- clips of the corpus -------------------------------------------------------------------------------------


def clip_views(n_frames: int, frames: int = 16) -> list[int]:
    """First frames of the spans a clip is scored on: its first and its last ``frames`` (one span if short)."""
    if n_frames <= frames:
        return [0]
    return [0, n_frames - frames]


def _resized(frames: np.ndarray, size: int) -> torch.Tensor:
    """(n, H, W, 3) uint8 -> (n, size, size, 3) uint8, with :func:`preprocess_frames`' resize, rounded."""
    x = torch.from_numpy(np.ascontiguousarray(frames))
    if tuple(x.shape[1:3]) == (size, size):
        return x
    x = F.interpolate(
        x.permute(0, 3, 1, 2).float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


@torch.no_grad()
def _frame_landmarks(model: S2D, frames: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(n, S, S, 3) uint8 frames at the model's size -> (n, 128, g, g) landmark maps on the CPU, one per frame."""
    steps = model.config.frames
    chunks = -(-len(frames) // steps)
    padded = pad_clip(frames, chunks * steps)  # the branch takes whole T-frame clips; the padding is dropped below
    clips = preprocess_frames(padded, model.config.image_size)  # (3, chunks * T, S, S)
    clips = clips.view(3, chunks, steps, *clips.shape[-2:]).transpose(0, 1).to(device)
    maps = model.landmark_features(clips).float().cpu()  # (chunks, T, 128, g, g)
    return maps.reshape(chunks * steps, *maps.shape[2:])[: len(frames)].contiguous()


class _ClipSource:
    """A set of corpus clips, served as preprocessed 16-frame spans.

    Preloaded: every clip is read once, resized to the model's size (kept as uint8) and its landmark maps are
    computed once; a span's maps are then passed to the forward pass.  Otherwise each span is read from disk
    when asked for and preprocessed by :func:`preprocess_clip`, and the forward pass runs the landmark branch.
    """

    def __init__(self, model: S2D, table: pd.DataFrame, what: str, preload: bool, device: torch.device):
        self.config = model.config
        self.clips = list(table["clip"])
        self.labels = table["label"].to_numpy(dtype=np.int64)
        self.folders = list(table["folder"])
        self.lengths = [int(n) for n in table["n_frames"]]
        self.frames: list[torch.Tensor] | None = None  # (n, S, S, 3) uint8 each
        self.landmarks: list[torch.Tensor] | None = None  # (n, 128, g, g) float32 each
        if preload:
            self.frames, self.landmarks = [], []
            for folder in tqdm(self.folders, desc=f"loading {what} clips", unit="clip"):
                resized = _resized(read_clip_frames(folder), self.config.image_size)
                self.frames.append(resized)
                self.landmarks.append(_frame_landmarks(model, resized, device))
            self.lengths = [len(frames) for frames in self.frames]

    def __len__(self) -> int:
        return len(self.clips)

    def batch(self, spans: Sequence[tuple[int, int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, 3, T, S, S) clips for (clip index, first frame) pairs, and their (B, T, 128, g, g) maps if preloaded."""
        steps, size = self.config.frames, self.config.image_size
        if self.frames is None:
            read = [read_clip_frames(self.folders[i], start, steps) for i, start in spans]
            return torch.stack([preprocess_clip(frames, self.config) for frames in read]).to(device), None
        clips = [preprocess_frames(pad_clip(self.frames[i][start : start + steps], steps), size) for i, start in spans]
        maps = [pad_clip(self.landmarks[i][start : start + steps], steps) for i, start in spans]
        return torch.stack(clips).to(device), torch.stack(maps).to(device)


def _source_probabilities(model: S2D, source: _ClipSource, batch_size: int, device: torch.device) -> np.ndarray:
    """(N, C) probabilities of a clip source's clips, each the mean over :func:`clip_views`."""
    c = model.config
    views = [(i, start) for i, n in enumerate(source.lengths) for start in clip_views(n, c.frames)]
    totals = np.zeros((len(source), c.classes), dtype=np.float64)
    counts = np.zeros(len(source))
    model.eval()
    with torch.inference_mode():
        for begin in range(0, len(views), batch_size):
            chunk = views[begin : begin + batch_size]
            clips, maps = source.batch(chunk, device)
            probabilities = torch.softmax(_logits(model, clips, maps), dim=-1).cpu().numpy()
            for (i, _), row in zip(chunk, probabilities):
                totals[i] += row
                counts[i] += 1
    return (totals / counts[:, None]).astype(np.float32)


# --- training ------------------------------------------------------------------------------------------------


def _validation_mask(train: pd.DataFrame, fraction: float, seed: int, group_column: str | None) -> np.ndarray:
    """Which training clips select the epoch: about ``fraction`` of each class's clips, or of whole groups."""
    rng = np.random.default_rng([seed, 1])
    held_out = np.zeros(len(train), dtype=bool)
    if group_column is not None:
        groups = np.array(sorted(train[group_column].astype(str).unique()))
        if len(groups) < 2:
            raise ValueError(f"{len(groups)} {group_column!r} group(s) cannot be split into training and validation")
        wanted = min(len(groups) - 1, max(1, round(fraction * len(groups))))
        return train[group_column].astype(str).isin(rng.permutation(groups)[:wanted]).to_numpy()
    for label in sorted(train["label"].unique()):
        members = np.flatnonzero(train["label"].to_numpy() == label)
        if len(members) >= 2:
            wanted = min(len(members) - 1, max(1, round(fraction * len(members))))
            held_out[rng.permutation(members)[:wanted]] = True
    if not held_out.any():
        raise ValueError("too few training clips to hold any out for validation (each class needs two)")
    return held_out


@dataclass
class VideoTeacherResult:
    model: S2D  # holding the best-validation epoch's weights, in eval mode, on the CPU
    best_epoch: int
    history: pd.DataFrame  # epoch, train_loss, validation_uar, validation_war
    validation_clips: list[str]  # the training clips that selected the epoch


def _warmup_cosine(warmup_steps: int, total_steps: int):
    """Learning-rate factor per step: linear from near 0 to 1 over ``warmup_steps``, then a cosine down to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def train_video_teacher(
    corpus_table: pd.DataFrame,
    config: S2DConfig | None = None,
    *,
    model: S2D | None = None,
    epochs: int = 8,
    lr: float = 5e-4,
    weight_decay: float = 0.05,
    warmup_epochs: float = 1.0,
    max_grad_norm: float | None = 1.0,
    batch_size: int = 8,
    seed: int = 0,
    threads: int | None = None,
    validation_fraction: float = 0.15,
    group_column: str | None = None,
    eval_batch_size: int = 16,
    preload: bool = True,
    device: str | torch.device | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> VideoTeacherResult:
    """Fine-tune S2D on the ``train`` clips of ``corpus_table`` (a FERV39k-layout clip table).

    ``model`` (e.g. from :func:`build_video_teacher` with the published weights) is trained in place; without it a
    fresh S2D of ``config`` (the small one by default) is built from ``seed``.  About ``validation_fraction`` of
    each class's training clips, or of the groups in ``group_column`` when given (e.g. identities), are held out
    to pick the epoch with the best UAR (ties keep the earlier epoch).  On a CPU, the same seed and ``threads``
    repeat a run exactly.  Training runs in float32, on a GPU too.

    ``preload`` keeps every training clip, resized, and its landmark maps in memory (about 62 KB a frame for the
    small model, 250 KB at full size): fast, and right for the demo.  Without it each batch is read from disk
    and the landmark branch runs in every forward pass, so memory stays flat on a corpus of FERV39k's size.
    ``on_epoch``: as in :func:`liser.training.train_best_epoch`.
    """
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be between 0 and 1, got {validation_fraction}")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be at least 1, got {epochs} and {batch_size}")
    rng = seed_everything(seed, threads if threads is not None else torch.get_num_threads())
    if model is None:
        model = build_video_teacher(config or S2DConfig.small(), seed=seed)
    elif config is not None and config != model.config:
        raise ValueError("config and the given model's config differ")
    _check_classes(model)
    c = model.config
    device = resolve_device(device)
    train = corpus_table[corpus_table["split"] == "train"].reset_index(drop=True)
    if train.empty:
        raise ValueError("the corpus table has no train clips")
    held_out = _validation_mask(train, validation_fraction, seed, group_column)
    model.to(device)
    fitting = _ClipSource(model, train[~held_out], "training", preload, device)
    validation = _ClipSource(model, train[held_out], "validation", preload, device)
    log.info("video teacher: %d training clips, %d validation clips", len(fitting), len(validation))

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)
    steps_per_epoch = -(-len(fitting) // batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _warmup_cosine(round(warmup_epochs * steps_per_epoch), epochs * steps_per_epoch)
    )

    def train_epoch(epoch: int) -> float:
        model.train()
        losses = []
        for batch in shuffled_batches(len(fitting), batch_size, rng):
            # a random T-frame span of each clip; a clip of T frames or fewer is taken whole (and padded)
            spans = [(int(i), int(rng.integers(0, max(1, fitting.lengths[i] - c.frames + 1)))) for i in batch]
            clips, maps = fitting.batch(spans, device)
            loss = F.cross_entropy(model(clips, maps), torch.from_numpy(fitting.labels[batch]).to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        return float(np.mean(losses))

    def validate() -> Scores:
        return score(validation.labels, _source_probabilities(model, validation, eval_batch_size, device))

    best_epoch, history = train_best_epoch(
        model, epochs, train_epoch, validate, name="video teacher", on_epoch=on_epoch
    )
    model.to("cpu")
    model.eval()
    return VideoTeacherResult(model, best_epoch, history, list(validation.clips))


# --- scoring clips -------------------------------------------------------------------------------------------


@torch.inference_mode()
def predict_clips(
    model: S2D, corpus_table: pd.DataFrame, batch_size: int = 8, device: str | torch.device | None = None
) -> np.ndarray:
    """(N, 7) class probabilities of the table's clips, each the mean over :func:`clip_views`."""
    _check_classes(model)
    device = resolve_device(device)
    model.eval().to(device)
    c = model.config
    totals = np.zeros((len(corpus_table), c.classes), dtype=np.float64)
    views = np.zeros(len(corpus_table))
    pending: list[tuple[int, torch.Tensor]] = []

    def flush() -> None:
        rows, clips = zip(*pending)
        batch = torch.softmax(_logits(model, torch.stack(clips).to(device)), dim=-1).float().cpu().numpy()
        for row, scored in zip(rows, batch):
            totals[row] += scored
            views[row] += 1
        pending.clear()

    for row, folder in enumerate(tqdm(corpus_table["folder"], desc="video teacher clips", unit="clip")):
        frames = read_clip_frames(folder)
        for start in clip_views(len(frames), c.frames):
            pending.append((row, preprocess_clip(frames[start : start + c.frames], c)))
            if len(pending) == batch_size:
                flush()
    if pending:
        flush()
    return (totals / views[:, None]).astype(np.float32)


def evaluate_video_teacher(
    model: S2D,
    corpus_table: pd.DataFrame,
    split: str = "test",
    batch_size: int = 8,
    device: str | torch.device | None = None,
) -> dict:
    """UAR, WAR and confusion (true classes as rows, FERV39k order) of the ``split`` clips; ``clips`` counted."""
    clips = corpus_table[corpus_table["split"] == split].reset_index(drop=True)
    if clips.empty:
        raise ValueError(f"the corpus table has no {split!r} clips")
    scores = score(clips["label"].to_numpy(dtype=np.int64), predict_clips(model, clips, batch_size, device))
    return {"uar": scores.uar, "war": scores.war, "confusion": scores.confusion.tolist(), "clips": len(clips)}


# --- scoring the unlabeled windows ---------------------------------------------------------------------------


def _window_clips(
    windows: pd.DataFrame, rows: np.ndarray, faces_dir: Path, config: S2DConfig
) -> Iterator[tuple[int, torch.Tensor]]:
    """(row, preprocessed clip) for each window in ``rows``, reading each segment's face clip once."""
    pending = windows.iloc[rows].assign(row=rows)
    for segment, members in pending.groupby("segment", sort=False):
        frames = read_face_clip(faces_dir / f"{check_segment_id(segment)}.mp4")
        for row, first, last in zip(members["row"], members["first_frame"], members["last_frame"]):
            span = frames[int(first) : int(last) + 1]
            if len(span) == 0:
                raise ValueError(f"{segment}: window at frames {first}-{last}, but its face clip has {len(frames)}")
            if len(span) < int(last) - int(first) + 1:
                log.debug(
                    "%s: frames %d-%d run past the clip's %d frames; the last is repeated",
                    segment,
                    first,
                    last,
                    len(frames),
                )
            yield int(row), preprocess_clip(span, config)


@torch.inference_mode()
def window_softmaxes(
    model: S2D,
    windows: pd.DataFrame,
    faces_dir: str | Path,
    batch_size: int = 8,
    device: str | torch.device | None = None,
    out: str | Path | None = None,
) -> pd.DataFrame:
    """The teacher's FERV39k class probabilities for every window of the window table, as a window-softmax table
    (:func:`liser.window_tables.softmax_frame`, with each window's ``face_fraction``): one row per window, in the
    table's order.

    With ``out``, windows the same teacher already scored there (same segment, window and span) are taken from it
    and not scored again, and the table is written there.  Each window's frames ``first_frame..last_frame`` come
    from ``<faces_dir>/<segment>.mp4`` (a window running past the clip's end repeats its last frame).
    """
    missing = [column for column in _WINDOW_NEEDS if column not in windows.columns]
    if missing:
        raise ValueError(f"the window table lacks the columns {missing}")
    _check_classes(model)
    device = resolve_device(device)
    model.eval().to(device)
    windows = windows.reset_index(drop=True)
    fingerprint = teacher_fingerprint(model)
    probabilities = earlier_probabilities(windows, out, VIDEO_CLASSES, fingerprint)
    todo = np.flatnonzero(np.isnan(probabilities).any(axis=1))
    log.info("video teacher: scoring %d windows, %d taken from earlier results", len(todo), len(windows) - len(todo))
    pending: list[tuple[int, torch.Tensor]] = []

    def flush() -> int:
        rows, clips = zip(*pending)
        batch = torch.stack(clips).to(device)
        probabilities[list(rows)] = torch.softmax(_logits(model, batch), dim=-1).float().cpu().numpy()
        pending.clear()
        return len(rows)

    with tqdm(total=len(todo), desc="video teacher windows", unit="window") as progress:
        for row, clip in _window_clips(windows, todo, Path(faces_dir), model.config):
            pending.append((row, clip))
            if len(pending) == batch_size:
                progress.update(flush())
        if pending:
            progress.update(flush())
    table = softmax_frame(windows, probabilities, VIDEO_CLASSES, windows["face_fraction"].to_numpy())
    if out is not None:
        write_softmaxes(out, table, VIDEO_CLASSES, fingerprint)
    return table
