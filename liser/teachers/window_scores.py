"""What both teachers share when they score the unlabeled windows: a fingerprint of the teacher's weights, so that
window softmaxes written by an earlier run are reused only when the same teacher wrote them; the scores taken in as
they come, with the table saved now and then (:func:`fill_in`) so a stopped run resumes from its last save; and
scoring on a Ray cluster (``runtime.cluster: ray``) through Ray Data.

On Ray, the windows to score are cut into chunks of a few of the model's batches (the very batches the scoring on
this machine makes, so the probabilities are the same bytes), each chunk carrying what its windows need (the inputs
sent with it, or their paths under ``runtime.shared_root``).  A pool of actors, each holding the teacher, scores the
chunks through ``map_batches``: one actor per GPU when the cluster has GPUs, else one per ``threads`` CPUs.  The
stage's own process collects the probabilities and writes the table.
"""

from __future__ import annotations

import hashlib
import io
import logging
import pickle
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from liser.cluster import ray_session
from liser.params import RuntimeParams

__all__ = [
    "BATCHES_PER_CHUNK",
    "CHECKPOINT_EVERY",
    "ChunkScorer",
    "fill_in",
    "folder_bytes",
    "scores_on_ray",
    "teacher_fingerprint",
    "unpacked",
]

log = logging.getLogger(__name__)

BATCHES_PER_CHUNK = 4  # the model's batches in one Ray Data row
WAVE_BYTES = 256 * 1024 * 1024  # the inputs sent with one Ray Data dataset, at most (the next follows it)
CHECKPOINT_EVERY = 20000  # newly scored windows between two saves of the table (at least), so a stopped run resumes


def full_batch(items: list, size: int) -> list:
    """``items`` with its last one repeated up to ``size``.  The teachers run every batch at one size: a kernel's
    summation order can change with the batch's size (a window scored in a batch of 1 differs from the same window
    in a batch of 2 by ~3e-8) but not with its place or its neighbours, so a window's probabilities are the same
    bits whatever was scored with it, and a resumed or incremental run writes the bytes of a fresh one."""
    return list(items) + [items[-1]] * (size - len(items))


def fill_in(
    probabilities: np.ndarray,
    scored: Iterable[tuple[np.ndarray, np.ndarray]],
    table_of: Callable[[np.ndarray], pd.DataFrame],
    write: Callable[[pd.DataFrame], None] | None,
    checkpoint_every: int,
    description: str,
) -> pd.DataFrame:
    """Put each (rows, their probabilities) of ``scored`` into ``probabilities`` as it comes and return the table of
    every window, ``table_of(scored windows' mask)``, given to ``write`` (when there is one) at the end and also on
    the way: once ``checkpoint_every`` windows, and a tenth of those already saved, have been scored since the last
    save.  The tenth keeps a long run's saves few: scoring n windows writes about 11 n rows in all, however large n,
    and a stopped run loses at most a tenth of its work."""

    def scored_so_far() -> pd.DataFrame:
        return table_of(~np.isnan(probabilities).any(axis=1))

    done = int((~np.isnan(probabilities).any(axis=1)).sum())
    saved, todo = done, len(probabilities) - done
    with tqdm(total=todo, desc=description, unit="window") as progress:
        for rows, chosen in scored:
            probabilities[rows] = chosen
            progress.update(len(rows))
            done += len(rows)
            if write is not None and done - saved >= max(checkpoint_every, saved // 10):
                write(scored_so_far())
                saved = done
    table = scored_so_far()
    if write is not None:
        write(table)
    return table


def teacher_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 of every weight and buffer: earlier window scores are reused only from the same teacher."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().reshape(-1).contiguous().view(torch.uint8).cpu().numpy())
    return digest.hexdigest()


def folder_bytes(folder: str | Path) -> bytes:
    """A folder as a tar archive's bytes (its files sorted, no owners or times), to send a model with its actors."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file():
                info = tarfile.TarInfo(path.relative_to(folder).as_posix())
                info.size = path.stat().st_size
                with open(path, "rb") as handle:
                    archive.addfile(info, handle)
    return buffer.getvalue()


def unpacked(folder: str | bytes, into: Path) -> Path:
    """``folder`` itself (a path), or the archive :func:`folder_bytes` made of it unpacked into ``into``."""
    if isinstance(folder, str):
        return Path(folder)
    with tarfile.open(fileobj=io.BytesIO(folder)) as archive:
        archive.extractall(into, filter="data")
    return into


class ChunkScorer:
    """A Ray Data actor: ``score(chunk)`` is a teacher's probabilities, (windows, classes), for one chunk's
    payload; the actor's set-up (loading the teacher) is the subclass's."""

    def __init__(self, threads: int):
        torch.set_num_threads(threads)
        self.scratch = tempfile.TemporaryDirectory(prefix="liser-teacher-")

    def score(self, chunk: Any) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        chunks = batch["chunk"]
        scored = [self.score(pickle.loads(payload)).astype(np.float32).tobytes() for payload in batch["payload"]]
        return {"chunk": np.asarray(chunks), "probabilities": np.array(scored, dtype=object)}


def _waves(chunks: Iterable[tuple[np.ndarray, Any]]) -> Iterator[list[tuple[np.ndarray, bytes]]]:
    """The chunks (rows, payload) pickled, in groups of at most :data:`WAVE_BYTES`."""
    wave, size = [], 0
    for rows, payload in chunks:
        data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
        if wave and size + len(data) > WAVE_BYTES:
            yield wave
            wave, size = [], 0
        wave.append((rows, data))
        size += len(data)
    if wave:
        yield wave


def scores_on_ray(
    scorer: type[ChunkScorer],
    settings: dict[str, Any],
    chunks: Iterable[tuple[np.ndarray, Any]],
    classes: int,
    runtime: RuntimeParams,
    threads: int,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(rows, probabilities)`` for each chunk ``(rows, payload)``, as the actors ``scorer(**settings)`` (each on
    ``threads`` CPUs, or on a GPU when the cluster has GPUs) score them through Ray Data's ``map_batches``."""
    with ray_session(runtime) as ray:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        actors = gpus or max(1, int(resources.get("CPU", 1) // threads))
        placement = {"num_gpus": 1} if gpus else {"num_cpus": threads}
        log.info("scoring on Ray: %d actor(s), each on %s", actors, "a GPU" if gpus else f"{threads} CPU(s)")
        for wave in _waves(chunks):
            rows = {index: rows for index, (rows, _) in enumerate(wave)}
            dataset = ray.data.from_items([{"chunk": index, "payload": data} for index, (_, data) in enumerate(wave)])
            scored = dataset.map_batches(
                scorer,
                fn_constructor_kwargs=settings,
                batch_size=1,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=min(actors, len(wave))),
                **placement,
            )
            for batch in scored.iter_batches(batch_size=None, batch_format="numpy"):
                for index, data in zip(batch["chunk"], batch["probabilities"]):
                    chosen = rows[int(index)]
                    yield chosen, np.frombuffer(data, dtype=np.float32).reshape(len(chosen), classes)
