"""Loading S2D's published checkpoints safely and strictly; saving and loading the ones this project trains.

Published files are pickles (``torch.save``). They are read with ``torch.load(weights_only=True)``, which builds
only tensors, containers and primitive values, plus one explicitly allowed class, ``argparse.Namespace`` (the
fine-tuned files keep their training arguments in one). Anything else in a file, a custom class instance or a
``__reduce__`` payload such as ``os.system``, stops the load before it is built (:class:`UnsafeCheckpointError`):
no code from a file ever runs.

Loading is strict: every missing, unexpected or mis-shaped tensor is listed by name (with both shapes when
mis-shaped) in a :class:`CheckpointMismatchError`, and nothing is loaded.

Layouts understood, each reduced to S2D's own key names (``S2D.state_dict()``):

- fine-tuned S2D (FERV39k, DFEW / MAFW folds): ``{'model': state_dict, 'optimizer', 'epoch', 'scaler', 'args'}``;
- static pre-training (AffectNet-7): the state dict under ``model_state_dict`` or ``model``, with the mapping of
  :func:`map_static_keys`: ``landmark*`` keys (the landmark branch, which S2D loads from its own file) dropped,
  the final norm ``norm.*`` renamed ``ln_post.*``;
- a bare state dict (a mapping of names to tensors).

In every layout a ``module.`` prefix carried by all keys (a model saved from inside ``DataParallel``) is removed.

MobileFaceNet's file (``landmark/mobilefacenet_model_best.pth.tar``) keeps its tensors under ``state_dict``; the
stages S2D never runs (``conv_45``, ``conv_5``, ``conv_6_sep``, ``output_layer``) are skipped explicitly, the rest
loaded strictly. Its BatchNorm ``num_batches_tracked`` counters, unused in eval mode and absent from files saved by
old PyTorch versions, are the only keys that may be missing.

Checkpoints this project trains are safetensors files (no pickle at all): S2D's tensors under their own names, the
landmark branch's under ``mobilefacenet.``, and the configuration, class names and training information as one
JSON string in the metadata.
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import json
import pickle
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from liser.files import atomic_path
from liser.models.mobilefacenet import UNUSED_STAGES, MobileFaceNet
from liser.models.s2d import S2D, S2DConfig

__all__ = [
    "UnsafeCheckpointError",
    "CheckpointMismatchError",
    "CheckpointInfo",
    "read_torch_checkpoint",
    "map_static_keys",
    "s2d_state_dict_from_checkpoint",
    "check_state_dict",
    "load_s2d_checkpoint",
    "load_mobilefacenet",
    "save_s2d",
    "load_s2d",
]

SAFE_GLOBALS: tuple[type, ...] = (argparse.Namespace,)
METADATA_KEY = "liser_s2d"
LANDMARK_PREFIX = "mobilefacenet."


class UnsafeCheckpointError(ValueError):
    """The file holds an object that safe loading does not build (arbitrary classes or callables)."""


class CheckpointMismatchError(ValueError):
    """The tensors do not match the model's: missing, unexpected or mis-shaped keys."""


@dataclasses.dataclass(frozen=True)
class CheckpointInfo:
    """What a published S2D checkpoint said about itself."""

    layout: str  # "fine-tuned", "static" or "bare"
    epoch: int | None
    args: dict[str, Any]  # the training arguments (argparse.Namespace), empty when absent
    initialised: tuple[str, ...]  # keys the caller allowed to be missing, left at the model's values


# --- reading -------------------------------------------------------------------------------------------------


def read_torch_checkpoint(path: str | Path) -> Any:
    """Unpickle ``path`` with ``weights_only=True``; beyond tensors and containers only ``argparse.Namespace``."""
    try:
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's reason, e.g. "GLOBAL posix.system" for an os.system payload
        found = re.search(r"(?:GLOBAL [\w.]+|Unsupported [^\n]*)", str(error))
        what = found.group(0).strip() if found else "an unsupported pickle instruction"
        raise UnsafeCheckpointError(
            f"{path}: refused to load: the safe reader, which builds only tensors, containers and "
            f"argparse.Namespace, stopped at {what}; nothing from the file was run"
        ) from None


