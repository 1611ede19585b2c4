"""A small end-to-end `dvc repro` of the demo in a temporary copy of the project."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .helpers import REPO

pytestmark = pytest.mark.slow


def run(args, cwd, check=True):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def dvc(*args, cwd, check=True):
    return run([sys.executable, "-m", "dvc", *args], cwd, check)


def set_params(project: Path, edit) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    edit(params)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    project = tmp_path_factory.mktemp("pipeline") / "liser"
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in files:
        if name == "dvc.lock" or not (REPO / name).is_file():
            continue
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, project / name)

    def tiny(params):
        params["demo"].update(ravdess_actors=10, crema_d_actors=10, mspface_speakers=4, mspface_videos=4)
        params["corpora"]["use"] = ["crema_d"]
        params["cv"]["folds"] = [0, 1]
        params["train"]["epochs"] = {"demo": 2, "paper": 50}

    set_params(project, tiny)
    run(["git", "init", "-q"], project)
    dvc("repro", cwd=project)
    return project


def test_repro_writes_metrics_for_every_fold_and_the_summary(project):
    shown = json.loads(dvc("metrics", "show", "--json", cwd=project).stdout)
    metrics = next(iter(shown.values()))["data"]
    assert set(metrics) >= {
        "metrics/corpora/crema_d.json",
        "metrics/students/crema_d/no-dstl/fold0.json",
        "metrics/students/crema_d/no-dstl/fold1.json",
        "metrics/summary.json",
    }
    summary = metrics["metrics/summary.json"]["data"]["crema_d"]["no-dstl"]
    assert summary["folds"] == 2 and 0 <= summary["test_uar_mean"] <= 1
    fold0 = metrics["metrics/students/crema_d/no-dstl/fold0.json"]["data"]
    assert set(fold0["test"]) == {"uar", "war"}
    assert (project / "reports" / "results.md").read_text().count("no-dstl") == 1
    assert (project / "outputs/students/crema_d/no-dstl/fold1/student.safetensors").is_file()


def test_unlabeled_corpus_reports_what_was_obtained_and_dropped(project):
    shown = json.loads(dvc("metrics", "show", "--json", cwd=project).stdout)
    metrics = next(iter(shown.values()))["data"]
    acquisition = metrics["metrics/mspface/acquisition.json"]["data"]
    faces = metrics["metrics/mspface/faces.json"]["data"]
    windows = metrics["metrics/mspface/windows.json"]["data"]
    assert acquisition["videos_failed"] == 1 and acquisition["videos_ok"] == 3  # the demo's gone video
    assert faces["segments_dropped"] >= 1 and faces["segments_kept"] >= 1  # the demo's video without a face
    assert 0 < faces["face_fraction"] <= 1
    assert windows["windows"] > 0 and windows["segments"] == faces["segments_kept"]
    failures = (project / "data/mspface/acquired/failures.csv").read_text()
    assert "download" in failures
    assert (project / "data/features/mspface/logmel.npy").is_file()


def test_second_repro_has_nothing_to_do(project):
    output = dvc("repro", cwd=project).stdout
    assert "Running stage" not in output
    assert "didn't change" in output or "up to date" in output


def test_plots_are_declared(project):
    shown = dvc("plots", "show", "--json", cwd=project).stdout
    assert "plots/confusion/crema_d_no-dstl.csv" in shown and "plots/curves/crema_d_no-dstl.csv" in shown


def test_a_training_parameter_reruns_only_students_and_aggregate(project):
    set_params(project, lambda p: p["train"].update(epochs={"demo": 3, "paper": 50}))
    status = json.loads(dvc("status", "--json", cwd=project).stdout)
    assert set(status) == {"no-dstl@crema_d-0", "no-dstl@crema_d-1"}
    output = dvc("repro", cwd=project).stdout
    ran = {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}
    assert ran == {"no-dstl@crema_d-0", "no-dstl@crema_d-1", "aggregate"}
