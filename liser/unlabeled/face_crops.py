"""Stage ``faces`` over a corpus: each segment's face track (and crops) made by workers, written by the stage.

The segments are handed to this machine's worker processes, or to Ray tasks of :data:`FACE_TASK` (one CPU each),
as :class:`liser.unlabeled.faces.CropJob` s; each returns its segment's files and coverage row, and the stage
writes them, each atomically, as they come::

    tracks/<segment>.npz    every segment whose video could be read (kept or dropped)
    <segment>.mp4           the crops of every kept segment, with faces.keep_crops
    coverage.csv            one row per segment: frames, face frames, kept, reason
    coverage.json           the totals, the options and the dropped segments with their reasons
    face_masks.parquet      the kept segments: frames, face mask, and the speaker, gender, duration and sound file
                            of each (what stage windows reads)

A segment whose track was made with the same options (and whose crops are there when they are kept) is not done
again, so a stopped stage resumes where it was, and its report and outputs are those of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from liser.cluster import ON_THIS_MACHINE, Resources, job_input, run_jobs
from liser.corpora.audiovisual import check_id
from liser.corpora.voxceleb2 import read_face_boxes
from liser.files import atomic_path, write_bytes, write_csv, write_json
from liser.logs import UserError
from liser.params import FaceParams, RuntimeParams
from liser.unlabeled.faces import (
    CropJob,
    CropOptions,
    SegmentCoverage,
    StoredTrack,
    aligned_frames,
    check_detector,
    crop_job,
    mask_text,
    read_face_clip,
    read_track,
    track_without_crops,
)
from liser.unlabeled.windows import FACE_MASK_SCHEMA, FACE_MASKS

__all__ = [
    "COVERAGE_CSV",
    "COVERAGE_JSON",
    "FACE_TASK",
    "TRACKS",
    "NoFaces",
    "crop_faces",
    "crop_segments",
    "face_inputs",
    "face_source",
    "segment_faces",
    "track_path",
]

log = logging.getLogger(__name__)

COVERAGE_JSON = "coverage.json"
COVERAGE_CSV = "coverage.csv"
TRACKS = "tracks"
COVERAGE_COLUMNS = ["segment", "frames", "face_frames", "kept", "reason"]
# One segment on a Ray node: one core (detection, alignment and the encoder at one thread each), and memory with room
# to spare (a 10 s 720p segment's face work peaked at 177 MB, its encoder apart; README, "Scaling out").
FACE_TASK = Resources(cpus=1, memory_mb=512)


class NoFaces(UserError, RuntimeError):
    """A faces stage that kept no segment: the coverage report says why."""


def track_path(out_dir: str | Path, segment: str) -> Path:
    return Path(out_dir) / TRACKS / f"{check_id(segment)}.npz"


def face_source(faces_dir: str | Path, segment: str) -> tuple[str, Path | StoredTrack]:
    """Where a segment's aligned faces are: ``("clip", path)`` of its kept crops, or ``("track", track)`` when only
    its track was kept (the faces are then aligned from its video, :func:`liser.unlabeled.faces.aligned_frames`)."""
    clip = Path(faces_dir) / f"{check_id(segment)}.mp4"
    if clip.is_file():
        return "clip", clip
    return "track", read_track(track_path(faces_dir, segment))


def face_inputs(faces_dir: str | Path, segment: str, runtime: RuntimeParams) -> tuple:
    """What a task needs to rebuild a segment's aligned faces with :func:`segment_faces`, as it is to get it (paths,
    or the files' bytes sent with it: :func:`liser.cluster.job_input`): its kept crops, or its track and video."""
    kind, source = face_source(faces_dir, segment)
    if kind == "clip":
        return "clip", job_input(source, runtime)
    return "track", job_input(track_path(faces_dir, segment), runtime), job_input(source.record["video"], runtime)


def segment_faces(inputs: tuple) -> np.ndarray:
    """(frames, 224, 224, 3) uint8 RGB: a segment's aligned faces from :func:`face_inputs`."""
    if inputs[0] == "clip":
        return read_face_clip(inputs[1])
    _, track, video = inputs
    return aligned_frames(read_track(track if isinstance(track, bytes) else Path(track)), video)


def _one_thread() -> None:
    """Worker set-up: one OpenCV thread per worker, so ``workers`` is the cores used."""
    cv2.setNumThreads(1)


