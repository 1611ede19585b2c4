"""The speech teacher scores the unlabeled windows: the class probabilities of each window's audio span, written
as a window-softmax table (:mod:`liser.window_tables`), incrementally; and the stages that do it for each fold's
teacher (``speech_softmaxes``, ``speech_softmaxes_labeled``: :func:`speech_window_softmaxes`)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from liser.features import load_audio
from liser.files import atomic_path
from liser.runtime import keep_freed_buffers, resolve_device
from liser.teachers.speech_input import SAMPLE_RATE, padded_batch, waveform_input
from liser.teachers.speech_model import fold_folder, load_speech_teacher, logits
from liser.teachers.window_scores import teacher_fingerprint
from liser.window_tables import earlier_probabilities, read_softmaxes, read_window_table, softmax_frame, write_softmaxes

__all__ = ["CHECKPOINT_EVERY", "window_softmaxes", "speech_window_softmaxes"]

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 20000  # newly scored windows between two writes of the table, so an interrupted run resumes


def _window_spans(windows: pd.DataFrame, rows: np.ndarray, manifest: pd.DataFrame) -> Iterator[tuple[int, np.ndarray]]:
    """(row, audio) for each window in ``rows``, reading each segment's wav once.

    A span is samples round(start_s * rate) to round(end_s * rate); the few samples a window
    may run past the end of a segment's audio are zeros.
    """
    paths = dict(zip(manifest["utterance"], manifest["path"]))
    pending = windows.iloc[rows].assign(row=rows)
    missing = sorted(set(pending["segment"]) - set(paths))
    if missing:
        raise ValueError(f"{len(missing)} segments of the window table are not in the manifest, e.g. {missing[:3]}")
    for segment, members in pending.groupby("segment", sort=False):
        audio = load_audio(paths[segment], SAMPLE_RATE)
        for row, start_s, end_s in zip(members["row"], members["start_s"], members["end_s"]):
            start, stop = round(start_s * SAMPLE_RATE), round(end_s * SAMPLE_RATE)
            span = audio[start:stop]
            short = stop - start - len(span)
            if short > 0:
                log.debug("%s: the window at %.3f s runs %d samples past the audio", segment, start_s, short)
                span = np.pad(span, (0, short))
            yield row, span


@torch.inference_mode()
def window_softmaxes(
    model: torch.nn.Module,
    manifest: pd.DataFrame,
    windows: pd.DataFrame,
    batch_size: int,
    *,
    classes: Sequence[str],
    out: str | Path | None = None,
    device: str | torch.device | None = None,
    checkpoint_every: int = CHECKPOINT_EVERY,
) -> pd.DataFrame:
    """The teacher's class probabilities for every window of the window table, as a window-softmax table
    (:func:`liser.window_tables.softmax_frame`): one row per window, in the table's order, a column per class of
    ``classes``.

    With ``out``, windows already scored there by the same teacher (:func:`teacher_fingerprint`, same segment,
    window and span) are reused, only the others are scored, and the union is written back atomically, also every
    ``checkpoint_every`` new windows so an interrupted run resumes.  Windows of the same length are batched
    together, so no padding ever enters the model and a window's probabilities do not depend on its batch; each
    window is one utterance to the model, normalised on its own where the teacher's input convention says so.
    """
    device = resolve_device(device)
    model.eval().to(device)
    out = None if out is None else Path(out)
    classes = list(classes)
    if len(classes) != model.config.num_labels:
        raise ValueError(f"{len(classes)} class names for {model.config.num_labels} outputs")
    windows = windows.reset_index(drop=True)
    fingerprint = teacher_fingerprint(model)
    probabilities = earlier_probabilities(windows, out, classes, fingerprint)
    todo = np.flatnonzero(np.isnan(probabilities).any(axis=1))
    log.info("scoring %d windows, %d reused from earlier results", len(todo), len(windows) - len(todo))
    convention = waveform_input(model)
    buckets: dict[int, list[tuple[int, np.ndarray]]] = {}
    scored_since_save = 0

    def scored_so_far() -> pd.DataFrame:
        done = ~np.isnan(probabilities).any(axis=1)
        return softmax_frame(windows[done], probabilities[done], classes)

    def flush(length: int) -> int:
        rows, spans = zip(*buckets.pop(length))
        batch, _ = padded_batch(spans, convention, device)  # same-length windows: no padding, nothing to mask
        probabilities[list(rows)] = torch.softmax(logits(model, batch), dim=-1).cpu().numpy()
        return len(rows)

    with tqdm(total=len(todo), desc="speech teacher windows", unit="window") as progress:
        for row, span in _window_spans(windows, todo, manifest):
            buckets.setdefault(len(span), []).append((row, span))
            if len(buckets[len(span)]) == batch_size:
                done = flush(len(span))
                progress.update(done)
                scored_since_save += done
            if out is not None and scored_since_save >= checkpoint_every:
                write_softmaxes(out, scored_so_far(), classes, fingerprint)
                scored_since_save = 0
        for length in sorted(buckets):
            progress.update(flush(length))
    table = scored_so_far()
    if out is not None:
        write_softmaxes(out, table, classes, fingerprint)
    return table


def speech_window_softmaxes(
    teachers: str | Path,
    folds_to_run: list[int],
    base: str | Path,
    manifest: str | Path,
    windows: str | Path,
    out: str | Path,
    batch_size: int,
    threads: int,
    reuse_from: str | Path | None = None,
) -> dict:
    """Score the window table with each fold's speech teacher into ``out/fold<k>.parquet``, ``batch_size`` windows at a
    time (``speech_teacher.eval_batch_size``) on ``threads`` threads (``speech_teacher.threads``); ``base`` is the
    pretrained model the teachers were trained on.  ``reuse_from``: a folder of earlier ``fold<k>.parquet`` whose
    windows are taken over where the same teacher scored them (Figure 2's runs with ``label_efficiency.teacher: all``
    score nothing again)."""
    keep_freed_buffers()
    torch.set_num_threads(threads)
    audio = pd.read_parquet(manifest)
    window_table = read_window_table(windows)
    windows, confidence = [], []
    for fold in folds_to_run:
        model, classes, _ = load_speech_teacher(fold_folder(teachers, fold), base)
        target = Path(out) / f"fold{fold}.parquet"
        if reuse_from is not None and not target.exists():
            _take_over(Path(reuse_from) / f"fold{fold}.parquet", target, teacher_fingerprint(model))
        table = window_softmaxes(model, audio, window_table, batch_size, classes=classes, out=target)
        windows.append(len(table))
        confidence.append(float(table["p_max"].mean()))
    # the figures to compare across experiments: windows scored, and the teachers' mean confidence (over folds)
    return {"windows": int(np.mean(windows)), "mean_p_max": float(np.mean(confidence))}


def _take_over(earlier: Path, target: Path, fingerprint: str) -> None:
    """Copy ``earlier`` to ``target`` when the teacher of ``fingerprint`` wrote it."""
    if earlier.is_file() and read_softmaxes(earlier).teacher == fingerprint:
        with atomic_path(target) as staging:
            shutil.copyfile(earlier, staging)
        log.info("%s: windows scored by the same teacher taken over from %s", target, earlier)
