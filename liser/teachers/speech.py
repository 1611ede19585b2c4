"""The speech teacher (section 3.2): a self-supervised speech encoder (HuBERT in the paper; wav2vec 2.0,
WavLM and data2vec-audio work the same way) fine-tuned for speech emotion recognition with LoRA on the
self-attention projections, one per labeled corpus and fold.

The teacher is built through transformers' audio-classification auto classes from the base folder
(``save_pretrained``, or a hub snapshot in the local cache).  Waveforms reach it as the base's feature
extractor says (``preprocessor_config.json``): per-utterance zero-mean unit-variance normalisation
(``do_normalize``) and an attention mask over padding (``return_attention_mask``).  A base without that
file, like the demo's, gets raw 16 kHz waveforms and a mask, as HuBERT base was pretrained.  Only the LoRA
matrices of the attention's query, key, value and output projections, the projector and the classifier
are trained; every other weight stays as pretrained.  It is trained on the fold's labeled speakers that
``speech_teacher.split`` gives it, keeps the epoch with the best UAR on the others
(:mod:`liser.teachers.speech_runs`), and then scores each 16-frame window of the unlabeled video.

Without a checkpoint (``source=None``) a small HuBERT with random weights stands in, so the
embedded demo runs the same code on two CPU cores.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from safetensors.torch import load_file, save_file
from torch.nn import functional as F
from tqdm import tqdm
from transformers import (
    CONFIG_MAPPING,
    MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING,
    AutoConfig,
    AutoFeatureExtractor,
    AutoModelForAudioClassification,
    PreTrainedModel,
)

from liser.features import load_audio
from liser.files import atomic_directory, read_json, write_json
from liser.metrics import Scores, score
from liser.runtime import resolve_device
from liser.teachers.window_scores import teacher_fingerprint
from liser.training import shuffled_batches, train_best_epoch, trainable_state
from liser.window_tables import earlier_probabilities, softmax_frame, write_softmaxes

__all__ = [
    "SAMPLE_RATE",
    "ATTENTION_PROJECTIONS",
    "DEMO_CONFIG",
    "SpeechTeacherUnavailable",
    "WaveformInput",
    "waveform_input",
    "build_speech_teacher",
    "lora_targets",
    "lora_module_names",
    "parameter_counts",
    "teacher_split",
    "load_items",
    "teacher_logits",
    "evaluate_speech_teacher",
    "SpeechTeacherResult",
    "train_speech_teacher",
    "save_speech_teacher",
    "load_speech_teacher",
    "teacher_fingerprint",
    "window_softmaxes",
]

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
# LoRA sits on the four projections of every encoder layer's self-attention, in every architecture: the set
# the paper's HuBERT teacher adapts, kept the same for wav2vec 2.0, WavLM and data2vec-audio so teachers of
# different encoders differ in their pretrained weights only.  Nothing else inside the attention (WavLM's
# gated relative position bias, ``gru_rel_pos_linear``, and its bucket embedding), nothing in the
# feed-forward block, the feature projection or the convolutional front end.
ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")
_ATTENTION_MODULE = re.compile(r"(?:.+\.)?encoder\.layers\.\d+\.attention")
_TRAINED_IN_FULL = ["projector", "classifier"]

# The demo's stand-in for hubert-base: the same conv strides (one frame per 20 ms) and the
# same kinds of layers, about 1/900 of the parameters, so a fold trains in seconds on a CPU.
DEMO_CONFIG: dict = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "conv_dim": (32, 32, 32, 32, 32, 32, 32),
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 4,
    "classifier_proj_size": 32,
    "layerdrop": 0.0,  # with two layers, dropping one is most of the model
    "mask_time_length": 2,  # SpecAugment spans of 40 ms fit sub-second utterances
}

TEACHER_FILE = "teacher.json"
DEMO_BASE_FILE = "base.safetensors"
PREPROCESSOR_FILE = "preprocessor_config.json"  # the feature extractor's settings, beside config.json
_INPUT_ATTR = "liser_waveform_input"  # where a teacher's model config carries its WaveformInput


class SpeechTeacherUnavailable(FileNotFoundError):
    """The pretrained speech checkpoint is not on this machine."""


@dataclass(frozen=True)
class WaveformInput:
    """How waveforms reach the encoder, as its feature extractor says.  The defaults are a base without a
    ``preprocessor_config.json`` (the demo's): raw waveforms, padding masked."""

    do_normalize: bool = False  # zero mean and unit variance per utterance (each crop, each window)
    return_attention_mask: bool = True  # False: zero padding is fed unmasked (wav2vec2-base)


# --- the model -------------------------------------------------------------------------------


def _how_to_get(source: str) -> str:
    folder = f"checkpoints/{source.rsplit('/', 1)[-1]}"
    return (
        f"Speech checkpoint {source!r} is not available offline. On a machine with internet run\n"
        f"    hf download {source}\n"
        f"(`huggingface-cli download {source}` with huggingface_hub < 1.0); it fills the Hugging Face cache "
        f"(~/.cache/huggingface/hub, or $HF_HOME/hub): copy that folder to the same place here. Or there run\n"
        f'    python -c "from transformers import AutoFeatureExtractor, AutoModel; '
        f"AutoModel.from_pretrained('{source}').save_pretrained('{folder}'); "
        f"AutoFeatureExtractor.from_pretrained('{source}').save_pretrained('{folder}')\"\n"
        f"and pass that directory as the teacher's source."
    )


def _looks_like_path(source: str) -> bool:
    return source.startswith((".", "/", "~")) or source.count("/") > 1 or "\\" in source


def _locate(source: str | Path) -> str:
    """The directory ``source`` names, or ``source`` itself as a hub id to look up in the local cache."""
    source = str(source)
    directory = Path(source).expanduser()
    if directory.is_dir():
        return str(directory)
    if _looks_like_path(source):
        raise SpeechTeacherUnavailable(
            f"{source}: no such directory (in the pipeline, stage speech_base writes the base there: "
            f"dvc repro speech_base).\n" + _how_to_get("facebook/hubert-base-ls960")
        )
    return source


def _pretrained_base(location: str, num_labels: int) -> PreTrainedModel:
    """The encoder with a fresh classification head (projector, classifier), read from a directory or the local
    hub cache only, whichever audio-classification architecture its ``config.json`` names."""
    try:
        config = AutoConfig.from_pretrained(location, num_labels=num_labels, local_files_only=True)
        if type(config) not in MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING:
            raise ValueError(
                f"{location}: transformers has no audio-classification model for model_type "
                f"{config.model_type!r}; the speech teacher starts from a self-supervised speech encoder "
                f"(hubert, wav2vec2, wavlm, data2vec-audio)"
            )
        model = AutoModelForAudioClassification.from_pretrained(location, config=config, local_files_only=True)
    except OSError as error:  # transformers' "not found locally" for hub ids and incomplete folders
        raise SpeechTeacherUnavailable(
            _how_to_get(location) + f"\n(There is no directory {location!r} here either; transformers said: {error})"
        ) from error
    return model.float()  # a checkpoint saved in half precision still trains in float32


def _cached_file(location: str, name: str) -> bool:
    """Whether the directory, or the hub repository's snapshot in the local cache, holds ``name``."""
    if Path(location).is_dir():
        return (Path(location) / name).is_file()
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(location, name), str)