def _reusable(segment: str, out_dir: Path, video: str, options: CropOptions, keep_crops: bool) -> StoredTrack | None:
    """The segment's track when an earlier run made it as this one would (and its crops are there if kept)."""
    path = track_path(out_dir, segment)
    if not path.is_file():
        return None
    try:
        track = read_track(path)
    except ValueError as error:
        log.warning("%s: redoing its track (%s)", segment, error)
        return None
    record = track.record
    if record["options"] != options.track_settings() or record["video"] != video:
        return None
    crops = out_dir / f"{segment}.mp4"
    if record["kept"] and keep_crops and (record.get("crops") != options.crf or not crops.is_file()):
        return None
    return track


def _job_of(row: Any, options: CropOptions, keep_crops: bool) -> CropJob:
    listed = None
    if options.boxes == "listed" and getattr(row, "boxes", ""):
        listed = read_face_boxes(row.boxes)
    face_x, face_y = getattr(row, "face_x", math.nan), getattr(row, "face_y", math.nan)
    end_s = getattr(row, "end_s", math.nan)
    return CropJob(
        segment=row.segment,
        video=str(row.video_file),
        video_path=str(row.video_file),
        options=options,
        keep_crops=keep_crops,
        start_s=float(getattr(row, "start_s", 0.0)),
        end_s=None if end_s is None or math.isnan(end_s) else float(end_s),
        listed_boxes=listed,
        face_point=None if math.isnan(face_x) or math.isnan(face_y) else (float(face_x), float(face_y)),
    )


def _with_input(job: CropJob, runtime: RuntimeParams) -> CropJob:
    """The job as a task gets it: its video's path, or its bytes sent with it."""
    return CropJob(**{**job.__dict__, "video": job_input(job.video, runtime)})


def _remove_stale(out_dir: Path) -> None:
    for folder in (out_dir, out_dir / TRACKS):
        for stale in folder.glob(".*.tmp"):
            stale.unlink(missing_ok=True)


