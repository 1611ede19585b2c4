"""Student checkpoints as safetensors, with the architecture and class names in the metadata.

The metadata is one JSON string under one key: safetensors writes several keys in a
per-process random order, which would make identical models differ byte for byte.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from liser.files import atomic_path
from liser.models.student import Student, StudentConfig

__all__ = ["save_student", "load_student"]

METADATA_KEY = "liser_student"


def save_student(path: str | Path, model: Student, classes: list[str], **info: object) -> None:
    described = {"config": dataclasses.asdict(model.config), "classes": list(classes), "info": info}
    metadata = {METADATA_KEY: json.dumps(described, sort_keys=True, default=str)}
    tensors = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_student(path: str | Path) -> tuple[Student, list[str], dict]:
    """The student, its class names in output order, and what was recorded at training time."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if METADATA_KEY not in metadata:
        raise ValueError(f"{path}: not a LiSER student checkpoint (no {METADATA_KEY!r} entry in its metadata)")
    described = json.loads(metadata[METADATA_KEY])
    fields = {k: tuple(map(tuple, v)) if k in ("kernels", "pools") else v for k, v in described["config"].items()}
    model = Student(StudentConfig(**fields))
    model.load_state_dict(load_file(str(path)), strict=True)
    model.eval()
    return model, described["classes"], described["info"]
