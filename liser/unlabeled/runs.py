"""Stage ``acquire``'s work: the unlabeled audio-visual corpus that params name, obtained segment by segment.

The report it returns is what the stage shows as metrics (the long per-item lists stay in files beside the
outputs); the faces, windows and features stages follow (:mod:`liser.unlabeled.face_crops`,
:mod:`liser.unlabeled.windows`).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pandas as pd

from liser.files import write_csv
from liser.params import MspFaceParams, RuntimeParams, UnlabeledParams
from liser.unlabeled.acquire import AcquireOptions, NothingObtained, acquire, prepare_files
from liser.unlabeled.corpus import read_unlabeled

__all__ = ["obtain_segments"]

log = logging.getLogger(__name__)

ACQUISITION_METRICS = (
    "segments_selected",
    "segments_ok",
    "segments_failed",
    "videos_ok",
    "videos_failed",
    "hours_obtained",
    "speakers_obtained",
)


def obtain_segments(unlabeled: UnlabeledParams, mspface: MspFaceParams, runtime: RuntimeParams, out: Path) -> dict:
    """Obtain the segments of the unlabeled corpus into ``out``: download and cut them (MSP-Face, AVSpeech, with the
    ``mspface`` download settings), or check the corpus's files and take out their sound (VoxCeleb2, a folder).

    Returns the few figures of the report compared across experiments (not what only this run did, so that the
    metrics of a resumed run equal those of an uninterrupted one); stops with :class:`NothingObtained` when no
    segment was."""
    corpus = read_unlabeled(unlabeled, mspface.lists)
    write_csv(out / "list-problems.csv", corpus.problems)
    if corpus.downloads:
        shared = {field.name for field in dataclasses.fields(AcquireOptions)}  # the mspface parameters of that name
        options = AcquireOptions(**{name: value for name, value in mspface if name in shared})
        segments = corpus.segments.rename(columns={"source": "video", "start_s": "start", "end_s": "end"})
        report = acquire(
            segments,
            corpus.videos,
            out,
            limit_videos=mspface.limit_videos,
            limit_hours=mspface.limit_hours,
            workers=mspface.workers,
            options=options,
            runtime=runtime,
            extra=corpus.segments,
        )
    else:
        report = prepare_files(corpus.segments, out, workers=mspface.workers, runtime=runtime)
    failures = pd.DataFrame(report["failures"], columns=["id", "stage", "class", "reason"])
    write_csv(out / "failures.csv", failures)
    # the figures compared across experiments (a corpus of files has no videos to download); each failure's class
    # and reason are in report.json and failures.csv
    summary = {key: report[key] for key in ACQUISITION_METRICS if key in report}
    summary["list_problems"] = len(corpus.problems)
    if report["segments_ok"] == 0:
        raise NothingObtained(
            f"{out}: no segment obtained of {report['segments_selected']} selected ({len(failures)} failures, "
            f"in {out / 'failures.csv'}; {len(corpus.problems)} list problems, in {out / 'list-problems.csv'})"
        )
    return summary
