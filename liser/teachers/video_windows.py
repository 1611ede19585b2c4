"""The video teacher scores the unlabeled windows: the seven FERV39k class probabilities of each window's face
frames, written as a window-softmax table (:mod:`liser.window_tables`) with each window's ``face_fraction``,
incrementally: windows an earlier run of the same teacher (same weights fingerprint) already scored are taken from
the existing file, so adding segments scores only the new windows, and a run stopped part way resumes from the
table it last saved.  Stage ``video_softmaxes`` runs
:func:`video_window_softmaxes`; on a CPU with the same thread count it writes the same bytes on every run."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from liser.models.s2d import S2D, S2DConfig, preprocess_clip
from liser.params import RuntimeParams
from liser.runtime import keep_freed_buffers, resolve_device
from liser.teachers.video_model import (
    VIDEO_CLASSES,
    VIDEO_TEACHER_FILE,
    check_classes,
    load_video_teacher,
    logits,
    save_video_teacher,
)
from liser.teachers.window_scores import (
    BATCHES_PER_CHUNK,
    CHECKPOINT_EVERY,
    ChunkScorer,
    fill_in,
    full_batch,
    scores_on_ray,
    teacher_fingerprint,
)
from liser.unlabeled.face_crops import face_inputs, face_source, segment_faces
from liser.unlabeled.faces import aligned_frames, read_face_clip
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
    windows: pd.DataFrame, rows: np.ndarray, faces_of: Callable[[str], np.ndarray], config: S2DConfig
) -> Iterator[tuple[int, torch.Tensor]]:
    """(row, preprocessed clip) for each window in ``rows``, getting each segment's faces once from ``faces_of``."""
    pending = windows.iloc[rows].assign(row=rows)
    for segment, members in pending.groupby("segment", sort=False):
        frames = faces_of(segment)
        for row, first, last in zip(members["row"], members["first_frame"], members["last_frame"]):
            span = frames[int(first) : int(last) + 1]
            if len(span) == 0:
                raise ValueError(f"{segment}: window at frames {first}-{last}, but its faces have {len(frames)}")
            if len(span) < int(last) - int(first) + 1:
                log.debug(
                    "%s: frames %d-%d run past the clip's %d frames; the last is repeated",
                    segment,
                    first,
                    last,
                    len(frames),
                )
            yield int(row), preprocess_clip(span, config)


def _probabilities(model: S2D, clips: list[torch.Tensor], batch_size: int, device: torch.device) -> np.ndarray:
    """One of the model's batches (run at ``batch_size``, :func:`full_batch`): the seven probabilities of each clip."""
    batch = torch.stack(full_batch(clips, batch_size)).to(device)
    return torch.softmax(logits(model, batch), dim=-1).float().cpu().numpy()[: len(clips)]


def _local_faces(faces_dir: Path, segment: str) -> np.ndarray:
    kind, source = face_source(faces_dir, segment)
    return read_face_clip(source) if kind == "clip" else aligned_frames(source)


class _VideoScorer(ChunkScorer):
    """A Ray Data actor holding the video teacher (its file's bytes, or its path)."""

    def __init__(self, teacher: bytes | str, threads: int, batch_size: int):
        super().__init__(threads)
        keep_freed_buffers()
        if isinstance(teacher, bytes):
            path = Path(self.scratch.name) / VIDEO_TEACHER_FILE
            path.write_bytes(teacher)
            teacher = str(path)
        self.device = resolve_device(None)
        self.model = load_video_teacher(teacher)[0].eval().to(self.device)
        self.batch_size = batch_size

    @torch.inference_mode()
    def score(self, chunk: dict) -> np.ndarray:
        windows = pd.DataFrame(chunk["windows"], columns=["segment", "first_frame", "last_frame"])

        def faces_of(segment: str) -> np.ndarray:
            return segment_faces(chunk["faces"][segment])

        clips = [clip for _, clip in _window_clips(windows, np.arange(len(windows)), faces_of, self.model.config)]
        return np.concatenate(
            [
                _probabilities(self.model, clips[start : start + self.batch_size], self.batch_size, self.device)
                for start in range(0, len(clips), self.batch_size)
            ]
        )


