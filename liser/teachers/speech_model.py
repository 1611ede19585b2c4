"""The speech teacher's model (section 3.2): a self-supervised speech encoder (HuBERT in the paper; wav2vec 2.0,
WavLM and data2vec-audio work the same way) with a classification head and LoRA on its self-attention
projections; built from a base folder, saved as an adapter beside ``teacher.json``, and loaded again.

The base is a folder written by ``save_pretrained`` (stage ``speech_base``'s ``data/speech_base``), read through
transformers' audio-classification auto classes, offline, its weights from safetensors or, for a pickle
``pytorch_model.bin``, with ``torch.load(weights_only=True)``.  Only the LoRA matrices of the attention's query,
key, value and output projections, the projector and the classifier train; every other weight stays as
pretrained.  A saved teacher is its adapter and heads (peft safetensors) and ``teacher.json``: its classes, the
base it was trained on (the base folder's record, :mod:`liser.teachers.speech_base`), the input convention
(:mod:`liser.teachers.speech_input`), LoRA and its targets.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from transformers import (
    MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING,
    AutoConfig,
    AutoModelForAudioClassification,
    PreTrainedModel,
)

from liser.files import atomic_directory, read_json, write_json
from liser.logs import UserError
from liser.params import SpeechTeacherParams
from liser.teachers.fetching import RECORD_FILE, UnsafeWeights
from liser.teachers.speech_input import (
    UnsuitableBase,
    WaveformInput,
    input_convention,
    set_waveform_input,
    waveform_input,
)

__all__ = [
    "ATTENTION_PROJECTIONS",
    "TEACHER_FILE",
    "SpeechTeacherUnavailable",
    "build_speech_teacher",
    "lora_targets",
    "lora_module_names",
    "parameter_counts",
    "logits",
    "save_speech_teacher",
    "load_speech_teacher",
    "fold_folder",
]

log = logging.getLogger(__name__)

# LoRA sits on the four projections of every encoder layer's self-attention, in every architecture: the set
# the paper's HuBERT teacher adapts, kept the same for wav2vec 2.0, WavLM and data2vec-audio so teachers of
# different encoders differ in their pretrained weights only.  Nothing else inside the attention (WavLM's
# gated relative position bias, ``gru_rel_pos_linear``, and its bucket embedding), nothing in the
# feed-forward block, the feature projection or the convolutional front end.
ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")
_ATTENTION_MODULE = re.compile(r"(?:.+\.)?encoder\.layers\.\d+\.attention")
_TRAINED_IN_FULL = ["projector", "classifier"]

TEACHER_FILE = "teacher.json"
ADAPTER_CONFIG = "adapter_config.json"  # peft's
_BASE_ATTR = "liser_base"  # where a teacher's model config carries the record of the base it was built on


class SpeechTeacherUnavailable(UserError, FileNotFoundError):
    """The base folder a speech teacher is built on is not there, or not the one a teacher was trained on."""


# --- the base ------------------------------------------------------------------------------------------------


def _base_identity(base: Path) -> dict | None:
    """Where the base came from, as stage ``speech_base`` recorded it (None for a folder it did not write)."""
    record = base / RECORD_FILE
    if not record.is_file():
        return None
    described = read_json(record)
    return {key: described.get(key) for key in ("source", "revision", "commit")}


def _pretrained_base(base: Path, num_labels: int) -> PreTrainedModel:
    """The encoder in the folder ``base`` with a fresh classification head (projector, classifier), whichever
    audio-classification architecture its ``config.json`` names."""
    if not base.is_dir():
        raise SpeechTeacherUnavailable(
            f"{base}: no such folder (in the pipeline, stage speech_base writes the base there: dvc repro speech_base)"
        )
    try:
        config = AutoConfig.from_pretrained(str(base), num_labels=num_labels, local_files_only=True)
        if type(config) not in MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING:
            raise UnsuitableBase(
                f"{base}: transformers has no audio-classification model for model_type "
                f"{config.model_type!r}; the speech teacher starts from a self-supervised speech encoder "
                f"(hubert, wav2vec2, wavlm, data2vec-audio)"
            )
        model = AutoModelForAudioClassification.from_pretrained(
            str(base), config=config, local_files_only=True, weights_only=True
        )
    except OSError as error:  # transformers' "not found" for an incomplete folder
        raise SpeechTeacherUnavailable(f"{base}: not a complete save_pretrained folder ({error})") from error
    except pickle.UnpicklingError as error:
        raise UnsafeWeights(
            f"{base}: its pickle weights file holds objects a safe load (torch.load with weights_only=True) does not "
            f"build, so it is not read; it is not a published checkpoint ({str(error).strip().splitlines()[-1]})"
        ) from None
    return model.float()  # a checkpoint saved in half precision still trains in float32


# --- LoRA ----------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_peft() -> Iterator[None]:
    """Hide the deprecation warning peft 0.21 triggers in transformers 5 on every wrap."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def _is_linear(module: torch.nn.Module | None) -> bool:
    """A linear layer, or one LoRA already wraps."""
    return isinstance(getattr(module, "base_layer", module), torch.nn.Linear)