def _feature_extractor_settings(location: str) -> WaveformInput:
    """``do_normalize`` and ``return_attention_mask`` of the base's feature extractor, or the defaults where the
    base has no ``preprocessor_config.json`` (asked of transformers without one, it would make up its class's
    defaults from the model's config)."""
    if not _cached_file(location, PREPROCESSOR_FILE):
        log.info("%s has no %s: raw waveforms, padding masked", location, PREPROCESSOR_FILE)
        return WaveformInput()
    extractor = AutoFeatureExtractor.from_pretrained(location, local_files_only=True)
    rate = getattr(extractor, "sampling_rate", SAMPLE_RATE)
    if rate != SAMPLE_RATE:
        raise ValueError(f"{location}: its feature extractor expects {rate} Hz audio; the teacher reads {SAMPLE_RATE}")
    return WaveformInput(
        do_normalize=bool(getattr(extractor, "do_normalize", False)),
        return_attention_mask=bool(getattr(extractor, "return_attention_mask", True)),
    )


def waveform_input(model: torch.nn.Module) -> WaveformInput:
    """The input settings the teacher was built or loaded with (the defaults for a model built elsewhere)."""
    recorded = getattr(model.config, _INPUT_ATTR, None)
    return WaveformInput(**recorded) if recorded else WaveformInput()


