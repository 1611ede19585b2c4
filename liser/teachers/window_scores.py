"""What both teachers share when they score the unlabeled windows: a fingerprint of the teacher's weights, so
that window softmaxes written by an earlier run are reused only when the same teacher wrote them."""

from __future__ import annotations

import hashlib

import torch

__all__ = ["teacher_fingerprint"]


def teacher_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 of every weight and buffer: earlier window scores are reused only from the same teacher."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().reshape(-1).contiguous().view(torch.uint8).cpu().numpy())
    return digest.hexdigest()