def lora_targets(base: torch.nn.Module) -> list[str]:
    """Full names of the modules LoRA adapts: :data:`ATTENTION_PROJECTIONS` of every encoder layer's
    self-attention, found in the model, whichever architecture it is."""
    targets = []
    for name, module in base.named_modules():
        if not _ATTENTION_MODULE.fullmatch(name):
            continue
        missing = [p for p in ATTENTION_PROJECTIONS if not _is_linear(getattr(module, p, None))]
        if missing:
            raise ValueError(f"{type(base).__name__}: the attention {name} has no linear {', '.join(missing)}")
        targets += [f"{name}.{projection}" for projection in ATTENTION_PROJECTIONS]
    if not targets:
        raise ValueError(
            f"{type(base).__name__}: no encoder layer with a self-attention (encoder.layers.<i>.attention) holding "
            f"{', '.join(ATTENTION_PROJECTIONS)}; LoRA would have nothing to adapt"
        )
    return targets


def _with_lora(base: PreTrainedModel, params: SpeechTeacherParams) -> PeftModel:
    base.freeze_feature_encoder()  # frozen anyway; this also skips building its graph
    config = LoraConfig(
        r=params.lora_rank,
        lora_alpha=params.lora_alpha,
        lora_dropout=params.lora_dropout,
        target_modules=lora_targets(base),
        modules_to_save=list(_TRAINED_IN_FULL),
    )
    with _quiet_peft():
        return get_peft_model(base, config)


def build_speech_teacher(base: str | Path, num_labels: int, params: SpeechTeacherParams, *, seed: int) -> PeftModel:
    """The encoder in the folder ``base`` (HuBERT, wav2vec 2.0, WavLM, data2vec-audio) for sequence classification
    with LoRA on the attention projections (``params.lora_*``), fed as ``params.normalize`` and the base's
    ``preprocessor_config.json`` say (:func:`liser.teachers.speech_input.input_convention`).  ``seed`` fixes the
    new head's and the LoRA matrices' initial weights.  Nothing is downloaded."""
    base = Path(base)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = _pretrained_base(base, num_labels)
        convention = input_convention(base, params.normalize)
        set_waveform_input(encoder, convention)
        setattr(encoder.config, _BASE_ATTR, _base_identity(base))
        log.info("speech teacher on %s, input %s", type(encoder).__name__, convention)
        return _with_lora(encoder, params)


def _strip_peft_prefix(name: str) -> str:
    return name.removeprefix("base_model.model.")


def lora_module_names(model: PeftModel) -> list[str]:
    """Names (as in the plain encoder model) of the modules that carry LoRA matrices."""
    return [_strip_peft_prefix(name) for name, module in model.named_modules() if isinstance(module, LoraLayer)]


def parameter_counts(model: PeftModel) -> dict[str, int]:
    """Frozen (the base model's) and trained (LoRA, projector, classifier) parameter counts."""
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"frozen": frozen, "trainable": trained}


