"""The embedded demo: generated corpora in the exact layouts of the real ones.

``write_demo`` writes ``RAVDESS/`` and ``CREMA-D/`` under one folder, which the same
readers then read as they would read the real corpora.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..params import DemoParams
from .labeled import write_crema_d, write_ravdess

__all__ = ["write_demo", "DEMO_FOLDERS"]

DEMO_FOLDERS = {"ravdess": "RAVDESS", "crema_d": "CREMA-D"}


def write_demo(out: str | Path, params: DemoParams) -> dict[str, int]:
    """Write every demo corpus under ``out`` (replacing it whole); return file counts."""
    out = Path(out)
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    counts = {
        "ravdess": write_ravdess(staging / DEMO_FOLDERS["ravdess"], params.ravdess_actors, params.seed, params.broken_files),
        "crema_d": write_crema_d(staging / DEMO_FOLDERS["crema_d"], params.crema_d_actors, params.seed, params.broken_files),
    }
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return counts
