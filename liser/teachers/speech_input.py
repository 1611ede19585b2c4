"""How waveforms reach the speech teacher's encoder: the input convention, and the batches built by it.

The convention has two parts (:class:`WaveformInput`):

- **normalisation**: each utterance (each training crop, each window) scaled to zero mean and unit variance on its
  own, or fed as read.  ``speech_teacher.normalize`` chooses: ``true``, ``false``, or ``checkpoint``, whatever
  the base's feature extractor says (``do_normalize`` in its ``preprocessor_config.json``; no normalisation for a
  base without that file).  HuBERT base was pretrained on raw waveforms (fairseq's ``normalize: False``);
  ``docs/paper-map.md`` says which the paper most likely used.
- **the attention mask** over zero padding, as the base's feature extractor says (``return_attention_mask``;
  a mask for a base without the file).  wav2vec2-base was pretrained without one and is fed its padding unmasked.

The choice is recorded on the model (:func:`waveform_input`) and in each teacher's ``teacher.json``, and a
loaded teacher is fed as it was trained.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from transformers import AutoFeatureExtractor

from liser.features import load_audio
from liser.logs import UserError

__all__ = [
    "SAMPLE_RATE",
    "PREPROCESSOR_FILE",
    "UnsuitableBase",
    "WaveformInput",
    "input_convention",
    "waveform_input",
    "set_waveform_input",
    "load_items",
    "padded_batch",
    "random_crop",
]

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
PREPROCESSOR_FILE = "preprocessor_config.json"  # the feature extractor's settings, beside config.json
_INPUT_ATTR = "liser_waveform_input"  # where a teacher's model config carries its WaveformInput


class UnsuitableBase(UserError, ValueError):
    """A base folder (or a teacher saved on one) the speech teacher cannot be built from."""


@dataclass(frozen=True)
class WaveformInput:
    """How waveforms reach the encoder."""

    normalize: bool | Literal["checkpoint"]  # the setting asked for (speech_teacher.normalize)
    do_normalize: bool  # what it came to: zero mean and unit variance per utterance (each crop, each window)
    return_attention_mask: bool  # False: zero padding is fed unmasked (wav2vec2-base)


def _extractor_settings(base: Path) -> dict | None:
    """The base's feature extractor's ``do_normalize`` and ``return_attention_mask``; None without
    ``preprocessor_config.json`` (asked of transformers without one, it would make up its class's defaults)."""
    if not (base / PREPROCESSOR_FILE).is_file():
        return None
    extractor = AutoFeatureExtractor.from_pretrained(str(base), local_files_only=True)
    rate = getattr(extractor, "sampling_rate", SAMPLE_RATE)
    if rate != SAMPLE_RATE:
        raise UnsuitableBase(f"{base}: its feature extractor expects {rate} Hz audio; the teacher reads {SAMPLE_RATE}")
    return {
        "do_normalize": bool(getattr(extractor, "do_normalize", False)),
        "return_attention_mask": bool(getattr(extractor, "return_attention_mask", True)),
    }


def input_convention(base: str | Path, normalize: bool | Literal["checkpoint"]) -> WaveformInput:
    """The convention for a teacher on the base in folder ``base`` with ``speech_teacher.normalize`` = ``normalize``."""
    settings = _extractor_settings(Path(base))
    if settings is None:
        log.info("%s has no %s: padding masked, normalised only if asked", base, PREPROCESSOR_FILE)
        settings = {"do_normalize": False, "return_attention_mask": True}
    do_normalize = settings["do_normalize"] if normalize == "checkpoint" else bool(normalize)
    return WaveformInput(normalize, do_normalize, settings["return_attention_mask"])


def waveform_input(model: torch.nn.Module) -> WaveformInput:
    """The convention the teacher was built or loaded with."""
    recorded = getattr(model.config, _INPUT_ATTR, None)
    if recorded is None:
        raise ValueError(f"{type(model).__name__}: built without an input convention (build_speech_teacher sets it)")
    return WaveformInput(**recorded)


def set_waveform_input(model: torch.nn.Module, convention: WaveformInput) -> None:
    setattr(model.config, _INPUT_ATTR, asdict(convention))


def load_items(utterances: pd.DataFrame) -> list[tuple[np.ndarray, int]]:
    """(waveform, label) for every utterance (``path``, ``label`` columns), mono at 16 kHz."""
    return [(load_audio(path, SAMPLE_RATE), int(label)) for path, label in zip(utterances["path"], utterances["label"])]


def _normalized(waveform: np.ndarray) -> np.ndarray:
    """Zero mean and unit variance over the waveform's own samples, as Wav2Vec2FeatureExtractor computes them."""
    samples = waveform.astype(np.float64)
    return ((samples - samples.mean()) / np.sqrt(samples.var() + 1e-7)).astype(np.float32)


def padded_batch(
    waveforms: Sequence[np.ndarray], convention: WaveformInput, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Zero-padded batch (each waveform normalised first where the convention says so) on ``device``, and its
    attention mask (1 on real samples), or None where the model is fed its padding unmasked."""
    if convention.do_normalize:
        waveforms = [_normalized(w) for w in waveforms]
    longest = max(len(w) for w in waveforms)
    batch = np.zeros((len(waveforms), longest), dtype=np.float32)
    mask = np.zeros((len(waveforms), longest), dtype=np.int64)
    for row, waveform in enumerate(waveforms):
        batch[row, : len(waveform)] = waveform
        mask[row, : len(waveform)] = 1
    if not convention.return_attention_mask:
        return torch.from_numpy(batch).to(device), None
    return torch.from_numpy(batch).to(device), torch.from_numpy(mask).to(device)


def random_crop(waveform: np.ndarray, samples: int, rng: np.random.Generator) -> np.ndarray:
    """A random span of ``samples`` samples; the whole waveform when it is not longer."""
    if len(waveform) <= samples:
        return waveform
    start = int(rng.integers(0, len(waveform) - samples + 1))
    return waveform[start : start + samples]
