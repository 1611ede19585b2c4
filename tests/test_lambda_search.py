"""Choosing the lambdas from `dvc exp show --json`: on validation UAR, never test, written back to params.yaml;
per-profile values and `auto` as the experiments' stages read them, and queued experiments left out."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dvc.repo import Repo

from liser.params import load_params
from liser.results.lambda_search import candidates, choose, write_choice

from .helpers import REPO, copy_project


def entry(rev, name, sd, vd, val, test):
    metrics = {
        f"metrics/students/{corpus}/{run}.json": {"data": {"validation": {"uar": v}, "test": {"uar": t}}}
        for corpus in ("ravdess", "crema_d")
        for run, v, t in (("vid-sp-dstl", val, test), ("no-dstl", 0.9, 0.9))
    }
    return {
        "rev": rev,
        "name": name,
        "data": {
            "rev": rev,
            "params": {"params.yaml": {"data": {"loss": {"lambda_sd": sd, "lambda_vd": vd}}}},
            "metrics": metrics,
        },
    }


SHOWN = [
    {**entry("workspace", None, 1.0, 1.0, 0.40, 0.41), "experiments": None},
    {
        **entry("abc123", None, 1.0, 1.0, 0.40, 0.41),
        "experiments": [
            {
                "revs": [
                    entry("e1", "lambda-a", 0.1, 5.0, 0.55, 0.30),
                    entry("e2", "lambda-b", 5.0, 0.1, 0.50, 0.70),
                    entry("e3", "lambda-c", 0.5, 5.0, 0.55, 0.20),
                    entry("e4", "off-grid", 2.0, 2.0, 0.99, 0.99),
                ]
            }
        ],
    },
]


def test_chooses_on_validation_not_test_with_ties_to_smaller_lambdas():
    found, skipped = candidates(SHOWN)
    assert len(found) == 6 and not skipped
    chosen = choose(found, grid=[0.1, 0.5, 1.0, 5.0, 10.0])
    assert (chosen.experiment, chosen.lambda_sd, chosen.lambda_vd) == ("lambda-a", 0.1, 5.0)
    assert choose(found).experiment == "off-grid"
    none, skipped = candidates(SHOWN, configuration="conf-vid-sp-dstl")
    assert len(skipped) == 6 and "no results for conf-vid-sp-dstl" in skipped[0]
    with pytest.raises(ValueError, match="no experiment"):
        choose(none)


def test_lambdas_are_read_as_the_experiments_stages_read_them():
    shown = [
        entry("w", None, {"demo": 0.5, "paper": "auto"}, {"strict": 5.0, "literal": 10.0}, 0.4, 0.4),
        entry("p", "paper", {"demo": 0.5, "paper": "auto"}, 1.0, 0.9, 0.9),
    ]
    shown[0]["data"]["params"]["params.yaml"]["data"].update(profile="demo", protocol={"reading": "literal"})
    shown[1]["data"]["params"]["params.yaml"]["data"].update(profile="paper")
    found, skipped = candidates(shown)
    assert [(c.lambda_sd, c.lambda_vd) for c in found] == [(0.5, 10.0)]
    assert skipped == ["paper: lambda_sd = auto, lambda_vd = 1.0: auto chooses per fold inside the stage"]


def test_choice_written_back_keeps_the_file(tmp_path):
    params = tmp_path / "params.yaml"
    original = (REPO / "params.yaml").read_text()
    params.write_text(original)
    write_choice(params, choose(candidates(SHOWN)[0], grid=[0.1, 0.5, 1.0, 5.0, 10.0]))
    loaded = load_params(params)
    assert (loaded.loss.lambda_sd, loaded.loss.lambda_vd) == (0.1, 5.0)
    changed = [(a, b) for a, b in zip(original.splitlines(), params.read_text().splitlines()) if a != b]
    assert len(changed) == 2 and all(
        "lambda_" in a and "#" not in a or a.split("#")[1] == b.split("#")[1] for a, b in changed
    )


# --- against a real `dvc exp show --json` --------------------------------------------------------------------------


def dvc(*args, cwd):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"dvc {' '.join(args)}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result.stdout


def results(project: Path, validation: float, test: float) -> None:
    for corpus in load_params(project / "params.yaml").corpora.use:
        figures = {"test": {"uar": test}, "validation": {"uar": validation}}
        (project / "metrics" / "students" / corpus / "vid-sp-dstl.json").write_text(json.dumps(figures))


@pytest.fixture(scope="module")
def experiments(tmp_path_factory):
    """A copy of the project (stand-ins for data and outputs) with the shipped params committed, and four
    experiments: two saved with results (lambdas 0.1 / 5, and the paper profile's `auto`), two queued (no results)."""
    project = copy_project(tmp_path_factory.mktemp("lambdas") / "project")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        with Repo(str(project)) as repo:
            for stage in repo.index.stages:
                for out in [*stage.deps, *stage.outs]:
                    path = project / out.def_path
                    if path.exists():
                        continue
                    path.parent.mkdir(parents=True, exist_ok=True)
                    if path.suffix:
                        path.write_text("{}")
                    else:
                        path.mkdir()
                        (path / "stand-in").write_text("")
            results(project, validation=0.40, test=0.45)
            repo.commit(force=True)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.org"]
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "shipped params"], cwd=project, check=True)
    shipped = (project / "params.yaml").read_text()
    for name, edit, validation in (
        ("lambda-a", lambda text: _set(_set(text, "lambda_sd", "0.1"), "lambda_vd", "5"), 0.55),
        ("paper-auto", lambda text: text.replace("profile: demo", "profile: paper"), 0.90),
    ):
        (project / "params.yaml").write_text(edit(shipped))
        results(project, validation=validation, test=0.30)
        dvc("exp", "save", "-n", name, cwd=project)
        subprocess.run(["git", "checkout", "-q", "--", "params.yaml", "dvc.lock"], cwd=project, check=True)
        results(project, validation=0.40, test=0.45)
    dvc("exp", "run", "--queue", "-n", "queued-b", "-S", "loss.lambda_sd=5", "-S", "loss.lambda_vd=0.1", cwd=project)
    dvc("exp", "run", "--queue", "-n", "queued-auto", "-S", "loss.lambda_sd=auto", cwd=project)
    return project


