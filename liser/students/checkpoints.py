"""Student checkpoints as safetensors, with the architecture and class names in the metadata.

The metadata is one JSON string under one key: safetensors writes several keys in a
per-process random order, which would make identical models differ byte for byte.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from liser.files import atomic_path
from liser.models.student import Student, StudentConfig

__all__ = ["save_student", "load_student"]

METADATA_KEY = "liser_student"


def save_student(path: str | Path, model: Student, classes: list[str], **info: object) -> None:
    if len(set(classes)) != len(classes):
        raise ValueError(f"{path}: class names must be distinct (got {list(classes)})")
    described = {"config": dataclasses.asdict(model.config), "classes": list(classes), "info": info}
    metadata = {METADATA_KEY: json.dumps(described, sort_keys=True, default=str)}
    tensors = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def _config(path: Path, described: object) -> StudentConfig:
    if not isinstance(described, dict) or not isinstance(described.get("config"), dict):
        raise ValueError(f"{path}: its metadata has no student config")
    known = {field.name for field in dataclasses.fields(StudentConfig)}
    unknown = sorted(set(described["config"]) - known)
    if unknown:
        raise ValueError(f"{path}: unknown student config field(s) {', '.join(unknown)}")
    try:
        fields = {k: tuple(map(tuple, v)) if k in ("kernels", "pools") else v for k, v in described["config"].items()}
        config = StudentConfig(**fields)
        config.lstm_input  # noqa: B018 (checks n_mels against the pooling)
    except (TypeError, ValueError) as problem:
        raise ValueError(f"{path}: student config {described['config']} is not usable: {problem}") from None
    return config


def _check_tensors(path: Path, expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> None:
    problems = [f"missing tensor {name}" for name in sorted(set(expected) - set(found))]
    problems += [f"unexpected tensor {name}" for name in sorted(set(found) - set(expected))]
    problems += [
        f"tensor {name} has shape {tuple(found[name].shape)}, the config says {tuple(tensor.shape)}"
        for name, tensor in expected.items()
        if name in found and found[name].shape != tensor.shape
    ]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ValueError(f"{path}: {'; '.join(problems[:3])}{more}")


def load_student(path: str | Path) -> tuple[Student, list[str], dict]:
    """The student, its class names in output order, and what was recorded at training time.

    Everything is checked before the student is returned: a file that is not a readable safetensors file, metadata
    without a usable config, a missing, extra or mis-shaped tensor, or a class list whose length is not the
    model's number of outputs is a ``ValueError`` naming the file and the problem.
    """
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as problem:
        raise ValueError(f"{path}: not a readable safetensors file ({problem})") from None
    if METADATA_KEY not in metadata:
        raise ValueError(f"{path}: not a LiSER student checkpoint (no {METADATA_KEY!r} entry in its metadata)")
    try:
        described = json.loads(metadata[METADATA_KEY])
    except json.JSONDecodeError as problem:
        raise ValueError(f"{path}: its {METADATA_KEY!r} metadata is not valid JSON ({problem})") from None
    model = Student(_config(path, described))
    _check_tensors(path, model.state_dict(), tensors)
    classes = described.get("classes")
    if not isinstance(classes, list) or len(classes) != model.config.speech_classes:
        raise ValueError(
            f"{path}: {len(classes) if isinstance(classes, list) else 'no'} class names for a student with "
            f"{model.config.speech_classes} outputs"
        )
    if len(set(classes)) != len(classes):
        repeated = sorted({name for name in classes if classes.count(name) > 1})
        raise ValueError(
            f"{path}: its class names repeat ({', '.join(map(str, repeated))}): predictions would be ambiguous"
        )
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return model, list(classes), described.get("info", {})
