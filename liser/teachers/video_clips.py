"""The clips of a FERV39k-layout corpus as the video teacher sees them: 16-frame spans, preprocessed as the spec
says (:func:`liser.models.s2d.preprocess_clip`: bilinear antialiased resize to the model's image size, /255,
ImageNet mean and std), and a clip's class probabilities, the mean over its first and last 16 frames as the
original S2D evaluation scores a longer clip; UAR, WAR and confusion of a split's clips.

For training, each clip can be preloaded: resized once (kept as uint8, the same resize, rounded) and the frozen
landmark branch's maps computed once per frame (:meth:`S2D.landmark_features` under ``no_grad``) rather than in
every epoch: the branch is per frame and frozen, so a span's maps are the maps of its frames.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F
from tqdm import tqdm

from liser.corpora.ferv39k import read_clip_frames
from liser.metrics import score
from liser.models.s2d import S2D, pad_clip, preprocess_clip, preprocess_frames
from liser.runtime import resolve_device
from liser.teachers.video_model import check_classes, logits

__all__ = ["clip_views", "ClipSource", "clip_probabilities", "predict_clips", "evaluate_video_teacher"]


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


class ClipSource:
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


@torch.inference_mode()
def clip_probabilities(model: S2D, source: ClipSource, batch_size: int, device: torch.device) -> np.ndarray:
    """(N, C) probabilities of a clip source's clips, each the mean over :func:`clip_views`."""
    c = model.config
    views = [(i, start) for i, n in enumerate(source.lengths) for start in clip_views(n, c.frames)]
    totals = np.zeros((len(source), c.classes), dtype=np.float64)
    counts = np.zeros(len(source))
    model.eval()
    for begin in tqdm(range(0, len(views), batch_size), desc="video teacher clips", unit="batch", leave=False):
        chunk = views[begin : begin + batch_size]
        clips, maps = source.batch(chunk, device)
        probabilities = torch.softmax(logits(model, clips, maps), dim=-1).float().cpu().numpy()
        for (i, _), row in zip(chunk, probabilities):
            totals[i] += row
            counts[i] += 1
    return (totals / counts[:, None]).astype(np.float32)


def predict_clips(
    model: S2D, corpus_table: pd.DataFrame, batch_size: int, device: str | torch.device | None = None
) -> np.ndarray:
    """(N, 7) class probabilities of the table's clips, read from disk, each the mean over :func:`clip_views`."""
    check_classes(model)
    device = resolve_device(device)
    model.eval().to(device)
    return clip_probabilities(model, ClipSource(model, corpus_table, "scored", False, device), batch_size, device)


def evaluate_video_teacher(
    model: S2D, corpus_table: pd.DataFrame, split: str, batch_size: int, device: str | torch.device | None = None
) -> dict:
    """UAR, WAR and confusion (true classes as rows, FERV39k order) of the ``split`` clips; ``clips`` counted."""
    clips = corpus_table[corpus_table["split"] == split].reset_index(drop=True)
    if clips.empty:
        raise ValueError(f"the corpus table has no {split!r} clips")
    scores = score(clips["label"].to_numpy(dtype=np.int64), predict_clips(model, clips, batch_size, device))
    return {"uar": scores.uar, "war": scores.war, "confusion": scores.confusion.tolist(), "clips": len(clips)}
