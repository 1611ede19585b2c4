"""The video teacher scores the unlabeled windows: the seven FERV39k class probabilities of each window's face
frames, written as a window-softmax table (:mod:`liser.window_tables`) with each window's ``face_fraction``,
incrementally: windows an earlier run of the same teacher (same weights fingerprint) already scored are taken from
the existing file, so adding segments scores only the new windows.  Stage ``video_softmaxes`` runs
:func:`video_window_softmaxes`; on a CPU with the same thread count it writes the same bytes on every run."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from liser.corpora.mspface import check_segment_id
from liser.models.s2d import S2D, S2DConfig, preprocess_clip
from liser.runtime import keep_freed_buffers, resolve_device
from liser.teachers.video_model import VIDEO_CLASSES, VIDEO_TEACHER_FILE, check_classes, load_video_teacher, logits
from liser.teachers.window_scores import teacher_fingerprint
from liser.unlabeled.faces import read_face_clip
from liser.window_tables import (
    WINDOW_COLUMNS,
    earlier_probabilities,
    read_window_table,
    softmax_frame,
    write_softmaxes,
)

__all__ = ["window_softmaxes", "video_window_softmaxes"]

log = logging.getLogger(__name__)


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
    batch_size: int,
    *,
    out: str | Path | None = None,
    device: str | torch.device | None = None,
) -> pd.DataFrame:
    """The teacher's FERV39k class probabilities for every window of the window table, as a window-softmax table
    (:func:`liser.window_tables.softmax_frame`, with each window's ``face_fraction``): one row per window, in the
    table's order.

    With ``out``, windows the same teacher already scored there (same segment, window and span) are taken from it
    and not scored again, and the table is written there.  Each window's frames ``first_frame..last_frame`` come
    from ``<faces_dir>/<segment>.mp4`` (a window running past the clip's end repeats its last frame).
    """
    missing = [column for column in WINDOW_COLUMNS if column not in windows.columns]
    if missing:
        raise ValueError(f"the window table lacks the columns {missing}")
    check_classes(model)
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
        probabilities[list(rows)] = torch.softmax(logits(model, batch), dim=-1).float().cpu().numpy()
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


def video_window_softmaxes(
    teacher: str | Path, windows: str | Path, faces: str | Path, out: str | Path, batch_size: int, threads: int
) -> dict:
    """Score every window of the window table with the video teacher in folder ``teacher`` into the window-softmax
    table ``out``, ``batch_size`` windows at a time (``video_teacher.eval_batch_size``) on ``threads`` threads
    (``video_teacher.threads``), with each window's ``face_fraction`` beside its softmaxes, for the students to leave
    out windows with little face."""
    keep_freed_buffers()
    torch.set_num_threads(threads)
    model, _ = load_video_teacher(Path(teacher) / VIDEO_TEACHER_FILE)
    table = window_softmaxes(model, read_window_table(windows), faces, batch_size, out=out)
    return {
        "windows": len(table),
        "segments": int(table["segment"].nunique()),
        "mean_p_max": float(table["p_max"].mean()),
    }
