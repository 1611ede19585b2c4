"""The video teacher's stages: obtain S2D (load the published checkpoint or, without one, train it on a
FERV39k-layout corpus), score it on that corpus's test clips when the corpus is there, and turn the unlabeled
window table into its window softmaxes.

Window softmaxes are incremental: windows an earlier run of the same teacher (same weights fingerprint) already
scored are taken from the existing file, so adding segments scores only the new windows.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from liser.corpora.ferv39k import read_ferv39k
from liser.files import read_json, write_json, write_parquet
from liser.models.s2d import S2DConfig
from liser.params import VideoTeacherParams
from liser.runtime import keep_freed_buffers
from liser.teachers import video
from liser.teachers.weights import MOBILEFACENET_FILE, RECORD_FILE, S2D_FILE, WeightsUnavailable
from liser.tracking import TrainingCurves
from liser.window_tables import read_window_table

__all__ = ["VIDEO_TEACHER_FILE", "video_teacher_run", "video_window_softmaxes"]

log = logging.getLogger(__name__)

VIDEO_TEACHER_FILE = "teacher.safetensors"


def video_teacher_run(
    params: VideoTeacherParams,
    weights: str | Path,
    out: str | Path,
    metrics: str | Path,
    live: str | Path | None = None,
) -> dict:
    """Write ``out/teacher.safetensors`` (and the training history when trained) and the teacher's metrics.

    A published teacher is read from ``weights``, the folder stage ``video_weights`` fetched S2D's files into.
    A trained one's curves go to the DVCLive folder ``live`` as it trains (:mod:`liser.tracking`); a published one
    leaves it without curves.
    """
    out, weights = Path(out), Path(weights)
    curves = TrainingCurves(live)
    keep_freed_buffers()
    torch.set_num_threads(params.threads)
    config = S2DConfig.small() if params.size == "small" else S2DConfig.full()
    corpus = None
    if params.corpus is not None and params.corpus.is_dir():
        corpus = read_ferv39k(params.corpus).clips
    elif params.source == "train":
        raise FileNotFoundError(f"{params.corpus}: the FERV39k-layout corpus to train the video teacher on is missing")
    published = {name: weights / name for name in (S2D_FILE, MOBILEFACENET_FILE)}
    missing = [str(path) for path in published.values() if not path.is_file()]
    if params.source == "published" and missing:
        raise WeightsUnavailable(f"{', '.join(missing)}: missing; stage video_weights fetches them (dvc repro)")
    summary: dict = {"size": params.size}
    out.mkdir(parents=True, exist_ok=True)
    if params.source == "train":
        result = video.train_video_teacher(
            corpus,
            config,
            epochs=params.epochs,
            lr=params.lr,
            batch_size=params.batch_size,
            seed=params.seed,
            threads=params.threads,
            eval_batch_size=params.eval_batch_size,
            on_epoch=curves.logger(""),
        )
        model = result.model
        write_parquet(out / "history.parquet", result.history)
        summary.update(
            source="trained", best_epoch=int(result.best_epoch), train_clips=int((corpus["split"] == "train").sum())
        )
    else:
        model = video.build_video_teacher(config, published[S2D_FILE], published[MOBILEFACENET_FILE])
        summary.update(
            source="published", files=read_json(weights / RECORD_FILE) if (weights / RECORD_FILE).is_file() else None
        )
    if corpus is not None and (corpus["split"] == "test").any():
        scores = video.evaluate_video_teacher(model, corpus, "test", params.eval_batch_size)
        summary["test"] = {"uar": scores["uar"], "war": scores["war"], "clips": scores["clips"]}
        log.info("video teacher: test UAR %.3f, WAR %.3f on %d clips", scores["uar"], scores["war"], scores["clips"])
    video.save_video_teacher(out / VIDEO_TEACHER_FILE, model, **summary)
    curves.finish()
    write_json(metrics, summary)
    return summary


def video_window_softmaxes(
    teacher: str | Path, windows: str | Path, faces: str | Path, out: str | Path, batch_size: int = 8, threads: int = 2
) -> dict:
    """Score every window of the window table with the video teacher into the window-softmax table ``out``, with
    each window's ``face_fraction`` beside its softmaxes, for the students to leave out windows with little face."""
    keep_freed_buffers()
    torch.set_num_threads(threads)
    model, _ = video.load_video_teacher(Path(teacher) / VIDEO_TEACHER_FILE)
    table = video.window_softmaxes(model, read_window_table(windows), faces, batch_size, out=out)
    return {
        "windows": len(table),
        "segments": int(table["segment"].nunique()),
        "mean_p_max": float(table["p_max"].mean()),
    }
