"""The promise of the pipeline, kept for code: every stage lists the library code it runs, so editing that
code reruns it (and only what runs that code), and no module imports from a layer above its own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dvc.repo import Repo

from tests.code_closure import ROOT, closure, covered, direct_imports, is_inert
from tests.helpers import copy_project

SCRIPT = re.compile(r"\bstages/\w+\.py\b")


@pytest.fixture(scope="module")
def stages():
    """(name, script, deps) of every stage of dvc.yaml, as DVC resolves it (matrix, vars, anchors)."""
    with Repo(str(ROOT)) as repo:
        resolved = []
        for stage in repo.index.stages:
            scripts = SCRIPT.findall(stage.cmd)
            assert len(scripts) == 1, f"stage {stage.addressing}: expected one stages/*.py script in {stage.cmd!r}"
            deps = [str(Path(dep.def_path)) for dep in stage.deps]
            resolved.append((stage.addressing, Path(scripts[0]), deps))
    return resolved


def test_every_stage_lists_the_code_it_runs(stages):
    missing = []
    for name, script, deps in stages:
        if str(script) not in deps:
            missing.append(f"{name}: its script {script}")
        for module in sorted(closure(ROOT / script)):
            if not is_inert(module) and not covered(module, deps):
                missing.append(f"{name}: {module} (imported through {script})")
    assert not missing, "stages run code they do not list as a dependency:\n" + "\n".join(missing)


def test_code_dependencies_exist(stages):
    stale = [
        f"{name}: {dep}"
        for name, _, deps in stages
        for dep in deps
        if dep.startswith(("liser", "stages")) and not (ROOT / dep).exists()
    ]
    assert not stale, "dependencies on code that is not there:\n" + "\n".join(stale)


# --- layers: foundations < unlabeled < teachers < students < applications (predict, export, cli) and demo --

LAYERS = {"unlabeled": 1, "teachers": 2, "students": 3, "demo": 4, "predict": 4, "export": 4, "cli": 4}


def _layer(module: Path) -> int:
    parts = module.relative_to("liser").with_suffix("").parts
    return LAYERS.get(parts[0], 0)


def test_no_module_imports_from_a_layer_above_its_own():
    upward = []
    for path in sorted((ROOT / "liser").rglob("*.py")):
        module = path.relative_to(ROOT)
        upward += [
            f"{module} imports {imported}"
            for imported in sorted(direct_imports(path))
            if _layer(imported) > _layer(module)
        ]
    assert not upward, "imports pointing up:\n" + "\n".join(upward)


# --- what DVC does with it ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded_project(tmp_path_factory):
    """A copy of the project whose dvc.lock records the code as it is now (stand-ins for the data)."""
    project = copy_project(tmp_path_factory.mktemp("recorded") / "project")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)  # DVC resolves a stage's paths from the working directory
        with Repo(str(project)) as repo:
            for stage in repo.index.stages:
                for entry in [*stage.deps, *stage.outs]:
                    path = project / entry.def_path
                    if not path.exists():
                        if path.suffix:
                            path.parent.mkdir(parents=True, exist_ok=True)
                            path.write_text("{}")
                        else:
                            path.mkdir(parents=True)
                            (path / "stand-in").write_text("")
            repo.commit(force=True)
    return project


def _stages_with_changed_code(project: Path, path: str) -> set[str]:
    changed = set()
    with Repo(str(project)) as repo:
        for stage, changes in repo.status().items():
            for change in changes:
                if not isinstance(change, dict):
                    continue
                for dep, state in change.get("changed deps", {}).items():
                    if state == "modified" and covered(Path(path), [dep]):
                        changed.add(stage.removeprefix("dvc.yaml:"))
    return changed


@pytest.mark.parametrize("edited", ["liser/folds.py", "liser/teachers/speech_model.py", "liser/students/distill.py"])
def test_editing_library_code_reruns_exactly_the_stages_that_run_it(recorded_project, monkeypatch, stages, edited):
    monkeypatch.chdir(recorded_project)
    assert _stages_with_changed_code(recorded_project, edited) == set()
    original = (recorded_project / edited).read_text()
    try:
        (recorded_project / edited).write_text(original + "\n# an edit\n")
        reported = _stages_with_changed_code(recorded_project, edited)
    finally:
        (recorded_project / edited).write_text(original)
    running_it = {name for name, script, _ in stages if Path(edited) in closure(ROOT / script)}
    assert running_it, f"no stage runs {edited}"
    assert reported == running_it
