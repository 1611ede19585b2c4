"""The teachers' published start points, fetched once, pinned and checked, into the project.

- The speech base (``facebook/hubert-base-ls960`` in the paper; wav2vec 2.0, WavLM and data2vec-audio
  checkpoints too): a Hugging Face model repository at a revision, taken through the local Hugging Face cache
  (filled by the fetch, or copied in by hand) and copied into the stage's folder with a record of the commit it
  came from, its feature extractor's settings included. A folder written by ``save_pretrained`` works too.
- S2D's FERV39k checkpoint (a file of the ``cyinen/S2D`` model repository at a revision) and MobileFaceNet's
  landmark weights (a file of the S2D authors' code repository at a commit URL), each checked against the
  SHA-256 in params.

A file already in place with the right checksum is not fetched again; a wrong one is an error naming the file and
both hashes. Offline (``HF_HUB_OFFLINE=1``) or without a network, what is missing is one
:class:`WeightsUnavailable` message naming the command that fetches it on a connected machine and where to put
what that command wrote. A checksum left ``null`` in params is recorded on first use and logged, so it can be
pinned.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from liser.files import atomic_directory, atomic_path, read_json, write_json
from liser.params import VideoWeightsParams

__all__ = [
    "RECORD_FILE",
    "SPEECH_MODEL_TYPES",
    "S2D_FILE",
    "MOBILEFACENET_FILE",
    "WeightsUnavailable",
    "ChecksumMismatch",
    "sha256_of",
    "offline",
    "provide_speech_base",
    "fetch_s2d_checkpoint",
    "fetch_url_file",
    "fetch_video_weights",
]

log = logging.getLogger(__name__)

RECORD_FILE = "fetched.json"
S2D_FILE = "s2d_checkpoint.pth"
MOBILEFACENET_FILE = "mobilefacenet_model_best.pth.tar"
# The weights of a transformers checkpoint; safetensors first, the pickle-free format.
_HUB_CONFIGS = ["*.json"]
_HUB_WEIGHTS = (["*.safetensors"], ["*.bin"])
_CHUNK = 1 << 20
# The self-supervised speech encoders the speech teacher is tested with (transformers' model_type).
SPEECH_MODEL_TYPES = ("hubert", "wav2vec2", "wavlm", "data2vec-audio")


class WeightsUnavailable(RuntimeError):
    """Published weights a stage needs are neither on this machine nor reachable from it."""


class ChecksumMismatch(ValueError):
    """A weights file whose SHA-256 is not the one in params."""


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def offline() -> bool:
    """Whether the user asked for no network, the Hugging Face way (``HF_HUB_OFFLINE``)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _checked(path: Path, expected: str | None, key: str, actual: str | None = None) -> str:
    """The file's SHA-256 (``actual`` when already known), checked against ``expected`` (params ``key``) if pinned."""
    actual = actual or sha256_of(path)
    if expected is None:
        log.warning("%s: SHA-256 %s, not pinned; set %s: %s in params.yaml to pin it", path, actual, key, actual)
    elif actual != expected.lower():
        raise ChecksumMismatch(
            f"{path}: SHA-256 is {actual}, params.yaml {key} says {expected}. The file is damaged or not the "
            f"published one: delete it and run the stage again to fetch it, or, if the publisher replaced the file "
            f"on purpose, set {key} to the new hash."
        )
    return actual


def _in_place(out: Path, sha256: str | None, key: str) -> dict:
    """The record of a file already in place, after its checksum check: it is not fetched again."""
    log.info("%s already in place", out)
    return {"file": str(out), "sha256": _checked(out, sha256, key), "fetched": False}


# --- the speech base: a Hugging Face model repository --------------------------------------------------


