"""The speech teacher scores the unlabeled windows: the class probabilities of each window's audio span, written
as a window-softmax table (:mod:`liser.window_tables`), incrementally; and the stages that do it for each fold's
teacher (``speech_softmaxes``, ``speech_softmaxes_labeled``: :func:`speech_window_softmaxes`)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from liser.features import load_audio
from liser.files import atomic_path
from liser.params import RuntimeParams
from liser.runtime import keep_freed_buffers, resolve_device
from liser.teachers.speech_input import SAMPLE_RATE, padded_batch, waveform_input
from liser.teachers.speech_model import fold_folder, load_speech_teacher, logits
from liser.teachers.window_scores import (
    BATCHES_PER_CHUNK,
    CHECKPOINT_EVERY,
    ChunkScorer,
    fill_in,
    folder_bytes,
    full_batch,
    scores_on_ray,
    teacher_fingerprint,
    unpacked,
)
from liser.window_tables import earlier_probabilities, read_softmaxes, read_window_table, softmax_frame, write_softmaxes

__all__ = ["window_softmaxes", "speech_window_softmaxes"]

log = logging.getLogger(__name__)


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


def _planned_batches(
    windows: pd.DataFrame, rows: np.ndarray, manifest: pd.DataFrame, batch_size: int
) -> Iterator[tuple[list[int], list[np.ndarray]]]:
    """The model's batches over the windows ``rows``: windows of one length ``batch_size`` at a time as they fill
    up, then what is left of each length (shortest first); a batch is (rows, spans)."""
    buckets: dict[int, list[tuple[int, np.ndarray]]] = {}
    for row, span in _window_spans(windows, rows, manifest):
        buckets.setdefault(len(span), []).append((row, span))
        if len(buckets[len(span)]) == batch_size:
            chosen, spans = zip(*buckets.pop(len(span)))
            yield list(chosen), list(spans)
    for length in sorted(buckets):
        chosen, spans = zip(*buckets.pop(length))
        yield list(chosen), list(spans)


def _probabilities(
    model: torch.nn.Module, spans: list[np.ndarray], batch_size: int, convention, device: torch.device
) -> np.ndarray:
    """One of the model's batches, run at ``batch_size`` (:func:`full_batch`): the probabilities of each span."""
    batch, _ = padded_batch(full_batch(spans, batch_size), convention, device)  # one length: nothing to mask
    return torch.softmax(logits(model, batch), dim=-1).cpu().numpy()[: len(spans)]


class _SpeechScorer(ChunkScorer):
    """A Ray Data actor holding one fold's speech teacher: its folder and its base's, as archives or paths."""

    def __init__(self, teacher: bytes | str, base: bytes | str, threads: int, batch_size: int):
        super().__init__(threads)
        keep_freed_buffers()
        scratch = Path(self.scratch.name)
        folder, base_folder = unpacked(teacher, scratch / "teacher"), unpacked(base, scratch / "base")
        self.device = resolve_device(None)
        self.model = load_speech_teacher(folder, base_folder)[0].eval().to(self.device)
        self.convention = waveform_input(self.model)
        self.batch_size = batch_size

    @torch.inference_mode()
    def score(self, chunk: list[list[np.ndarray]]) -> np.ndarray:
        return np.concatenate(
            [_probabilities(self.model, spans, self.batch_size, self.convention, self.device) for spans in chunk]
        )