def _set_waveform_input(model: PreTrainedModel, settings: WaveformInput) -> None:
    setattr(model.config, _INPUT_ATTR, asdict(settings))


def _demo_base(num_labels: int, small_config: dict | None) -> PreTrainedModel:
    config = AutoConfig.for_model("hubert", **{**DEMO_CONFIG, **(small_config or {}), "num_labels": num_labels})
    return AutoModelForAudioClassification.from_config(config)


def _config_from(model_type: str, values: dict) -> AutoConfig:
    """A saved configuration (``config.to_dict()``) of the named architecture."""
    if model_type not in CONFIG_MAPPING:
        raise ValueError(f"model_type {model_type!r} is not one this version of transformers knows")
    return CONFIG_MAPPING[model_type].from_dict(values)


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


def _with_lora(base: PreTrainedModel, rank: int, alpha: float, dropout: float) -> PeftModel:
    base.freeze_feature_encoder()  # frozen anyway; this also skips building its graph
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=lora_targets(base),
        modules_to_save=list(_TRAINED_IN_FULL),
    )
    with _quiet_peft():
        return get_peft_model(base, config)


def build_speech_teacher(
    source: str | Path | None,
    num_labels: int,
    lora_rank: int = 8,
    lora_alpha: float = 16.0,
    lora_dropout: float = 0.1,
    small_config: dict | None = None,
    *,
    seed: int = 0,
) -> PeftModel:
    """A self-supervised speech encoder (HuBERT, wav2vec 2.0, WavLM, data2vec-audio) for sequence
    classification with LoRA on the attention projections.

    ``source`` is a hub id found in the local Hugging Face cache (``facebook/hubert-base-ls960``)
    or a directory written by ``save_pretrained``; nothing is ever downloaded.  Its
    ``preprocessor_config.json``, if any, says how waveforms are fed (:class:`WaveformInput`).  ``None`` builds
    the demo's small random HuBERT from :data:`DEMO_CONFIG` updated with ``small_config``.
    ``seed`` fixes the new head's, the LoRA matrices' and the demo base's initial weights.
    """
    if source is not None and small_config is not None:
        raise ValueError("small_config describes the demo model; it cannot be combined with a checkpoint source")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if source is None:
            base, settings = _demo_base(num_labels, small_config), WaveformInput()
        else:
            location = _locate(source)
            base, settings = _pretrained_base(location, num_labels), _feature_extractor_settings(location)
        _set_waveform_input(base, settings)
        log.info("speech teacher on %s, input %s", type(base).__name__, settings)
        return _with_lora(base, lora_rank, lora_alpha, lora_dropout)


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


