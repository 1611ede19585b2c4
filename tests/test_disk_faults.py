"""A stage that runs out of disk, or finds its output folder read-only, keeps its previous complete output and
stops with one line naming the file, exit status 2, and no temporary file left behind."""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import pandas as pd
import pytest

from liser.manifests import COLUMNS, Manifest, write_manifest
from tests.helpers import REPO, copy_project, write_tone


@pytest.fixture
def project(tmp_path):
    project = copy_project(tmp_path / "project")
    rows = []
    for i in range(3):
        path = write_tone(project / "audio" / f"u{i}.wav", seconds=2.0, freq=200.0 + 50 * i)
        rows.append({column: "" for column in COLUMNS} | {"utterance": f"u{i}", "path": f"audio/u{i}.wav"})
    write_manifest(project / "manifest.parquet", Manifest(pd.DataFrame(rows, columns=list(COLUMNS)), ("a", "b")))
    assert path.is_file()
    return project


def features(project, limit_bytes: int | None = None):
    def restricted():
        if limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    command = [sys.executable, str(REPO / "stages/extract_features.py"), "--manifest", "manifest.parquet"]
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        [*command, "--out", "features"], cwd=project, capture_output=True, text=True, env=env, preexec_fn=restricted
    )


def snapshot(folder):
    return {path.relative_to(folder): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def stopped_in_one_line(result, *expected):
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    for text in expected:
        assert text in errors[0], errors[0]


def test_a_full_disk_keeps_the_previous_output(project):
    assert features(project).returncode == 0
    before = snapshot(project / "features")
    write_tone(project / "audio" / "u1.wav", seconds=6.0)  # a changed input: the stage writes anew
    result = features(project, limit_bytes=4096)  # files stop growing at 4 KB: "File too large", as a full disk
    stopped_in_one_line(result, "features", "could not be written", "File too large")
    assert snapshot(project / "features") == before
    assert not [p for p in project.iterdir() if p.name.startswith(".features.")]  # no staging folder left


def test_a_read_only_output_folder_keeps_the_previous_output(project):
    assert features(project).returncode == 0
    before = snapshot(project / "features")
    write_tone(project / "audio" / "u1.wav", seconds=6.0)
    folders = [project, project / "features"]
    read_only(folders, True)
    try:
        result = features(project)
    finally:
        read_only(folders, False)
    stopped_in_one_line(result, "features", "could not be written")
    assert "Permission denied" in result.stderr or "Operation not permitted" in result.stderr
    assert snapshot(project / "features") == before


def read_only(folders, on: bool) -> None:
    """Folders nobody may write into: by their mode, or, for root (whom modes do not stop), immutable."""
    for folder in folders:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "+i" if on else "-i", str(folder)], check=True)
        else:
            folder.chmod(0o555 if on else 0o755)
