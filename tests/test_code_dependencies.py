"""The promise of the pipeline, kept for code: every stage lists the library code it runs, so editing that
code reruns it (and only what runs that code), and no module imports from a layer above its own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dvc.repo import Repo

from tests.code_closure import ROOT, closure, code_listing, covered, direct_imports
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


def test_every_stage_lists_exactly_the_code_it_runs(stages):
    """Its script and every module the script runs (a folder where it runs all of the folder), and nothing else:
    editing a module reruns the stages that run it, and only those."""
    wrong = []
    for name, script, deps in stages:
        listed = {dep for dep in deps if dep.startswith(("liser", "stages"))}
        expected = set(code_listing(script))
        if listed != expected:
            wrong.append(
                f"{name}: missing {sorted(expected - listed)}, not run {sorted(listed - expected)}; "
                f"list exactly {code_listing(script)}"
            )
    assert not wrong, "stages whose code dependencies differ from the code they run:\n" + "\n".join(wrong)


def test_code_dependencies_exist(stages):
    stale = [
        f"{name}: {dep}"
        for name, _, deps in stages
        for dep in deps
        if dep.startswith(("liser", "stages")) and not (ROOT / dep).exists()
    ]
    assert not stale, "dependencies on code that is not there:\n" + "\n".join(stale)


# --- layers ------------------------------------------------------------------------------------------------
# Foundations (liser/*.py, models, corpora) import none of the parts above them.  The unlabeled corpus's pipeline
# builds on the foundations; the teachers on those and the unlabeled pipeline (they score its windows); the
# students on the foundations alone (what the teachers hand them is a window table, liser/window_tables.py), so
# teachers and students never import each other.  The results read the students; prediction and export (use) need
# only the student.  The demo sits above the product, which never imports it.

PARTS = {"unlabeled": "unlabeled", "teachers": "teachers", "students": "students", "results": "results"}
PARTS |= {"demo": "demo", "predict": "use", "export": "use", "deploy": "use", "webpage": "use", "cli": "use"}
MAY_IMPORT = {
    "foundations": {"foundations"},
    "unlabeled": {"foundations", "unlabeled"},
    "teachers": {"foundations", "unlabeled", "teachers"},
    "students": {"foundations", "students"},
    "results": {"foundations", "students", "results"},
    "use": {"foundations", "students", "use"},
    "demo": {"foundations", "unlabeled", "teachers", "students", "results", "use", "demo"},
}


def part(module: Path) -> str:
    return PARTS.get(module.relative_to("liser").with_suffix("").parts[0], "foundations")


def test_each_part_imports_only_the_parts_below_it():
    wrong = []
    for path in sorted((ROOT / "liser").rglob("*.py")):
        module = path.relative_to(ROOT)
        wrong += [
            f"{module} ({part(module)}) imports {imported} ({part(imported)})"
            for imported in sorted(direct_imports(path))
            if part(imported) not in MAY_IMPORT[part(module)]
        ]
    assert not wrong, "imports across the layers:\n" + "\n".join(wrong)


def test_the_layer_rules_catch_what_they_forbid():
    """The rules themselves: the pairs the project promises never to have are forbidden."""
    forbidden = [("teachers", "students"), ("students", "teachers"), ("use", "teachers"), ("students", "unlabeled")]
    forbidden += [(p, "demo") for p in MAY_IMPORT if p != "demo"]
    forbidden += [("foundations", p) for p in MAY_IMPORT if p != "foundations"]
    assert all(below not in MAY_IMPORT[above] for above, below in forbidden)


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


@pytest.mark.parametrize("edited", ["liser/folds.py", "liser/teachers/speech_model.py", "liser/students/objective.py"])
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
