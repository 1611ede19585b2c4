"""The embedded demo: generated corpora in the exact layouts of the real ones.

``write_demo`` writes ``ravdess/``, ``crema_d/``, ``mspface/`` and ``ferv39k/`` (each in its corpus's layout) under
one folder, which the same readers and stages then use as they would use the real corpora.  The folders are named
by the corpus keys of ``params.yaml``, so that each stage depends on its own corpus's folder only.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from liser.demo.ferv39k import write_ferv39k_demo
from liser.demo.labeled import write_crema_d, write_ravdess
from liser.demo.mspface import write_mspface_demo
from liser.files import write_placeholders
from liser.params import DemoParams

__all__ = ["write_demo", "write_demo_placeholders", "DEMO_FOLDERS"]

DEMO_FOLDERS = {"ravdess": "ravdess", "crema_d": "crema_d", "mspface": "mspface", "ferv39k": "ferv39k"}


def write_demo(out: str | Path, params: DemoParams) -> dict[str, int]:
    """Write every demo corpus under ``out`` (replacing it whole); return file counts."""
    out = Path(out)
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    broken = params.broken_files
    counts = {
        "ravdess": write_ravdess(staging / DEMO_FOLDERS["ravdess"], params.ravdess_actors, params.seed, broken),
        "crema_d": write_crema_d(staging / DEMO_FOLDERS["crema_d"], params.crema_d_actors, params.seed, broken),
    }
    mspface = write_mspface_demo(
        staging / DEMO_FOLDERS["mspface"],
        seed=params.seed,
        n_speakers=params.mspface_speakers,
        n_videos=params.mspface_videos,
        failures=broken,
    )
    counts["mspface"] = mspface["segments"]
    ferv39k = write_ferv39k_demo(
        staging / DEMO_FOLDERS["ferv39k"],
        seed=params.seed,
        clips_per_class=params.ferv39k_clips_per_class,
        n_identities=params.ferv39k_identities,
        workers=2,
    )
    counts["ferv39k"] = ferv39k["clips"]
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return counts


def write_demo_placeholders(out: str | Path, profile: str) -> dict[str, int]:
    """In a profile that reads the real corpora: ``out`` with each demo corpus's folder holding only a note, so the
    stages that depend on those folders find them, and nothing is generated."""
    reason = f"profile {profile}: the real corpora are read (params.yaml corpora, mspface, video_teacher); no demo"
    write_placeholders(out, reason, tuple(DEMO_FOLDERS.values()))
    return {name: 0 for name in DEMO_FOLDERS}
