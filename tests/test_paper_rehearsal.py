"""The paper profile at the published models' sizes, offline, on the smallest subset: the rehearsal script with one
labeled corpus's student and everything it needs (benchmarks/paper_rehearsal.py runs all stages)."""

import json
import subprocess
import sys

import pytest
import yaml

from .helpers import REPO

pytestmark = pytest.mark.slow


def test_the_paper_profile_runs_from_published_format_weights_to_a_student(tmp_path):
    project, results = tmp_path / "project", tmp_path / "rehearsal.json"
    command = [sys.executable, str(REPO / "benchmarks" / "paper_rehearsal.py"), "--keep", str(project)]
    command += ["--utterances", "2", "--videos", "1", "--target", "vid-sp-dstl@ravdess", "--results", str(results)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    stages = json.loads(results.read_text())["stages"]
    for stage in ("demo", "speech_base", "video_weights", "video_teacher", "video_softmaxes", "speech_teacher@ravdess"):
        assert stage in stages
    assert yaml.safe_load((project / "params.yaml").read_text())["profile"] == "paper"
    assert [p.name for p in (project / "data" / "demo" / "ravdess").iterdir()] == ["NOT-USED.txt"]
    base = json.loads((project / "metrics" / "teachers" / "speech_base.json").read_text())
    assert base["source"] == "facebook/hubert-base-ls960" and "pytorch_model.bin" in base["files"]
    video = json.loads((project / "outputs" / "teachers" / "video" / "results.json").read_text())
    assert video["source"] == "published" and video["size"] == "full"
    student = json.loads((project / "outputs" / "students" / "ravdess" / "vid-sp-dstl" / "results.json").read_text())
    assert set(student["folds"]) == {"0", "1"}
