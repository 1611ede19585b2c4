"""A user's mistake ends a stage with one line naming the key or file, and exit status 2: never a traceback."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest
import yaml
from dvc.repo import Repo

from tests.code_closure import ROOT
from tests.helpers import copy_project


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return copy_project(tmp_path_factory.mktemp("errors") / "project")


@pytest.fixture(scope="module")
def commands() -> dict[str, list[str]]:
    """One command per stage script, as dvc.yaml runs it (the first stage that uses the script)."""
    found: dict[str, list[str]] = {}
    with Repo(str(ROOT)) as repo:
        for stage in repo.index.stages:
            words = shlex.split(stage.cmd)
            script = next(word for word in words if word.startswith("stages/"))
            found.setdefault(script, [sys.executable, *words[words.index(script) :]])
    return found


def run(project, command, edit=None):
    """Run ``command`` in the project with params.yaml edited by ``edit``; stdout, stderr and exit status."""
    original = (project / "params.yaml").read_text()
    params = yaml.safe_load(original)
    if edit:
        edit(params)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "LISER_LOG_LEVEL": "WARNING"}
        result = subprocess.run(command, cwd=project, capture_output=True, text=True, env=env, timeout=300)
    finally:
        (project / "params.yaml").write_text(original)
    return result


def one_error_line(result, *expected: str) -> str:
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, (result.args, result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, (result.args, result.stderr[-2000:])
    assert len(errors) == 1, (result.args, result.stderr)
    for text in expected:
        assert text in errors[0], errors[0]
    return errors[0]


def test_every_stage_script_stops_on_an_invalid_setting_in_one_line(project, commands):
    assert len(commands) >= 15
    for command in commands.values():
        result = run(project, command, lambda p: p["train"].update(epochs=True))
        one_error_line(result, "params.yaml: train.epochs", "not true")


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda p: p["train"].update(lr=float("inf")), "train.lr"),
        (lambda p: p["train"].update(lr=-1), "train.lr: input should be greater than 0"),
        (lambda p: p["loss"].update(lamda_vd=1.0), "loss.lamda_vd: unknown key"),
        (lambda p: p["cv"].update(folds=list(range(40))), "speakers cannot make 40 speaker-independent folds"),
    ],
    ids=["infinite lr", "negative lr", "misspelt key", "more folds than speakers"],
)
def test_the_probes_mistakes_end_in_one_line(project, commands, edit, expected, tmp_path):
    """The cases a fault probe found ending in tracebacks.  More folds than speakers is found by the folds stage
    on a real utterance table."""
    command = commands["stages/make_folds.py"]
    manifest = command[command.index("--manifest") + 1]
    (project / manifest).parent.mkdir(parents=True, exist_ok=True)
    _ten_speakers(project / manifest)
    one_error_line(run(project, command, edit), expected)


def test_a_missing_input_is_one_line_naming_the_file(project, commands):
    command = commands["stages/report.py"]
    result = run(project, command)
    one_error_line(result, "missing student results", "metrics/students")


def _ten_speakers(path):
    import pandas as pd

    from liser.manifests import COLUMNS, Manifest, write_manifest

    rows = [
        {column: "" for column in COLUMNS}
        | {"utterance": f"u{i}", "speaker": f"s{i % 10}", "gender": "female" if i % 2 else "male", "label": 0}
        for i in range(40)
    ]
    write_manifest(path, Manifest(pd.DataFrame(rows, columns=list(COLUMNS)), ("a", "b")))
