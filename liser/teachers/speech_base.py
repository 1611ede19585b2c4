"""The speech teacher's start point (stage ``speech_base``): a pretrained speech encoder in one project folder,
``data/speech_base``, with a record (``fetched.json``) of where it came from, for the teacher stages to check
against their params.

- :func:`provide_speech_base`: a Hugging Face model repository (``facebook/hubert-base-ls960`` in the paper;
  wav2vec 2.0, WavLM and data2vec-audio checkpoints too) at a revision, taken through the local Hugging Face cache
  (filled by the fetch, or copied in by hand), or a folder written by ``save_pretrained``; copied into the folder
  with its feature extractor's ``preprocessor_config.json``.  Weights are safetensors where the repository has
  them, else ``pytorch_model.bin`` (hubert-base-ls960 has no safetensors), which the teacher reads with
  ``torch.load(weights_only=True)``.
- :func:`record_speech_base`: the record, for any base a stage writes (the embedded demo's pretrained one too):
  the ``speech_base.source`` and ``revision`` it was made for, the commit, the architecture and each file's SHA-256.
- :func:`check_speech_base`: a base whose record names other params than the ones a stage runs with is refused,
  naming both, instead of training the teacher on the wrong model.

Offline (``HF_HUB_OFFLINE=1``) or without a network, a missing base is one :class:`WeightsUnavailable` message
naming the command that fetches it on a connected machine and where to put what that command wrote.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from liser.files import atomic_directory, read_json, write_json
from liser.params import SpeechBaseParams
from liser.teachers.fetching import RECORD_FILE, WeightsUnavailable, one_line, sha256_of

__all__ = ["SPEECH_MODEL_TYPES", "SpeechBaseChoice", "provide_speech_base", "record_speech_base", "check_speech_base"]

log = logging.getLogger(__name__)

_HUB_CONFIGS = ["*.json"]
# The weights of a transformers checkpoint; safetensors first, the pickle-free format.
_HUB_WEIGHTS = (["*.safetensors"], ["*.bin"])
_DEFAULT_REVISION = "main"
# The self-supervised speech encoders the speech teacher is tested with (transformers' model_type).
SPEECH_MODEL_TYPES = ("hubert", "wav2vec2", "wavlm", "data2vec-audio")


@dataclass(frozen=True)
class SpeechBaseChoice:
    """Which base the params name (``speech_base.source`` and ``.revision``): what a teacher stage checks the base
    folder's record against, without reading the rest of the section."""

    source: str
    revision: str | None

    @classmethod
    def of(cls, params: SpeechBaseParams) -> SpeechBaseChoice:
        return cls(params.source, params.revision)


def _cache_folder(repo: str) -> str:
    from huggingface_hub import constants

    return str(Path(constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}")


def _hub_instructions(repo: str, revision: str, cause: BaseException) -> str:
    patterns = " ".join(f'"{pattern}"' for pattern in _HUB_CONFIGS + [p for ps in _HUB_WEIGHTS for p in ps])
    return (
        f"{repo} (revision {revision}) is not on this machine and cannot be fetched here: {one_line(cause)}\n"
        f"On a machine with internet run:\n"
        f"    hf download {repo} --revision {revision} --include {patterns}\n"
        f"then copy its Hugging Face cache folder models--{repo.replace('/', '--')} (under ~/.cache/huggingface/hub "
        f"there) to {_cache_folder(repo)} here, and run the stage again."
    )


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


def record_speech_base(folder: str | Path, params: SpeechBaseParams, commit: str | None = None) -> dict:
    """Write ``folder/fetched.json`` for the base in ``folder`` and return it: the params it was made for
    (``source``, ``revision``), the hub ``commit`` if any, its ``model_type`` and each file's SHA-256."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != RECORD_FILE)
    record = {
        "source": params.source,
        "revision": params.revision,
        "commit": commit,
        "model_type": _speech_model_type(folder),
        "files": {p.relative_to(folder).as_posix(): sha256_of(p) for p in files},
    }
    write_json(folder / RECORD_FILE, record)
    return record


def provide_speech_base(params: SpeechBaseParams, out: str | Path) -> dict:
    """Copy the pretrained speech model ``params.source`` names (a hub repository at ``params.revision``, or a local
    folder; its feature extractor's ``preprocessor_config.json`` comes along) into ``out``, with its record
    (:func:`record_speech_base`), which is returned."""
    source = params.source
    folder = Path(source).expanduser()
    commit = None
    if not folder.is_dir():
        if source.startswith((".", "/", "~")) or source.count("/") != 1:
            raise WeightsUnavailable(f"{source}: no such folder, and not a hub id of the form owner/name")
        revision = params.revision or _DEFAULT_REVISION
        folder = _hub_snapshot(source, revision)
        commit = folder.name
        if revision != commit:
            log.warning(
                "%s: revision %r is commit %s; pin it in params.yaml to rerun exactly", source, revision, commit
            )
    _speech_model_type(folder)  # before anything is copied
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    with atomic_directory(out) as staging:
        for path in tqdm(files, desc="speech base", unit="file"):
            target = staging / path.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)  # the cache's symbolic links resolved
        record = record_speech_base(staging, params, commit)
    log.info("speech base (%s) from %s in %s (%d files)", record["model_type"], source, out, len(record["files"]))
    return record


def check_speech_base(folder: str | Path, choice: SpeechBaseChoice) -> dict:
    """The record of the base in ``folder``, refused unless it was made for ``choice``'s source and revision."""
    folder = Path(folder)
    path = folder / RECORD_FILE
    if not path.is_file():
        raise WeightsUnavailable(
            f"{path}: missing, so what {folder} holds is unknown; stage speech_base writes it (dvc repro speech_base)"
        )
    record = read_json(path)
    made_for = (record.get("source"), record.get("revision"))
    if made_for != (choice.source, choice.revision):
        raise WeightsUnavailable(
            f"{folder} holds the speech base of speech_base.source {made_for[0]!r}, revision {made_for[1]!r} "
            f"({path}), but params.yaml says source {choice.source!r}, revision {choice.revision!r}: run stage "
            f"speech_base first (dvc repro speech_base)"
        )
    return record