def _tensor_mapping(value: Any, where: str) -> dict[str, torch.Tensor]:
    if not isinstance(value, Mapping):
        raise CheckpointMismatchError(f"{where}: expected a mapping of names to tensors, got {type(value).__name__}")
    for key, tensor in value.items():
        if not isinstance(key, str) or not isinstance(tensor, torch.Tensor):
            raise CheckpointMismatchError(f"{where}: entry {key!r} is a {type(tensor).__name__}, not a tensor")
    return dict(value)


def _strip_module_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if state and all(key.startswith("module.") for key in state):
        return {key[len("module.") :]: tensor for key, tensor in state.items()}
    return state


def map_static_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Static pre-training names -> S2D names: drop ``landmark*`` keys, rename ``norm.*`` to ``ln_post.*``.

    Only the top-level ``norm.`` prefix is renamed (``blocks.0.norm1`` is not). Identity on the fine-tuned layout.
    """
    mapped: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if key.startswith("landmark"):
            continue
        if key.startswith("norm."):
            renamed = "ln_post." + key[len("norm.") :]
            if renamed in state:
                raise CheckpointMismatchError(f"both {renamed!r} and its static-layout name {key!r} are present")
            key = renamed
        mapped[key] = tensor
    return mapped


def s2d_state_dict_from_checkpoint(checkpoint: Any, where: str = "checkpoint") -> tuple[dict[str, torch.Tensor], str]:
    """The S2D state dict inside a published checkpoint's object, under S2D's names, and the layout it came in."""
    if not isinstance(checkpoint, Mapping):
        raise CheckpointMismatchError(f"{where}: expected a dict, got {type(checkpoint).__name__}")
    if "model_state_dict" in checkpoint:
        state, layout = _tensor_mapping(checkpoint["model_state_dict"], f"{where}['model_state_dict']"), "static"
    elif "model" in checkpoint:
        state, layout = _tensor_mapping(checkpoint["model"], f"{where}['model']"), "fine-tuned"
    elif checkpoint and all(isinstance(value, torch.Tensor) for value in checkpoint.values()):
        state, layout = _tensor_mapping(checkpoint, where), "bare"
    else:
        raise CheckpointMismatchError(
            f"{where}: no S2D weights found: expected 'model' or 'model_state_dict', "
            f"got keys {sorted(map(str, checkpoint))}"
        )
    state = _strip_module_prefix(state)
    if any(key.startswith("landmark") for key in state) or ("norm.weight" in state and "ln_post.weight" not in state):
        layout = "static"
    return map_static_keys(state), layout


# --- strict loading ------------------------------------------------------------------------------------------


def check_state_dict(
    expected: Mapping[str, torch.Tensor],
    given: Mapping[str, torch.Tensor],
    where: str,
    may_be_missing: Iterable[str] = (),
) -> None:
    """Raise :class:`CheckpointMismatchError` naming every missing, unexpected or mis-shaped key.

    ``may_be_missing`` are ``fnmatch`` patterns of expected keys that ``given`` may lack.
    """
    patterns = tuple(may_be_missing)
    problems = [
        f"missing key {key!r} (expected shape {tuple(tensor.shape)})"
        for key, tensor in expected.items()
        if key not in given and not any(fnmatch.fnmatchcase(key, pattern) for pattern in patterns)
    ]
    problems += [f"unexpected key {key!r} (shape {tuple(given[key].shape)})" for key in given if key not in expected]
    problems += [
        f"mis-shaped key {key!r}: checkpoint {tuple(given[key].shape)}, model {tuple(tensor.shape)}"
        for key, tensor in expected.items()
        if key in given and given[key].shape != tensor.shape
    ]
    if problems:
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise CheckpointMismatchError(f"{where}: does not match the model:\n  " + "\n  ".join(shown))


def _load_strictly(
    model: nn.Module, state: Mapping[str, torch.Tensor], where: str, may_be_missing: Iterable[str] = ()
) -> tuple[str, ...]:
    """Check, fill the allowed missing keys with the model's own values, load; return the filled keys."""
    own = model.state_dict()
    check_state_dict(own, state, where, may_be_missing)
    filled = tuple(key for key in own if key not in state)
    model.load_state_dict({**{key: own[key] for key in filled}, **state}, strict=True)
    return filled