def logits(model: torch.nn.Module, waveforms: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Float32 logits; half precision under autocast on a GPU, float32 on a CPU."""
    if waveforms.device.type == "cuda":
        with torch.autocast(device_type="cuda", dtype=torch.float16):
            return model(input_values=waveforms, attention_mask=attention_mask).logits.float()
    return model(input_values=waveforms, attention_mask=attention_mask).logits.float()


# --- the saved teacher ---------------------------------------------------------------------------------------


def save_speech_teacher(directory: str | Path, model: PeftModel, classes: Sequence[str], **info: object) -> None:
    """The adapter and trained heads (peft safetensors) and ``teacher.json`` (classes, the base's record,
    architecture, input convention, LoRA and its targets, ``info``); replaces ``directory`` whole."""
    directory = Path(directory)
    encoder = model.get_base_model()
    if len(classes) != encoder.config.num_labels:
        raise ValueError(f"{len(classes)} class names for a model with {encoder.config.num_labels} outputs")
    lora = model.peft_config["default"]
    described = {
        "classes": list(classes),
        "base": getattr(encoder.config, _BASE_ATTR, None),
        "architecture": type(encoder).__name__,
        "input": asdict(waveform_input(model)),
        "lora": {
            "rank": lora.r,
            "alpha": lora.lora_alpha,
            "dropout": lora.lora_dropout,
            "targets": lora_module_names(model),
        },
        "info": info,
    }
    with atomic_directory(directory) as staging:
        model.save_pretrained(str(staging), safe_serialization=True)
        (staging / "README.md").unlink(missing_ok=True)  # peft's blank model card
        # the base is given where the teacher is loaded: its path (another in every checkout) is not saved; peft
        # keeps the targets as a set, written in an order that changes with Python's string hashing
        adapter = read_json(staging / ADAPTER_CONFIG)
        adapter.update(base_model_name_or_path=None, target_modules=sorted(adapter["target_modules"]))
        write_json(staging / ADAPTER_CONFIG, adapter)
        write_json(staging / TEACHER_FILE, described)


def _described(directory: Path) -> dict:
    path = directory / TEACHER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory}: not a speech teacher (no {TEACHER_FILE})")
    described = read_json(path)
    missing = [key for key in ("classes", "base", "input", "info") if key not in described]
    if missing:
        raise UnsuitableBase(f"{path}: lacks {missing}; written by an older version: run its stage again")
    return described


def load_speech_teacher(directory: str | Path, base: str | Path) -> tuple[PeftModel, list[str], dict]:
    """The teacher saved in ``directory`` on the base in the folder ``base`` (eval mode, frozen), its class names
    and recorded info.

    A base whose record (stage ``speech_base``'s) is not the one the teacher was trained on is refused.  Waveforms
    are fed as at training time (the recorded convention).  Weights are read from safetensors only.
    """
    directory, base = Path(directory), Path(base)
    described = _described(directory)
    trained_on, found = described["base"], _base_identity(base)
    if trained_on is not None and trained_on != found:
        raise SpeechTeacherUnavailable(
            f"{directory} was trained on the speech base {trained_on}, but {base} holds {found}: train the teacher "
            f"again on this base (its stage), or give the base it was trained on"
        )
    with torch.random.fork_rng(devices=[]):
        # the fresh head's weights are replaced by the saved ones, but peft keeps the originals beside them: drawn
        # alike on every load, they keep the teacher's weights fingerprint (and so the reuse of its scores) stable
        torch.manual_seed(0)
        encoder = _pretrained_base(base, len(described["classes"]))
    set_waveform_input(encoder, WaveformInput(**described["input"]))
    setattr(encoder.config, _BASE_ATTR, trained_on)
    with _quiet_peft():
        model = PeftModel.from_pretrained(encoder, str(directory), is_trainable=False)
    model.eval()
    return model, described["classes"], described["info"]


def fold_folder(root: str | Path, fold: int) -> Path:
    """The folder of fold ``fold``'s teacher among a corpus's."""
    return Path(root) / f"fold{fold}"