def _cache_folder(repo: str) -> str:
    from huggingface_hub import constants

    return str(Path(constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}")


def _hub_instructions(repo: str, revision: str, cause: BaseException) -> str:
    weights = " ".join(f'"{pattern}"' for pattern in _HUB_CONFIGS + _HUB_WEIGHTS[0])
    return (
        f"{repo} (revision {revision}) is not on this machine and cannot be fetched here: {_one_line(cause)}\n"
        f"On a machine with internet run:\n"
        f"    hf download {repo} --revision {revision} --include {weights}\n"
        f"then copy its Hugging Face cache folder models--{repo.replace('/', '--')} (under ~/.cache/huggingface/hub "
        f"there) to {_cache_folder(repo)} here, and run the stage again."
    )


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def _hub_snapshot(repo: str, revision: str) -> Path:
    """The repository's configuration and weights at ``revision`` in the local cache, fetched if missing."""
    from huggingface_hub import snapshot_download

    try:
        for weights in _HUB_WEIGHTS:
            folder = Path(snapshot_download(repo, revision=revision, allow_patterns=_HUB_CONFIGS + weights))
            if any(folder.glob(weights[0])):
                return folder
    except Exception as error:  # the hub's offline, network, missing-revision and missing-repository errors
        raise WeightsUnavailable(_hub_instructions(repo, revision, error)) from None
    raise WeightsUnavailable(
        f"{repo} (revision {revision}): the snapshot in {folder} has no weights file "
        f"({', '.join(p for patterns in _HUB_WEIGHTS for p in patterns)})"
    )


def _speech_model_type(folder: Path) -> str:
    """The architecture ``config.json`` names, checked to be one the speech teacher builds (transformers has an
    audio-classification model for it); one not among :data:`SPEECH_MODEL_TYPES` is built but untested."""
    config = folder / "config.json"
    if not config.is_file():
        raise WeightsUnavailable(f"{folder}: no config.json; not a model folder written by save_pretrained")
    model_type = read_json(config).get("model_type")
    from transformers.models.auto.modeling_auto import MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES

    if model_type not in MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES:
        raise WeightsUnavailable(
            f"{config}: model_type {model_type!r} is not a speech encoder the teacher can classify audio with; "
            f"use one of {', '.join(SPEECH_MODEL_TYPES)}"
        )
    if model_type not in SPEECH_MODEL_TYPES:
        log.warning(
            "%s: model_type %s is not among those tested (%s)", config, model_type, ", ".join(SPEECH_MODEL_TYPES)
        )
    return model_type


def provide_speech_base(source: str, revision: str | None, out: str | Path) -> dict:
    """Copy a pretrained speech model (HuBERT, wav2vec 2.0, WavLM, data2vec-audio; its feature extractor's
    ``preprocessor_config.json`` comes along) into ``out``: a hub repository at ``revision``, or a local folder.

    Returns the record also written to ``out/fetched.json``: where it came from, the commit, each file's SHA-256,
    the architecture's ``model_type``.
    """
    folder = Path(source).expanduser()
    if folder.is_dir():
        record: dict = {"folder": str(folder)}
    elif source.startswith((".", "/", "~")) or source.count("/") != 1:
        raise WeightsUnavailable(f"{source}: no such folder, and not a hub id of the form owner/name")
    else:
        revision = revision or "main"
        folder = _hub_snapshot(source, revision)
        record = {"repo": source, "revision": revision, "commit": folder.name}
        if revision != folder.name:
            log.warning(
                "%s: revision %r is commit %s; pin it in params.yaml to rerun exactly", source, revision, folder.name
            )
    model_type = _speech_model_type(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    with atomic_directory(out) as staging:
        for path in tqdm(files, desc="speech base", unit="file"):
            target = staging / path.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)  # the cache's symbolic links resolved
        record["files"] = {str(p.relative_to(staging)): sha256_of(p) for p in sorted(staging.rglob("*")) if p.is_file()}
        record["model_type"] = model_type
        write_json(staging / RECORD_FILE, record)
    log.info(
        "speech base (%s) from %s in %s (%d files)", model_type, record.get("repo", source), out, len(record["files"])
    )
    return record


# --- the video teacher's files -------------------------------------------------------------------------


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


def fetch_s2d_checkpoint(repo: str, revision: str, file: str | None, sha256: str | None, out: str | Path) -> dict:
    """S2D's published checkpoint as ``out`` (e.g. ``data/weights/s2d/s2d_checkpoint.pth``), checked."""
    out = Path(out)
    key = "video_weights.s2d.sha256"
    if out.is_file():
        return _in_place(out, sha256, key)
    include = file or "*[Ff][Ee][Rr][Vv]*"
    how = (
        f"On a machine with internet run:\n    hf download {repo} --revision {revision} --include "
        f'"{include}" --local-dir S2D\nthen copy the FERV39k checkpoint it wrote under S2D/ to {out} here, '
        f"and run the stage again."
    )
    from huggingface_hub import hf_hub_download

    try:
        file = file or _pick_s2d_file(repo, revision)
        cached = Path(hf_hub_download(repo, file, revision=revision))
    except WeightsUnavailable:
        raise
    except Exception as error:  # the hub's offline, network, missing-revision and missing-file errors
        raise WeightsUnavailable(
            f"{repo}/{file or '<FERV39k checkpoint>'} (revision {revision}) is not on this machine and cannot be "
            f"fetched here: {_one_line(error)}\n{how}"
        ) from None
    with atomic_path(out) as tmp:
        shutil.copyfile(cached, tmp)
        digest = _checked(tmp, sha256, key)
    log.info("S2D checkpoint %s (revision %s) in %s", file, revision, out)
    return {"file": str(out), "repo": repo, "revision": revision, "name": file, "sha256": digest, "fetched": True}


def fetch_url_file(url: str, sha256: str | None, out: str | Path, key: str, timeout_s: float = 60.0) -> dict:
    """The file at ``url`` (http or https) as ``out``, checked against ``sha256`` (params key ``key``)."""
    out = Path(out)
    if out.is_file():
        return _in_place(out, sha256, key)
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("https", "http"):
        raise ValueError(f"{key.rsplit('.', 1)[0]}.url: only http(s) URLs are fetched (got {url!r})")
    how = (
        f"On a machine with internet run:\n    curl -L -o {out.name} {url}\n"
        f"then copy {out.name} to {out} here, and run the stage again."
    )
    if offline():
        raise WeightsUnavailable(f"{out.name} is not on this machine and HF_HUB_OFFLINE is set.\n{how}")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, atomic_path(out) as tmp:
            total = int(response.headers.get("Content-Length") or 0) or None
            with open(tmp, "wb") as handle, tqdm(total=total, unit="B", unit_scale=True, desc=out.name) as bar:
                while chunk := response.read(_CHUNK):
                    handle.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
            _checked(out, sha256, key, actual=digest.hexdigest())
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise WeightsUnavailable(f"{url} could not be fetched: {_one_line(error)}\n{how}") from None
    log.info("%s fetched from %s", out, url)
    return {"file": str(out), "url": url, "sha256": digest.hexdigest(), "fetched": True}


def fetch_video_weights(params: VideoWeightsParams, published: bool, out: str | Path) -> dict:
    """S2D's checkpoint and MobileFaceNet's file in ``out`` when the video teacher starts from them (``published``);
    otherwise nothing is fetched. Either way ``out/fetched.json`` records what is there.

    Both files are tried before failing, so one message says everything that is missing.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    record: dict = {"published": published}
    if published:
        s2d, mobilefacenet = params.s2d, params.mobilefacenet
        fetches = {
            "s2d": lambda: fetch_s2d_checkpoint(s2d.repo, s2d.revision, s2d.file, s2d.sha256, out / S2D_FILE),
            "mobilefacenet": lambda: fetch_url_file(
                mobilefacenet.url, mobilefacenet.sha256, out / MOBILEFACENET_FILE, "video_weights.mobilefacenet.sha256"
            ),
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
