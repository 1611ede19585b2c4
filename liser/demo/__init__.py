"""The embedded demo: generated corpora in the exact layouts of the real ones.

``write_demo`` writes ``ravdess/``, ``crema_d/``, ``mspface/`` and ``ferv39k/`` (each in its corpus's layout) under
one folder, which the same readers and stages then use as they would use the real corpora.  The folders are named
by the corpus keys of ``params.yaml``.  Beside them, ``manifests/<corpus>.tsv`` lists each corpus's files with their
size and SHA-256: the stages that read a corpus depend on its manifest, one small file DVC checks at once, instead
of on a folder of thousands of files (the demo's FERV39k has over 13,000 frames) that it would walk every time.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from liser.demo.ferv39k import write_ferv39k_demo
from liser.demo.labeled import write_crema_d, write_ravdess
from liser.demo.mspface import write_mspface_demo
from liser.files import PLACEHOLDER, atomic_directory, folder_manifest
from liser.params import DemoParams

__all__ = ["write_demo", "write_demo_placeholders", "DEMO_FOLDERS", "MANIFESTS"]

DEMO_FOLDERS = {"ravdess": "ravdess", "crema_d": "crema_d", "mspface": "mspface", "ferv39k": "ferv39k"}
MANIFESTS = "manifests"


def _write_manifests(root: Path) -> None:
    for name, folder in DEMO_FOLDERS.items():
        (root / MANIFESTS).mkdir(exist_ok=True)
        (root / MANIFESTS / f"{name}.tsv").write_text(folder_manifest(root / folder))


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
    _write_manifests(staging)
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return counts


def write_demo_placeholders(out: str | Path, profile: str) -> dict[str, int]:
    """In a profile that reads the real corpora: ``out`` with each demo corpus's folder holding only a note, so the
    stages that depend on those folders find them, and nothing is generated."""
    reason = f"profile {profile}: the real corpora are read (params.yaml corpora, mspface, video_teacher); no demo"
    with atomic_directory(out) as staging:
        for folder in DEMO_FOLDERS.values():
            (staging / folder).mkdir()
            (staging / folder / PLACEHOLDER).write_text(reason + "\n")
        _write_manifests(staging)
    return {name: 0 for name in DEMO_FOLDERS}