def load_s2d_checkpoint(path: str | Path, model: S2D, allow_missing: Iterable[str] = ()) -> CheckpointInfo:
    """Load a published S2D checkpoint (any layout above) strictly into ``model``.

    ``allow_missing`` takes ``fnmatch`` patterns of keys the file may lack, left at the model's values: none by
    default. A static image checkpoint, for instance, may be used to start a video model by naming the parts
    an image model could not have trained (e.g. ``"temporal_embedding"``, ``"prompt_blocks.*.TMA.*"``).
    """
    checkpoint = read_torch_checkpoint(path)
    state, layout = s2d_state_dict_from_checkpoint(checkpoint, str(path))
    initialised = _load_strictly(model, state, str(path), allow_missing)
    args = checkpoint.get("args")
    epoch = checkpoint.get("epoch")
    return CheckpointInfo(
        layout=layout,
        epoch=int(epoch) if isinstance(epoch, int) else None,
        args=dict(vars(args)) if isinstance(args, argparse.Namespace) else {},
        initialised=initialised,
    )


def load_mobilefacenet(path: str | Path, model: MobileFaceNet) -> tuple[str, ...]:
    """Load MobileFaceNet's published weights (under ``state_dict``) into ``model``; return the skipped keys."""
    checkpoint = read_torch_checkpoint(path)
    if not isinstance(checkpoint, Mapping) or "state_dict" not in checkpoint:
        found = sorted(map(str, checkpoint)) if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
        raise CheckpointMismatchError(f"{path}: expected MobileFaceNet tensors under 'state_dict', found {found}")
    state = _strip_module_prefix(_tensor_mapping(checkpoint["state_dict"], f"{path}['state_dict']"))
    skipped = tuple(key for key in state if key.split(".", 1)[0] in UNUSED_STAGES)
    used = {key: tensor for key, tensor in state.items() if key not in skipped}
    _load_strictly(model, used, str(path), may_be_missing=("*.num_batches_tracked",))
    return skipped


# --- this project's checkpoints ------------------------------------------------------------------------------


def save_s2d(path: str | Path, model: S2D, classes: list[str] | None = None, **info: object) -> None:
    """Write ``model`` and its landmark branch as one safetensors file, with config, classes and ``info``."""
    from safetensors.torch import save_file

    described = {
        "config": dataclasses.asdict(model.config),
        "classes": list(classes) if classes is not None else None,
        "info": info,
    }
    # One JSON string under one key: safetensors orders several metadata keys differently from run to run.
    metadata = {METADATA_KEY: json.dumps(described, sort_keys=True, default=str)}
    tensors = {key: tensor.detach().contiguous() for key, tensor in model.state_dict().items()}
    tensors |= {LANDMARK_PREFIX + key: t.detach().contiguous() for key, t in model.landmark.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_s2d(path: str | Path) -> tuple[S2D, list[str] | None, dict]:
    """A model written by :func:`save_s2d` (strictly, landmark branch included), in eval mode; its classes and info."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if METADATA_KEY not in metadata:
        raise CheckpointMismatchError(f"{path}: not a LiSER S2D checkpoint (no {METADATA_KEY!r} entry in its metadata)")
    described = json.loads(metadata[METADATA_KEY])
    model = S2D(S2DConfig(**described["config"]))
    tensors = load_file(str(path))
    s2d_state = {key: tensor for key, tensor in tensors.items() if not key.startswith(LANDMARK_PREFIX)}
    landmark_state = {key[len(LANDMARK_PREFIX) :]: t for key, t in tensors.items() if key.startswith(LANDMARK_PREFIX)}
    _load_strictly(model, s2d_state, str(path))
    _load_strictly(model.landmark, landmark_state, f"{path} (landmark branch, {LANDMARK_PREFIX}*)")
    model.eval()
    return model, described["classes"], described["info"]