def _logits(
    model: torch.nn.Module, waveforms: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Float32 logits; half precision under autocast on a GPU, float32 on a CPU."""
    if waveforms.device.type == "cuda":
        with torch.autocast(device_type="cuda", dtype=torch.float16):
            return model(input_values=waveforms, attention_mask=attention_mask).logits.float()
    return model(input_values=waveforms, attention_mask=attention_mask).logits.float()


# --- data ------------------------------------------------------------------------------------


def teacher_split(
    train_utterances: pd.DataFrame,
    fraction: float = 0.8,
    seed: int = 0,
    *,
    folds: pd.DataFrame | None = None,
    fold: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a fold's training utterances by speaker into the teacher's training and selection sets.

    About ``1 - fraction`` of the speakers (at least one, never all) select the epoch; each
    gender gives its share of them, so both parts stay gender-balanced where the speakers
    allow.  Given the fold table (``folds``, ``fold``), every speaker must be one of the
    fold's non-test speakers.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    if folds is not None:
        _check_no_test_speakers(train_utterances, folds, fold)
    speakers = train_utterances.drop_duplicates("speaker")
    if len(speakers) < 2:
        raise ValueError(f"{len(speakers)} speaker(s) cannot be split into training and selection speakers")
    genders = speakers["gender"] if "gender" in speakers else pd.Series("any", index=speakers.index)
    by_gender = {g: sorted(map(str, speakers.loc[genders == g, "speaker"])) for g in sorted(genders.unique())}
    wanted = min(len(speakers) - 1, max(1, math.floor((1 - fraction) * len(speakers) + 0.5)))
    shares = {g: wanted * len(members) / len(speakers) for g, members in by_gender.items()}
    counts = {g: math.floor(share) for g, share in shares.items()}
    by_remainder = sorted(by_gender, key=lambda g: (-(shares[g] - counts[g]), g))
    for g in by_remainder[: wanted - sum(counts.values())]:
        counts[g] += 1
    rng = np.random.default_rng(seed)
    selection = {s for g, members in by_gender.items() for s in rng.permutation(members)[: counts[g]]}
    held_out = train_utterances["speaker"].astype(str).isin(selection)
    return train_utterances[~held_out].reset_index(drop=True), train_utterances[held_out].reset_index(drop=True)


def _check_no_test_speakers(utterances: pd.DataFrame, folds: pd.DataFrame, fold: int | None) -> None:
    if fold is None:
        raise ValueError("checking against the fold table needs the fold number")
    members = folds.loc[folds["fold"] == fold]
    if members.empty:
        raise ValueError(f"the fold table has no fold {fold}")
    roles = dict(zip(members["speaker"].astype(str), members["role"]))
    speakers = set(utterances["speaker"].astype(str))
    unknown = sorted(speakers - set(roles))
    tested = sorted(s for s in speakers & set(roles) if roles[s] == "test")
    if unknown:
        raise ValueError(f"fold {fold}: speakers not in the fold table: {unknown}")
    if tested:
        raise ValueError(f"fold {fold}: test speakers must not train or select the teacher: {tested}")


def load_items(utterances: pd.DataFrame, sample_rate: int = SAMPLE_RATE) -> list[tuple[np.ndarray, int]]:
    """(waveform, label) for every utterance (``path``, ``label`` columns), mono at ``sample_rate``."""
    return [(load_audio(path, sample_rate), int(label)) for path, label in zip(utterances["path"], utterances["label"])]


def _normalized(waveform: np.ndarray) -> np.ndarray:
    """Zero mean and unit variance over the waveform's own samples, as Wav2Vec2FeatureExtractor computes them."""
    samples = waveform.astype(np.float64)
    return ((samples - samples.mean()) / np.sqrt(samples.var() + 1e-7)).astype(np.float32)


def _padded(
    waveforms: Sequence[np.ndarray], settings: WaveformInput, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Zero-padded batch (each waveform normalised first where ``settings`` say so) on ``device``, and its
    attention mask (1 on real samples), or None where the model is fed its padding unmasked."""
    if settings.do_normalize:
        waveforms = [_normalized(w) for w in waveforms]
    longest = max(len(w) for w in waveforms)
    batch = np.zeros((len(waveforms), longest), dtype=np.float32)
    mask = np.zeros((len(waveforms), longest), dtype=np.int64)
    for row, waveform in enumerate(waveforms):
        batch[row, : len(waveform)] = waveform
        mask[row, : len(waveform)] = 1
    if not settings.return_attention_mask:
        return torch.from_numpy(batch).to(device), None
    return torch.from_numpy(batch).to(device), torch.from_numpy(mask).to(device)


def _random_crop(waveform: np.ndarray, samples: int, rng: np.random.Generator) -> np.ndarray:
    if len(waveform) <= samples:
        return waveform
    start = int(rng.integers(0, len(waveform) - samples + 1))
    return waveform[start : start + samples]


def _centre(waveform: np.ndarray, samples: int | None) -> np.ndarray:
    if samples is None or len(waveform) <= samples:
        return waveform
    start = (len(waveform) - samples) // 2
    return waveform[start : start + samples]


# --- whole-utterance prediction and training -------------------------------------------------


@torch.inference_mode()
def teacher_logits(
    model: torch.nn.Module,
    waveforms: Sequence[np.ndarray],
    batch_size: int = 8,
    max_seconds: float | None = None,
    device: str | torch.device | None = None,
    sample_rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """(N, K) logits of whole utterances (the centre ``max_seconds`` of longer ones).

    Utterances are batched in order of length, so padding stays small; the attention mask, for a
    model that takes one, keeps it out of attention and pooling.
    """
    device = resolve_device(device)
    model.eval().to(device)
    settings = waveform_input(model)
    limit = None if max_seconds is None else round(max_seconds * sample_rate)
    clipped = [_centre(w, limit) for w in waveforms]
    order = np.argsort([len(w) for w in clipped], kind="stable")
    logits = np.zeros((len(clipped), model.config.num_labels), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch, mask = _padded([clipped[i] for i in rows], settings, device)
        logits[rows] = _logits(model, batch, mask).cpu().numpy()
    return logits


def evaluate_speech_teacher(
    model: torch.nn.Module,
    items: Sequence[tuple[np.ndarray, int]],
    batch_size: int = 8,
    max_seconds: float | None = None,
    device: str | torch.device | None = None,
) -> tuple[Scores, np.ndarray]:
    """UAR / WAR (and confusion) of whole utterances, and their logits."""
    logits = teacher_logits(model, [w for w, _ in items], batch_size, max_seconds, device)
    return score(np.array([label for _, label in items]), logits), logits


@dataclass
class SpeechTeacherResult:
    model: PeftModel  # holding the best-selection epoch's weights, in eval mode
    best_epoch: int
    history: pd.DataFrame  # epoch, train_loss, validation_uar, validation_war


def train_speech_teacher(
    train_items: Sequence[tuple[np.ndarray, int]],
    validation_items: Sequence[tuple[np.ndarray, int]],
    model: PeftModel,
    *,
    epochs: int = 50,
    lr: float = 1e-4,
    batch_size: int = 8,
    max_seconds: float = 4.0,
    weight_decay: float = 0.01,
    seed: int = 0,
    eval_batch_size: int = 8,
    eval_max_seconds: float | None = None,
    device: str | torch.device | None = None,
    sample_rate: int = SAMPLE_RATE,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> SpeechTeacherResult:
    """Fine-tune ``model``'s trainable weights with AdamW and cross-entropy on random crops of at
    most ``max_seconds`` (shorter utterances are zero-padded, masked where the model takes a mask; each crop
    normalised where it is to be, :class:`WaveformInput`); keep the epoch with the best UAR on
    ``validation_items`` (ties keep the earlier epoch).  ``on_epoch``: as in :func:`liser.training.train_best_epoch`."""
    if not train_items or not validation_items:
        raise ValueError("the teacher needs training and validation utterances")
    device = resolve_device(device)
    torch.manual_seed(seed)
    np.random.seed(seed)  # transformers draws SpecAugment's time masks from NumPy's global generator
    rng = np.random.default_rng(seed)
    model.to(device)
    settings = waveform_input(model)
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=lr, weight_decay=weight_decay)
    crop = round(max_seconds * sample_rate)
    labels = np.array([label for _, label in train_items], dtype=np.int64)

    def train_epoch(epoch: int) -> float:
        model.train()
        losses = []
        for batch in shuffled_batches(len(train_items), batch_size, rng):
            waveforms, mask = _padded([_random_crop(train_items[i][0], crop, rng) for i in batch], settings, device)
            logits = model(input_values=waveforms, attention_mask=mask).logits
            loss = F.cross_entropy(logits, torch.from_numpy(labels[batch]).to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return float(np.mean(losses))

    def validate() -> Scores:
        return evaluate_speech_teacher(model, validation_items, eval_batch_size, eval_max_seconds, device)[0]

    best_epoch, history = train_best_epoch(
        model, epochs, train_epoch, validate, keep=trainable_state, name="speech teacher", on_epoch=on_epoch
    )
    model.eval()
    return SpeechTeacherResult(model=model, best_epoch=best_epoch, history=history)


# --- checkpoints -----------------------------------------------------------------------------


def _frozen_base_state(model: PeftModel) -> dict[str, torch.Tensor]:
    """The plain encoder's state dict inside a LoRA model: LoRA layers' and head wrappers' originals."""
    state = {}
    for name, tensor in model.get_base_model().state_dict().items():
        if ".lora_" in name or ".modules_to_save." in name:
            continue
        plain = name.replace(".base_layer.", ".").replace(".original_module.", ".")
        state[plain] = tensor.detach().to("cpu").contiguous()
    return state


def save_speech_teacher(directory: str | Path, model: PeftModel, classes: Sequence[str], **info: object) -> None:
    """The adapter and trained heads (peft safetensors), ``teacher.json`` (classes, base, architecture, input
    settings, LoRA and its targets, ``info``) and, for the demo's random base, its configuration and frozen
    weights; replaces ``directory`` whole."""
    directory = Path(directory)
    base = model.get_base_model()
    if len(classes) != base.config.num_labels:
        raise ValueError(f"{len(classes)} class names for a model with {base.config.num_labels} outputs")
    source = base.name_or_path or None  # empty for a model built from a config
    values = {key: value for key, value in base.config.to_dict().items() if key != _INPUT_ATTR}
    lora = model.peft_config["default"]
    described = {
        "classes": list(classes),
        "base_source": source,
        "architecture": type(base).__name__,
        "base_config": {"model_type": base.config.model_type, "config": values} if source is None else None,
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
        if source is None:
            save_file(_frozen_base_state(model), str(staging / DEMO_BASE_FILE))
        write_json(staging / TEACHER_FILE, described)


def _saved_base_config(described: dict) -> tuple[str, dict] | None:
    """(model_type, configuration) of a teacher that carries its own base; None for a pretrained base."""
    if "hubert_config" in described:  # teachers saved before other architectures: HuBERT only
        stored = described["hubert_config"]
        return None if stored is None else ("hubert", stored)
    stored = described["base_config"]
    return None if stored is None else (stored["model_type"], stored["config"])


def load_speech_teacher(
    directory: str | Path, base_source: str | Path | None = None
) -> tuple[PeftModel, list[str], dict]:
    """The teacher saved in ``directory`` (eval mode, frozen), its class names and recorded info.

    The pretrained base is read from ``base_source`` when given, else from the source recorded
    at training time; a demo teacher carries its own base weights.  Waveforms are fed as at
    training time (the recorded :class:`WaveformInput`; the defaults for teachers saved before
    it was recorded).  Weights are read from safetensors only.
    """
    directory = Path(directory)
    if not (directory / TEACHER_FILE).is_file():
        raise FileNotFoundError(f"{directory}: not a speech teacher (no {TEACHER_FILE})")
    described = read_json(directory / TEACHER_FILE)
    num_labels = len(described["classes"])
    saved = _saved_base_config(described)
    if saved is not None:
        base = AutoModelForAudioClassification.from_config(_config_from(*saved))
        base.load_state_dict(load_file(str(directory / DEMO_BASE_FILE)), strict=True)
    else:
        base = _pretrained_base(_locate(base_source or described["base_source"]), num_labels)
    _set_waveform_input(base, WaveformInput(**described.get("input", {})))
    with _quiet_peft():
        model = PeftModel.from_pretrained(base, str(directory), is_trainable=False)
    model.eval()
    return model, described["classes"], described["info"]


# --- scoring the unlabeled windows -----------------------------------------------------------


def _window_spans(
    windows: pd.DataFrame, rows: np.ndarray, manifest: pd.DataFrame, sample_rate: int
) -> Iterator[tuple[int, np.ndarray]]:
    """(row, audio) for each window in ``rows``, reading each segment's wav once.

    A span is samples round(start_s * rate) to round(end_s * rate); the few samples a window
    may run past the end of a segment's audio are zeros.
    """
    paths = dict(zip(manifest["utterance"], manifest["path"]))
    pending = windows.iloc[rows].assign(row=rows)
    missing = sorted(set(pending["segment"]) - set(paths))
    if missing:
        raise ValueError(f"{len(missing)} segments of the window table are not in the manifest, e.g. {missing[:3]}")
    for segment, members in pending.groupby("segment", sort=False):
        audio = load_audio(paths[segment], sample_rate)
        for row, start_s, end_s in zip(members["row"], members["start_s"], members["end_s"]):
            start, stop = round(start_s * sample_rate), round(end_s * sample_rate)
            span = audio[start:stop]
            short = stop - start - len(span)
            if short > 0:
                log.debug("%s: the window at %.3f s runs %d samples past the audio", segment, start_s, short)
                span = np.pad(span, (0, short))
            yield row, span


@torch.inference_mode()
def window_softmaxes(
    model: torch.nn.Module,
    manifest: pd.DataFrame,
    windows: pd.DataFrame,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    *,
    classes: Sequence[str] | None = None,
    out: str | Path | None = None,
    checkpoint_every: int = 20000,
    sample_rate: int = SAMPLE_RATE,
) -> pd.DataFrame:
    """The teacher's class probabilities for every window of the window table, as a window-softmax table
    (:func:`liser.window_tables.softmax_frame`): one row per window, in the table's order; the columns are named
    after ``classes`` (``p_0 .. p_{K-1}`` without them).

    With ``out``, windows already scored there by the same teacher (:func:`teacher_fingerprint`, same segment,
    window and span) are reused, only the others are scored, and the union is written back atomically, also every
    ``checkpoint_every`` new windows so an interrupted run resumes.  Windows of the same length are
    batched together, so no padding ever enters the model and a window's probabilities do not depend
    on its batch; each window is one utterance to the model, normalised on its own where the teacher's
    :class:`WaveformInput` says so.
    """
    device = resolve_device(device)
    model.eval().to(device)
    out = None if out is None else Path(out)
    classes = [str(k) for k in range(model.config.num_labels)] if classes is None else list(classes)
    if len(classes) != model.config.num_labels:
        raise ValueError(f"{len(classes)} class names for {model.config.num_labels} outputs")
    windows = windows.reset_index(drop=True)
    fingerprint = teacher_fingerprint(model)
    probabilities = earlier_probabilities(windows, out, classes, fingerprint)
    todo = np.flatnonzero(np.isnan(probabilities).any(axis=1))
    log.info("scoring %d windows, %d reused from earlier results", len(todo), len(windows) - len(todo))
    settings = waveform_input(model)
    buckets: dict[int, list[tuple[int, np.ndarray]]] = {}
    scored_since_save = 0

    def scored_so_far() -> pd.DataFrame:
        done = ~np.isnan(probabilities).any(axis=1)
        return softmax_frame(windows[done], probabilities[done], classes)

    def flush(length: int) -> int:
        rows, spans = zip(*buckets.pop(length))
        batch, _ = _padded(spans, settings, device)  # same-length windows: no padding, nothing to mask
        probabilities[list(rows)] = torch.softmax(_logits(model, batch), dim=-1).cpu().numpy()
        return len(rows)

    with tqdm(total=len(todo), desc="speech teacher windows", unit="window") as progress:
        for row, span in _window_spans(windows, todo, manifest, sample_rate):
            buckets.setdefault(len(span), []).append((row, span))
            if len(buckets[len(span)]) == batch_size:
                done = flush(len(span))
                progress.update(done)
                scored_since_save += done
            if out is not None and scored_since_save >= checkpoint_every:
                write_softmaxes(out, scored_so_far(), classes, fingerprint)
                scored_since_save = 0
        for length in list(buckets):
            progress.update(flush(length))
    table = scored_so_far()
    if out is not None:
        write_softmaxes(out, table, classes, fingerprint)
    return table
