"""The video teacher's stage (``video_teacher``): obtain S2D (load the published checkpoint or, without one, train
it on a FERV39k-layout corpus) and score it on that corpus's test clips when the corpus is there.

A published teacher is built only from files stage ``video_weights`` fetched for the ``video_weights`` params in
force (:func:`liser.teachers.video_weights.published_files`).  On a CPU with the same thread count, the stage writes
the same bytes on every run.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from liser.corpora.ferv39k import read_ferv39k
from liser.files import write_json, write_parquet
from liser.params import VideoTeacherParams, VideoWeightsParams
from liser.runtime import keep_freed_buffers
from liser.teachers.video_clips import evaluate_video_teacher
from liser.teachers.video_model import VIDEO_TEACHER_FILE, build_video_teacher, save_video_teacher, video_config
from liser.teachers.video_training import train_video_teacher
from liser.teachers.video_weights import MOBILEFACENET_FILE, S2D_FILE, published_files
from liser.tracking import TrainingCurves

__all__ = ["video_teacher_run"]

log = logging.getLogger(__name__)


def video_teacher_run(
    params: VideoTeacherParams,
    weights_params: VideoWeightsParams,
    weights: str | Path,
    out: str | Path,
    metrics: str | Path,
    live: str | Path | None = None,
) -> dict:
    """Write ``out/teacher.safetensors`` (and the training history when trained) and the teacher's metrics.

    A published teacher is read from ``weights``, the folder stage ``video_weights`` fetched S2D's files into,
    checked to hold the files ``weights_params`` name.  A trained
    one's curves go to the DVCLive folder ``live`` as it trains (:mod:`liser.tracking`); a published one leaves it
    without curves.
    """
    out, weights = Path(out), Path(weights)
    curves = TrainingCurves(live)
    keep_freed_buffers()
    torch.set_num_threads(params.threads)
    corpus = None
    if params.corpus is not None and params.corpus.is_dir():
        corpus = read_ferv39k(params.corpus).clips
    elif params.source == "train":
        raise FileNotFoundError(f"{params.corpus}: the FERV39k-layout corpus to train the video teacher on is missing")
    summary: dict = {"size": params.size}
    out.mkdir(parents=True, exist_ok=True)
    if params.source == "train":
        result = train_video_teacher(corpus, params, on_epoch=curves.logger(""))
        model = result.model
        write_parquet(out / "history.parquet", result.history)
        summary.update(
            source="trained", best_epoch=int(result.best_epoch), train_clips=int((corpus["split"] == "train").sum())
        )
    else:
        record = published_files(weights, weights_params)
        model = build_video_teacher(
            video_config(params),
            seed=params.seed,
            checkpoint=weights / S2D_FILE,
            mobilefacenet=weights / MOBILEFACENET_FILE,
        )
        summary.update(source="published", files={name: record[name] for name in ("s2d", "mobilefacenet")})
    if corpus is not None and (corpus["split"] == "test").any():
        scores = evaluate_video_teacher(model, corpus, "test", params.eval_batch_size)
        summary["test"] = {"uar": scores["uar"], "war": scores["war"], "clips": scores["clips"]}
        log.info("video teacher: test UAR %.3f, WAR %.3f on %d clips", scores["uar"], scores["war"], scores["clips"])
    save_video_teacher(out / VIDEO_TEACHER_FILE, model, **summary)
    write_json(out / "results.json", summary)  # what the teacher is and where it came from, beside it
    curves.finish()
    write_json(
        metrics, {"test": {k: v for k, v in summary["test"].items() if k != "clips"}} if "test" in summary else {}
    )
    return summary
