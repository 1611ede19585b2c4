"""The unlabeled audio-visual corpus through the pipeline: segments obtained from the lists,
faces cropped, 16-frame windows cut, and a manifest for the shared log-Mel extractor.

Each function is one DVC stage's work; the reports they return are what the stage shows
as metrics (the long per-item lists stay in files beside the outputs).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pandas as pd

from liser.corpora.mspface import read_lists
from liser.files import write_csv, write_parquet
from liser.params import FaceParams, MspFaceParams
from liser.unlabeled.acquire import OBTAINED_NAME, AcquireOptions, acquire, segment_paths
from liser.unlabeled.faces import crop_segments
from liser.unlabeled.windows import window_table
from liser.window_tables import write_window_table

__all__ = ["obtain_segments", "crop_faces", "cut_windows"]

log = logging.getLogger(__name__)


def obtain_segments(params: MspFaceParams, out: Path) -> dict:
    """Download and cut the listed segments into ``out``; the report without its failure list and without what
    only this run did, so that the metrics of a resumed run equal those of an uninterrupted one."""
    lists = read_lists(params.lists)
    write_csv(out / "list-problems.csv", lists.problems)
    shared = {field.name for field in dataclasses.fields(AcquireOptions)}  # the mspface parameters of the same names
    options = AcquireOptions(**{name: value for name, value in params if name in shared})
    report = acquire(
        lists.segments,
        lists.videos,
        out,
        limit_videos=params.limit_videos,
        limit_hours=params.limit_hours,
        workers=params.workers,
        options=options,
    )
    failures = pd.DataFrame(report["failures"], columns=["id", "stage", "class", "reason"])
    write_csv(out / "failures.csv", failures)
    log.info("this run: %s", report["this_run"])
    shown = {k: v for k, v in report.items() if k not in ("failures", "this_run")}
    return {**shown, "list_problems": len(lists.problems)}


def crop_faces(acquired: Path, params: FaceParams, out: Path) -> dict:
    """Face clips of every obtained segment; the coverage report without its per-segment lists."""
    obtained = pd.read_parquet(acquired / OBTAINED_NAME)
    videos = [segment_paths(acquired, segment)[0] for segment in obtained["segment"]]
    coverage = crop_segments(
        videos,
        out,
        detector=params.detector,
        detect_every=params.detect_every,
        margin=params.margin,
        max_gap=params.max_gap,
        min_face_fraction=params.min_face_fraction,
        workers=params.workers,
    )
    return {k: v for k, v in coverage.items() if not isinstance(v, (list, dict))}


def cut_windows(acquired: Path, faces: Path, frames: int, fps: float, windows_out: Path, manifest_out: Path) -> dict:
    """The window table, and a manifest (utterance, path, speaker, gender, duration) of the
    segments that have windows, for the log-Mel features."""
    obtained = pd.read_parquet(acquired / OBTAINED_NAME)
    windows = window_table(obtained, faces, frames, fps)
    write_window_table(windows_out, windows)
    kept = obtained[obtained["segment"].isin(set(windows["segment"]))]
    manifest = pd.DataFrame(
        {
            "utterance": kept["segment"],
            "path": [str(segment_paths(acquired, segment)[1]) for segment in kept["segment"]],
            "speaker": kept["speaker"],
            "gender": kept["gender"],
            "duration": kept["duration"],
        }
    )
    write_parquet(manifest_out, manifest)
    return {
        "windows": len(windows),
        "segments": int(windows["segment"].nunique()),
        "speakers": int(windows["speaker"].nunique()),
        "hours": float(len(windows) * frames / fps / 3600),
        "mean_face_fraction": float(windows["face_fraction"].mean()),
    }
