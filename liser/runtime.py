"""Where and how PyTorch runs: the device, and process-wide CPU settings for small machines."""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import sys
from pathlib import Path

import torch

__all__ = [
    "keep_freed_buffers",
    "resolve_device",
    "native_bfloat16",
    "resolve_precision",
    "describe_machine",
]

log = logging.getLogger(__name__)


def keep_freed_buffers() -> None:
    """Stop glibc from handing every large freed buffer back to the OS.

    Every forward pass of the student allocates and frees the same large activation
    buffers (38 MB for the first block at batch 25); by default glibc unmaps them and the
    next pass page-faults them in again.  Keeping them cut training time by about 20 %
    and inference time per window by 25-45 % on the 2-core CPU here
    (benchmarks/frontend_and_student.py).
    """
    if sys.platform != "linux":
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return
    m_trim_threshold, m_mmap_max = -1, -4
    libc.mallopt(m_mmap_max, 0)  # serve large buffers from the heap too
    libc.mallopt(m_trim_threshold, 1024 * 1024 * 1024)


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` (or ``None``): the GPU when PyTorch sees one, else the CPU; anything else as given."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 in hardware: a GPU that PyTorch says supports it, or a CPU with
    AVX512-BF16 or AMX.  Elsewhere bfloat16 is emulated, and autocast to it made a CPU student step about 8x
    slower than float32 (AVX2-only AMD EPYC)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    capability = getattr(torch._C._cpu, "_get_cpu_capability", dict)()
    if isinstance(capability, dict) and capability:
        return bool(capability.get("avx512_bf16") or capability.get("amx_bf16"))
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, check, lambda: False)() for check in checks)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto``: bfloat16 where ``device`` has it natively, float32 elsewhere; the choice is logged."""
    if precision not in ("auto", "float32", "bfloat16"):
        raise ValueError(f"precision must be auto, float32 or bfloat16, got {precision!r}")
    if precision != "auto":
        return precision
    chosen = "bfloat16" if native_bfloat16(device) else "float32"
    log.info("precision auto: %s on %s (native bfloat16: %s)", chosen, device, chosen == "bfloat16")
    return chosen


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine(threads: int | None = None) -> str:
    """What a published figure was measured on: CPU model, cores, native bfloat16, and the GPU if any."""
    cpu = torch.device("cpu")
    text = f"{_cpu_model()}, {os.cpu_count()} cores, native bfloat16 {'yes' if native_bfloat16(cpu) else 'no'}"
    if threads is not None:
        text += f", {threads} thread(s) used"
    if torch.cuda.is_available():
        text += f"; GPU {torch.cuda.get_device_name(0)}"
    return text + f"; torch {torch.__version__}"
