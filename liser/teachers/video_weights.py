"""The video teacher's published files (stage ``video_weights``): S2D's FERV39k checkpoint (a file of the
``cyinen/S2D`` model repository at a revision) and MobileFaceNet's landmark weights (a file of the S2D authors'
code repository at a commit URL, with a fallback URL), each checked against its pins in params, into one folder
with a record (``fetched.json``) of the params they were fetched for; and the check the video teacher makes of
that record before it loads them (:func:`published_files`).

A file already in place with the right checksums is not fetched again; a wrong one is an error naming the file,
both values and what to do.  Both files are tried before failing, so one message says everything that is missing.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from liser.files import atomic_path, read_json, write_json
from liser.params import VideoWeightsParams
from liser.teachers.fetching import RECORD_FILE, Pins, WeightsUnavailable, checked, fetch_url_file, one_line

__all__ = ["S2D_FILE", "MOBILEFACENET_FILE", "fetch_s2d_checkpoint", "fetch_video_weights", "published_files"]

log = logging.getLogger(__name__)

S2D_FILE = "s2d_checkpoint.pth"
MOBILEFACENET_FILE = "mobilefacenet_model_best.pth.tar"


def _pick_s2d_file(repo: str, revision: str) -> str:
    """The one FERV39k checkpoint of the S2D repository at ``revision``."""
    from huggingface_hub import HfApi

    names = HfApi().list_repo_files(repo, revision=revision)
    ferv = [n for n in names if "ferv" in n.lower() and n.lower().endswith((".pth", ".pt", ".tar", ".bin"))]
    if len(ferv) != 1:
        raise WeightsUnavailable(
            f"{repo} (revision {revision}): expected one FERV39k checkpoint, found {ferv or 'none'} among "
            f"{len(names)} files ({', '.join(names[:20])}); set video_weights.s2d.file in params.yaml"
        )
    return ferv[0]


def fetch_s2d_checkpoint(params: VideoWeightsParams, out: str | Path) -> dict:
    """S2D's published checkpoint as ``out`` (e.g. ``data/weights/s2d/s2d_checkpoint.pth``), checked."""
    out, s2d = Path(out), params.s2d
    pins = Pins(s2d.sha256, None, "video_weights.s2d")
    if out.is_file():
        log.info("%s already in place", out)
        return {"file": out.name, **checked(out, pins)}
    include = s2d.file or "*[Ff][Ee][Rr][Vv]*"
    how = (
        f"On a machine with internet run:\n    hf download {s2d.repo} --revision {s2d.revision} --include "
        f'"{include}" --local-dir S2D\nthen copy the FERV39k checkpoint it wrote under S2D/ to {out} here, '
        f"and run the stage again."
    )
    from huggingface_hub import hf_hub_download

    file = s2d.file
    try:
        file = file or _pick_s2d_file(s2d.repo, s2d.revision)
        cached = Path(hf_hub_download(s2d.repo, file, revision=s2d.revision))
    except WeightsUnavailable:
        raise
    except Exception as error:  # the hub's offline, network, missing-revision and missing-file errors
        raise WeightsUnavailable(
            f"{s2d.repo}/{file or '<FERV39k checkpoint>'} (revision {s2d.revision}) is not on this machine and "
            f"cannot be fetched here: {one_line(error)}\n{how}"
        ) from None
    with atomic_path(out) as tmp:
        shutil.copyfile(cached, tmp)
        digests = checked(tmp, pins)
    log.info("S2D checkpoint %s (revision %s) in %s", file, s2d.revision, out)
    return {"file": out.name, **digests}


def _fetch_mobilefacenet(params: VideoWeightsParams, out: Path) -> dict:
    landmark = params.mobilefacenet
    urls = [landmark.url] + ([landmark.fallback_url] if landmark.fallback_url else [])
    return fetch_url_file(urls, Pins(landmark.sha256, landmark.git_blob, "video_weights.mobilefacenet"), out)


def fetch_video_weights(params: VideoWeightsParams, published: bool, out: str | Path) -> dict:
    """S2D's checkpoint and MobileFaceNet's file in ``out`` when the video teacher starts from them (``published``:
    ``video_teacher.source`` is ``published``); otherwise nothing is fetched.  Either way ``out/fetched.json`` records
    what is there and the params it was fetched for; it is returned."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    record: dict = {"published": published, "params": params.model_dump(mode="json") if published else None}
    if published:
        fetches = {
            "s2d": lambda: fetch_s2d_checkpoint(params, out / S2D_FILE),
            "mobilefacenet": lambda: _fetch_mobilefacenet(params, out / MOBILEFACENET_FILE),
        }
        missing = []
        for name, fetch in fetches.items():
            try:
                record[name] = fetch()
            except WeightsUnavailable as error:
                missing.append(str(error))
        if missing:
            raise WeightsUnavailable("\n\n".join(missing))
    write_json(out / RECORD_FILE, record)
    return record


def published_files(folder: str | Path, params: VideoWeightsParams) -> dict:
    """The record of the published files in ``folder``, refused unless stage ``video_weights`` fetched them for
    ``params`` and both are there."""
    folder = Path(folder)
    path = folder / RECORD_FILE
    record = read_json(path) if path.is_file() else None
    rerun = "run stage video_weights first (dvc repro video_weights)"
    if record is None or not record.get("published"):
        raise WeightsUnavailable(
            f"{folder}: S2D's published files were not fetched there ({path} "
            f"{'says none were' if record else 'is missing'}); {rerun}"
        )
    wanted = params.model_dump(mode="json")
    if record.get("params") != wanted:
        raise WeightsUnavailable(
            f"{folder} holds the files fetched for video_weights {record.get('params')} ({path}), but params.yaml "
            f"says {wanted}; {rerun}"
        )
    missing = [str(folder / name) for name in (S2D_FILE, MOBILEFACENET_FILE) if not (folder / name).is_file()]
    if missing:
        raise WeightsUnavailable(f"{', '.join(missing)}: missing; {rerun}")
    return record