def _scores_on_ray(
    model: S2D,
    windows: pd.DataFrame,
    todo: np.ndarray,
    faces_dir: Path,
    batch_size: int,
    runtime: RuntimeParams,
    threads: int,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The probabilities of the windows ``todo``, scored on Ray in chunks of whole batches of ``batch_size``; the
    teacher is sent to its actors as the bytes of its file."""
    with tempfile.TemporaryDirectory(prefix="liser-teacher-") as folder:
        saved = Path(folder) / VIDEO_TEACHER_FILE
        save_video_teacher(saved, model)
        settings = {"teacher": saved.read_bytes(), "threads": threads, "batch_size": batch_size}
        step = BATCHES_PER_CHUNK * batch_size

        def chunks() -> Iterator[tuple[np.ndarray, dict]]:
            for start in range(0, len(todo), step):
                rows = todo[start : start + step]
                members = windows.iloc[rows]
                segments = list(dict.fromkeys(members["segment"]))
                faces = {segment: face_inputs(faces_dir, segment, runtime) for segment in segments}
                spans = list(zip(members["segment"], members["first_frame"], members["last_frame"]))
                yield rows, {"windows": spans, "faces": faces}

        yield from scores_on_ray(_VideoScorer, settings, chunks(), len(VIDEO_CLASSES), runtime, threads)


def _scores_here(
    model: S2D, windows: pd.DataFrame, todo: np.ndarray, faces_dir: Path, batch_size: int, device: torch.device
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The probabilities of the windows ``todo``, scored in this process a batch of ``batch_size`` at a time."""
    pending: list[tuple[int, torch.Tensor]] = []
    for row, clip in _window_clips(windows, todo, partial(_local_faces, faces_dir), model.config):
        pending.append((row, clip))
        if len(pending) == batch_size:
            rows, clips = zip(*pending)
            yield np.array(rows), _probabilities(model, list(clips), batch_size, device)
            pending.clear()
    if pending:
        rows, clips = zip(*pending)
        yield np.array(rows), _probabilities(model, list(clips), batch_size, device)


@torch.inference_mode()
def window_softmaxes(
    model: S2D,
    windows: pd.DataFrame,
    faces_dir: str | Path,
    batch_size: int,
    *,
    out: str | Path | None = None,
    device: str | torch.device | None = None,
    runtime: RuntimeParams | None = None,
    threads: int = 1,
    checkpoint_every: int = CHECKPOINT_EVERY,
) -> pd.DataFrame:
    """The teacher's FERV39k class probabilities for every window of the window table, as a window-softmax table
    (:func:`liser.window_tables.softmax_frame`, with each window's ``face_fraction``): one row per window, in the
    table's order.

    With ``out``, windows the same teacher already scored there (same segment, window and span) are taken from it
    and not scored again, and the table is written there atomically, also as they are scored (:func:`fill_in`, at
    least ``checkpoint_every`` windows apart) so an interrupted run resumes.  Each window's frames
    ``first_frame..last_frame`` are its segment's faces (:func:`liser.unlabeled.face_crops.face_source`: the kept
    crops ``<faces_dir>/<segment>.mp4``, or aligned from the segment's video with its track as they are scored); a
    window running past the faces' end repeats the last frame.  With ``runtime.cluster: ray`` the windows are scored
    on the cluster through Ray Data (:mod:`liser.teachers.window_scores`, actors of ``threads`` threads), in the
    same batches: the same probabilities.
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
    if runtime is not None and runtime.cluster == "ray":
        scored = _scores_on_ray(model, windows, todo, Path(faces_dir), batch_size, runtime, threads)
    else:
        scored = _scores_here(model, windows, todo, Path(faces_dir), batch_size, device)
    face_fractions = windows["face_fraction"].to_numpy()

    def table_of(done: np.ndarray) -> pd.DataFrame:
        return softmax_frame(windows[done], probabilities[done], VIDEO_CLASSES, face_fractions[done])

    write = None if out is None else partial(write_softmaxes, out, classes=VIDEO_CLASSES, teacher=fingerprint)
    return fill_in(probabilities, scored, table_of, write, checkpoint_every, "video teacher windows")


def video_window_softmaxes(
    teacher: str | Path,
    windows: str | Path,
    faces: str | Path,
    out: str | Path,
    batch_size: int,
    threads: int,
    runtime: RuntimeParams | None = None,
) -> dict:
    """Score every window of the window table with the video teacher in folder ``teacher`` into the window-softmax
    table ``out``, ``batch_size`` windows at a time (``video_teacher.eval_batch_size``) on ``threads`` threads
    (``video_teacher.threads``), with each window's ``face_fraction`` beside its softmaxes, for the students to leave
    out windows with little face; on a Ray cluster with ``runtime.cluster: ray``."""
    keep_freed_buffers()
    torch.set_num_threads(threads)
    model, _ = load_video_teacher(Path(teacher) / VIDEO_TEACHER_FILE)
    window_table = read_window_table(windows)
    table = window_softmaxes(model, window_table, faces, batch_size, out=out, runtime=runtime, threads=threads)
    return {
        "windows": len(table),
        "segments": int(table["segment"].nunique()),
        "mean_p_max": float(table["p_max"].mean()),
    }
