"""Small builders shared by the tests."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]


def section(name: str, **changes):
    """The params section ``name`` of the project's params.yaml (demo profile), with ``changes``, validated:
    params.yaml is where every setting's value lives, so the tests start from it."""
    from liser.params import load_params

    current = getattr(load_params(REPO / "params.yaml"), name)
    return type(current).model_validate({**current.model_dump(), **changes})


def write_tone(
    path: Path, seconds: float = 1.0, sample_rate: int = 16000, channels: int = 1, freq: float = 220.0
) -> Path:
    """A short sine tone written as 16-bit PCM WAV."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tone = 0.3 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    data = np.stack([tone] * channels, axis=1) if channels > 1 else tone
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, sample_rate, subtype="PCM_16")
    return path


def copy_project(project: Path) -> Path:
    """A copy of the working tree's project files (committed or not, ignored ones left out, no dvc.lock) in a new
    git repository at ``project``, for DVC to run in."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in filter(None, listed.split("\0")):
        if name != "dvc.lock" and (REPO / name).is_file():
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, project / name)
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    return project