def crop_segments(
    segments: pd.DataFrame,
    out_dir: str | Path,
    options: CropOptions | None = None,
    *,
    keep_crops: bool = True,
    workers: int = 1,
    runtime: RuntimeParams | None = None,
) -> dict[str, Any]:
    """Track the face of every segment of ``segments`` and write the outputs above into ``out_dir``.

    ``segments`` has the columns ``segment`` and ``video_file`` (its video), and optionally ``start_s``, ``end_s``
    (its span in that video), ``face_x``, ``face_y`` (the listed face position), ``boxes`` (a file of listed boxes)
    and the columns passed on into ``face_masks.parquet``.  ``workers`` processes do the work here (one OpenCV
    thread each), or Ray tasks with ``runtime.cluster: ray``.  A segment that cannot be read is dropped with its
    reason and the run goes on; an unavailable detector stops it at once (:class:`DetectorUnavailable`), and so
    does a run that keeps no segment (:class:`NoFaces`, after writing the coverage report).

    Returns the coverage report (``coverage.json``): the options, segments total, kept and dropped (with reasons),
    frames total and with a face.  What this run did is logged, not reported, so a resumed run reports as an
    uninterrupted one.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1 (got {workers})")
    options = options or CropOptions()
    options.check()
    runtime = runtime or ON_THIS_MACHINE
    repeated = segments["segment"][segments["segment"].duplicated()]
    if len(repeated):
        raise ValueError(f"segment {repeated.iloc[0]!r} appears more than once")
    for segment in segments["segment"]:
        check_id(segment)
    out_dir = Path(out_dir)
    (out_dir / TRACKS).mkdir(parents=True, exist_ok=True)
    _remove_stale(out_dir)
    rows = list(segments.sort_values("segment").itertuples(index=False))
    if options.boxes == "detect" or any(not getattr(row, "boxes", "") for row in rows):
        check_detector(options.detector)

    coverage: dict[str, SegmentCoverage] = {}
    todo = []
    for row in rows:
        track = _reusable(row.segment, out_dir, str(row.video_file), options, keep_crops)
        if track is None:
            todo.append(row)
            continue
        coverage[row.segment] = track.coverage()
        if not keep_crops:
            (out_dir / f"{row.segment}.mp4").unlink(missing_ok=True)
            if track.record.get("crops") is not None:
                write_bytes(track_path(out_dir, row.segment), track_without_crops(track_path(out_dir, row.segment)))
    log.info("face crops: %d segments to do, %d done by an earlier run", len(todo), len(coverage))

    detections = 0
    try:
        with tqdm(total=len(rows), initial=len(coverage), desc="face crops", unit="segment") as progress:
            jobs = contextlib.closing(
                run_jobs(
                    crop_job,
                    todo,
                    runtime,
                    workers=workers,
                    resources=FACE_TASK,
                    setup=_one_thread,
                    prepare=lambda row: _with_input(_job_of(row, options, keep_crops), runtime),
                )
            )
            with jobs as results:
                for _, result in results:
                    _write_result(out_dir, result)
                    coverage[result.coverage.segment] = result.coverage
                    detections += result.detections
                    progress.update(1)
    finally:
        _remove_stale(out_dir)

    ordered = [coverage[row.segment] for row in rows]
    table = pd.DataFrame([asdict(row) for row in ordered], columns=COVERAGE_COLUMNS)
    write_csv(out_dir / COVERAGE_CSV, table)
    report = _report(ordered, options, keep_crops)
    write_json(out_dir / COVERAGE_JSON, report)
    _write_face_masks(out_dir, segments, [row.segment for row in ordered if row.kept])
    log.info(
        "face crops: %d of %d segments kept, %.1f%% of %d frames with a face; this run: %d segments, the detector on "
        "%d frames; report in %s",
        report["segments_kept"],
        report["segments_total"],
        100 * report["face_fraction"],
        report["frames_total"],
        len(todo),
        detections,
        out_dir / COVERAGE_JSON,
    )
    if report["segments_kept"] == 0:
        raise NoFaces(
            f"{out_dir}: no segment kept a face ({report['segments_total']} segments; reasons in "
            f"{out_dir / COVERAGE_CSV})"
        )
    return report


def _write_result(out_dir: Path, result: Any) -> None:
    segment = result.coverage.segment
    if result.track is None:
        track_path(out_dir, segment).unlink(missing_ok=True)
    else:
        write_bytes(track_path(out_dir, segment), result.track)
    if result.clip is None:
        (out_dir / f"{segment}.mp4").unlink(missing_ok=True)
    else:
        write_bytes(out_dir / f"{segment}.mp4", result.clip)


def _report(rows: list[SegmentCoverage], options: CropOptions, keep_crops: bool) -> dict[str, Any]:
    frames = sum(row.frames for row in rows)
    face_frames = sum(row.face_frames for row in rows)
    kept = [row for row in rows if row.kept]
    return {
        **asdict(options),
        "keep_crops": keep_crops,
        "segments_total": len(rows),
        "segments_kept": len(kept),
        "segments_dropped": len(rows) - len(kept),
        "frames_total": frames,
        "frames_with_face": face_frames,
        "face_fraction": face_frames / frames if frames else 0.0,
        "kept_frames_total": sum(row.frames for row in kept),
        "kept_frames_with_face": sum(row.face_frames for row in kept),
        "dropped": [{"segment": row.segment, "reason": row.reason} for row in rows if not row.kept],
    }


FACE_MASK_BATCH = 10_000


def _write_face_masks(out_dir: Path, segments: pd.DataFrame, kept: list[str]) -> None:
    """face_masks.parquet: each kept segment's frames and face mask (``1`` where a face was found), read back from
    its track a batch at a time, with the speaker, gender, duration and sound file ``segments`` gives it."""
    defaults = {"speaker": "unknown", "gender": "unknown", "duration": float("nan"), "audio_file": ""}
    listed = segments.set_index("segment")
    with atomic_path(out_dir / FACE_MASKS) as tmp, pq.ParquetWriter(tmp, FACE_MASK_SCHEMA) as writer:
        for start in range(0, max(len(kept), 1), FACE_MASK_BATCH):
            batch = kept[start : start + FACE_MASK_BATCH]
            masks = [read_track(track_path(out_dir, segment)).mask for segment in batch]
            columns = {"segment": batch, "frames": [len(mask) for mask in masks]}
            columns["face"] = [mask_text(mask) for mask in masks]
            for column, default in defaults.items():
                columns[column] = listed.loc[batch, column].tolist() if column in listed else [default] * len(batch)
            writer.write_table(pa.table(columns, schema=FACE_MASK_SCHEMA))


FACE_METRICS = ("segments_total", "segments_kept", "segments_dropped", "face_fraction", "kept_frames_total")


def crop_faces(segments: str | Path, faces: FaceParams, fps: float, runtime: RuntimeParams, out: str | Path) -> dict:
    """Stage faces: the tracks (and crops) of every segment of the obtained table ``segments``, read at ``fps``;
    returns the figures of the coverage report compared across experiments (the whole report, with the settings
    and each dropped segment's reason, is written beside the faces)."""
    options = CropOptions(
        detector=faces.detector,
        detect_every=faces.detect_every,
        margin=faces.margin,
        max_gap=faces.max_gap,
        min_face_fraction=faces.min_face_fraction,
        fps=fps,
        boxes=faces.boxes,
        crf=faces.crf,
    )
    coverage = crop_segments(
        pd.read_parquet(segments), out, options, keep_crops=faces.keep_crops, workers=faces.workers, runtime=runtime
    )
    return {key: coverage[key] for key in FACE_METRICS}