def _set(text: str, key: str, value: str) -> str:
    return re.sub(rf"^(  {key}: )\{{[^}}]*\}}", rf"\g<1>{value}", text, count=1, flags=re.M)


def test_the_script_chooses_from_real_experiments_and_writes_the_demo_value(experiments):
    shown = json.loads(dvc("exp", "show", "--json", cwd=experiments))
    queued = {
        r["name"] for e in shown for x in e.get("experiments") or [] for r in x["revs"] if not r["data"]["metrics"]
    }
    assert {"queued-b", "queued-auto"} <= queued  # `dvc exp show` lists queued experiments' params, no metrics
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    script = [sys.executable, str(REPO / "scripts" / "choose_lambdas.py"), "--write"]
    ran = subprocess.run(script, cwd=experiments, env=env, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    # the workspace and its commit: the shipped {demo: 1.0, paper: auto} read in the demo profile
    assert any(re.fullmatch(r"workspace\s+1\s+1\s+0\.400\s+0\.450", line) for line in lines), ran.stdout
    assert any(re.fullmatch(r"lambda-a\s+0\.1\s+5\s+0\.550\s+0\.300", line) for line in lines), ran.stdout
    assert "left out: paper-auto: lambda_sd = auto, lambda_vd = auto: auto chooses per fold inside the stage" in lines
    assert "left out: queued-b: no results for vid-sp-dstl (queued, failed or not run)" in lines
    assert lines[-2:] == [
        "chosen on validation UAR: lambda_sd = 0.1, lambda_vd = 5 (lambda-a)",
        "written to params.yaml",
    ]
    written = yaml.safe_load((experiments / "params.yaml").read_text())["loss"]
    assert written["lambda_sd"] == {"demo": 0.1, "paper": "auto"} and written["lambda_vd"] == {
        "demo": 5,
        "paper": "auto",
    }


def test_the_script_says_what_is_wrong_in_one_line(tmp_path):
    broken = tmp_path / "shown.json"
    broken.write_text("not json")
    script = [sys.executable, str(REPO / "scripts" / "choose_lambdas.py"), "--experiments", str(broken)]
    ran = subprocess.run(script, cwd=tmp_path, capture_output=True, text=True)
    assert (
        ran.returncode == 2 and ran.stderr.startswith(f"error: {broken}: not a saved") and "Traceback" not in ran.stderr
    )
