"""Student checkpoints as safetensors, with the architecture and class names in the metadata."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from .files import atomic_path
from .models.student import Student, StudentConfig

__all__ = ["save_student", "load_student"]


def save_student(path: str | Path, model: Student, classes: list[str], **info: object) -> None:
    config = dataclasses.asdict(model.config)
    metadata = {"config": json.dumps(config), "classes": json.dumps(classes), "info": json.dumps(info, default=str)}
    tensors = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_student(path: str | Path) -> tuple[Student, list[str], dict]:
    """The student, its class names in output order, and what was recorded at training time."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if "config" not in metadata:
        raise ValueError(f"{path}: not a LiSER student checkpoint (no config in its metadata)")
    fields = json.loads(metadata["config"])
    fields = {k: tuple(map(tuple, v)) if k in ("kernels", "pools") else v for k, v in fields.items()}
    model = Student(StudentConfig(**fields))
    model.load_state_dict(load_file(str(path)), strict=True)
    model.eval()
    return model, json.loads(metadata["classes"]), json.loads(metadata.get("info", "{}"))