def _on_ray(
    batches: Iterator[tuple[list[int], list[np.ndarray]]],
    teacher: Path,
    base: Path,
    classes: int,
    batch_size: int,
    runtime: RuntimeParams,
    threads: int,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The probabilities of the planned ``batches``, scored on Ray a few batches to a chunk."""
    send = runtime.shared_root is None
    settings = {
        "teacher": folder_bytes(teacher) if send else str(runtime.shared_root / teacher),
        "base": folder_bytes(base) if send else str(runtime.shared_root / base),
        "threads": threads,
        "batch_size": batch_size,
    }

    def chunks() -> Iterator[tuple[np.ndarray, list[list[np.ndarray]]]]:
        rows, spans = [], []
        for batch_rows, batch_spans in batches:
            rows.extend(batch_rows)
            spans.append(batch_spans)
            if len(spans) == BATCHES_PER_CHUNK:
                yield np.array(rows), spans
                rows, spans = [], []
        if spans:
            yield np.array(rows), spans

    yield from scores_on_ray(_SpeechScorer, settings, chunks(), classes, runtime, threads)


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
    runtime: RuntimeParams | None = None,
    folders: tuple[Path, Path] | None = None,
    threads: int = 1,
) -> pd.DataFrame:
    """The teacher's class probabilities for every window of the window table, as a window-softmax table
    (:func:`liser.window_tables.softmax_frame`): one row per window, in the table's order, a column per class of
    ``classes``.

    With ``out``, windows already scored there by the same teacher (:func:`teacher_fingerprint`, same segment,
    window and span) are reused, only the others are scored, and the union is written back atomically, also as
    they are scored (:func:`fill_in`, at least ``checkpoint_every`` windows apart) so an interrupted run resumes.
    Windows of the same length are batched together, so no padding ever enters the model and a window's
    probabilities do not depend on its batch; each window is one utterance to the model, normalised on its own where
    the teacher's input convention says so.  With ``runtime.cluster: ray`` the same batches are scored on the
    cluster through Ray Data by actors of ``threads`` threads holding the teacher of ``folders`` (its folder and its
    base's): the same probabilities.
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
    batches = _planned_batches(windows, todo, manifest, batch_size)
    if runtime is not None and runtime.cluster == "ray":
        if folders is None:
            raise ValueError("scoring on Ray needs the teacher's and its base's folders")
        scored = _on_ray(batches, *folders, len(classes), batch_size, runtime, threads)
    else:
        scored = ((rows, _probabilities(model, spans, batch_size, convention, device)) for rows, spans in batches)

    def table_of(done: np.ndarray) -> pd.DataFrame:
        return softmax_frame(windows[done], probabilities[done], classes)

    write = None if out is None else partial(write_softmaxes, out, classes=classes, teacher=fingerprint)
    return fill_in(probabilities, scored, table_of, write, checkpoint_every, "speech teacher windows")


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
    runtime: RuntimeParams | None = None,
) -> dict:
    """Score the window table with each fold's speech teacher into ``out/fold<k>.parquet``, ``batch_size`` windows at a
    time (``speech_teacher.eval_batch_size``) on ``threads`` threads (``speech_teacher.threads``); ``base`` is the
    pretrained model the teachers were trained on.  ``reuse_from``: a folder of earlier ``fold<k>.parquet`` whose
    windows are taken over where the same teacher scored them (Figure 2's runs with ``label_efficiency.teacher: all``
    score nothing again).  With ``runtime.cluster: ray``, on the Ray cluster."""
    keep_freed_buffers()
    torch.set_num_threads(threads)
    audio = pd.read_parquet(manifest)
    window_table = read_window_table(windows)
    scored, confidence = [], []
    for fold in folds_to_run:
        model, classes, _ = load_speech_teacher(fold_folder(teachers, fold), base)
        target = Path(out) / f"fold{fold}.parquet"
        if reuse_from is not None and not target.exists():
            _take_over(Path(reuse_from) / f"fold{fold}.parquet", target, teacher_fingerprint(model))
        table = window_softmaxes(
            model,
            audio,
            window_table,
            batch_size,
            classes=classes,
            out=target,
            runtime=runtime,
            folders=(fold_folder(teachers, fold), Path(base)),
            threads=threads,
        )
        scored.append(len(table))
        confidence.append(float(table["p_max"].mean()))
    # the figures to compare across experiments: windows scored, and the teachers' mean confidence (over folds)
    return {"windows": int(np.mean(scored)), "mean_p_max": float(np.mean(confidence))}


def _take_over(earlier: Path, target: Path, fingerprint: str) -> None:
    """Copy ``earlier`` to ``target`` when the teacher of ``fingerprint`` wrote it."""
    if earlier.is_file() and read_softmaxes(earlier).teacher == fingerprint:
        with atomic_path(target) as staging:
            shutil.copyfile(earlier, staging)
        log.info("%s: windows scored by the same teacher taken over from %s", target, earlier)
