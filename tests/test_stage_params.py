"""DVC's promise for parameters: a change reruns every stage that reads it and no other.

What a stage reads is what its script's ``read_params`` reads through liser/params.py (``liser.stage``), recorded
for the stage's own arguments under each profile and each reading of the protocol.  Its ``params`` list in dvc.yaml
must be exactly that, plus ``profile`` exactly when those values differ between the profiles, and
``protocol.reading`` exactly when they differ between the readings (DVC compares the raw YAML, in which a value
written ``{demo: ..., paper: ...}`` does not change when ``profile`` does, nor one written ``{strict: ...,
literal: ...}`` when ``protocol.reading`` does).  Then, in a temporary project whose dvc.lock records the
parameters as they are, ``dvc status`` after switching the profile or the reading, or after changing a corpus
entry, marks exactly the stages whose values differ."""

from __future__ import annotations

import copy
import importlib.util
import itertools
import shlex
from functools import cache
from pathlib import Path

import pytest
import yaml
from dvc.repo import Repo
from pydantic import BaseModel

from liser.params import PROFILES, READINGS, CorporaParams, parse_params, recorded_reads, sections_in
from tests.code_closure import ROOT
from tests.helpers import copy_project

RAW = yaml.safe_load((ROOT / "params.yaml").read_text())
SWITCHES = {"profile": PROFILES, "protocol.reading": READINGS}  # the keys that choose between values written per option


def _switched(raw: dict, choice: dict[str, str]) -> dict:
    """``raw`` with the switches set as ``choice`` says (``{"profile": "paper", "protocol.reading": "literal"}``)."""
    raw = copy.deepcopy(raw)
    if "profile" in choice:
        raw["profile"] = choice["profile"]
    if "protocol.reading" in choice:
        raw["protocol"] = {**(raw.get("protocol") or {}), "reading": choice["protocol.reading"]}
    return raw


CHOICES = [dict(zip(SWITCHES, options)) for options in itertools.product(*SWITCHES.values())]


@cache
def _script(path: str):
    spec = importlib.util.spec_from_file_location(f"stage_{Path(path).stem}", ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the work runs under `if __name__ == "__main__"` only
    return module


def _reads(cmd: str, raw: dict) -> set[str]:
    """The keys the stage's script reads for these arguments, under ``raw``'s profile."""
    words = shlex.split(cmd)
    script = next(word for word in words if word.startswith("stages/"))
    module = _script(script)
    assert hasattr(module, "read_params"), f"{script}: no read_params(params, args) (liser.stage.run_stage)"
    args = module.parser.parse_args(words[words.index(script) + 1 :])
    params = parse_params(copy.deepcopy(raw))
    with recorded_reads() as reads:
        settings = module.read_params(params, args)
    return reads | sections_in(settings)


@cache
def _parsed(choice: tuple[tuple[str, str], ...]):
    return parse_params(_switched(RAW, dict(choice)))


def _value(key: str, choice: dict[str, str]):
    """The value of ``key`` as the stage sees it under ``choice`` of profile and reading (defaults included)."""
    node = _parsed(tuple(sorted(choice.items())))
    for part in key.split("."):
        node = node.corpus(part) if isinstance(node, CorporaParams) and part != "use" else getattr(node, part)
    return node.model_dump() if isinstance(node, BaseModel) else node


def _differs(keys: set[str], switch: str) -> bool:
    """Whether switching ``switch`` alone changes any of ``keys``' values, whatever the other switches say."""
    keys = keys - set(SWITCHES)
    for choice in CHOICES:
        for option in SWITCHES[switch]:
            other = {**choice, switch: option}
            if any(_value(key, choice) != _value(key, other) for key in keys):
                return True
    return False


def _expected(read: set[str]) -> set[str]:
    """The params list a stage reading ``read`` must have: what it reads (a key inside a section it reads whole is
    that section's), and each switch that changes it."""
    keys = {key for key in read - set(SWITCHES) if not any(key.startswith(f"{other}.") for other in read)}
    return keys | {switch for switch in SWITCHES if switch in read or _differs(read, switch)}


@pytest.fixture(scope="module")
def stages() -> dict[str, tuple[str, set[str]]]:
    """name -> (command, the params.yaml keys its dvc.yaml entry lists), as DVC resolves matrix and templates."""
    with Repo(str(ROOT)) as repo:
        found = {}
        for stage in repo.index.stages:
            listed = {key for dep in stage.params for key in dep.params}
            found[stage.addressing] = (stage.cmd, listed)
    return found


@pytest.fixture(scope="module")
def reads(stages) -> dict[str, set[str]]:
    """name -> the keys the stage reads under any profile and reading."""
    return {
        name: set().union(*(_reads(cmd, _switched(RAW, choice)) for choice in CHOICES))
        for name, (cmd, _) in stages.items()
    }


def test_every_stage_lists_exactly_what_it_reads(stages, reads):
    wrong = []
    for name, (_, listed) in stages.items():
        expected = _expected(reads[name])
        if listed != expected:
            missing, extra = sorted(expected - listed), sorted(listed - expected)
            wrong.append(f"{name}: lists {sorted(listed)}; missing {missing}, not read {extra}")
    assert not wrong, "dvc.yaml's params lists differ from what the stages read:\n" + "\n".join(wrong)


def test_the_speech_base_and_video_weights_follow_the_profile(reads):
    """The bug this test was written for: both read per-profile values, so switching the profile must rerun them."""
    assert _differs(reads["speech_base"], "profile") and _differs(reads["video_weights"], "profile")


def test_the_readings_differ_where_the_paper_allows_two(reads):
    literal = parse_params(_switched(RAW, {"protocol.reading": "literal"}))
    assert literal.speech_teacher.split == "non_test" and literal.label_efficiency.teacher == "all"
    assert literal.windows.min_face_fraction == 0 and literal.train.batch_composition == "pooled"
    assert "protocol.reading" in _expected(reads["vid-sp-dstl@ravdess"])
    assert "protocol.reading" not in _expected(reads["no-dstl@ravdess"])


# --- what dvc status says ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A copy of the project whose dvc.lock records the parameters as they are (stand-ins for data)."""
    project = copy_project(tmp_path_factory.mktemp("params") / "project")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
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


def _changed_params(project: Path, raw: dict) -> set[str]:
    """Stages whose parameters dvc status reports changed after params.yaml becomes ``raw``."""
    original = (project / "params.yaml").read_text()
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    try:
        with Repo(str(project)) as repo:
            status = repo.status()
    finally:
        (project / "params.yaml").write_text(original)
    return {
        name.removeprefix("dvc.yaml:")
        for name, changes in status.items()
        for change in changes
        if isinstance(change, dict) and "params.yaml" in change.get("changed deps", {})
    }


def _values_under(keys: set[str], choice: dict[str, str]) -> list:
    return [_value(key, choice) for key in sorted(keys - set(SWITCHES))]


def test_switching_the_profile_reruns_exactly_the_stages_whose_values_differ(recorded, monkeypatch, stages, reads):
    monkeypatch.chdir(recorded)
    now, paper = {"profile": RAW["profile"]}, {"profile": "paper"}
    expected = {
        name
        for name in stages
        if "profile" in reads[name] or _values_under(reads[name], now) != _values_under(reads[name], paper)
    }
    assert {"speech_base", "video_weights"} <= expected
    assert _changed_params(recorded, _switched(RAW, paper)) == expected


def test_the_literal_reading_reruns_exactly_the_stages_its_settings_feed(recorded, monkeypatch, stages, reads):
    """`dvc exp run -S protocol.reading=literal` marks the stages whose values the reading changes (the speech
    teachers, Figure 2's teachers, the students distilling from the video teacher) and the report, and no other."""
    monkeypatch.chdir(recorded)
    now, literal = {"protocol.reading": RAW["protocol"]["reading"]}, {"protocol.reading": "literal"}
    expected = {
        name
        for name in stages
        if "protocol.reading" in reads[name] or _values_under(reads[name], now) != _values_under(reads[name], literal)
    }
    assert {"speech_teacher@ravdess", "speech_teacher_labeled@crema_d", "vid-dstl@ravdess", "report"} <= expected
    assert not {"no-dstl@ravdess", "sp-dstl@crema_d", "speech_softmaxes@ravdess", "video_teacher"} & expected
    assert _changed_params(recorded, _switched(RAW, literal)) == expected


def test_a_new_class_in_a_corpus_entry_reruns_exactly_its_readers(recorded, monkeypatch, stages, reads):
    monkeypatch.chdir(recorded)
    corpus = RAW["corpora"]["use"][0]
    changed = copy.deepcopy(RAW)
    classes = list(parse_params(copy.deepcopy(RAW)).corpora.corpus(corpus).emotions or ())
    entry = changed["corpora"][corpus]
    entry["emotions"] = [*(classes or _reader_classes(corpus)), "bored"]
    expected = {
        name
        for name in stages
        if any(key == f"corpora.{corpus}" or key.startswith(f"corpora.{corpus}.emotions") for key in reads[name])
    }
    assert f"corpus@{corpus}" in expected
    assert _changed_params(recorded, changed) == expected


def _reader_classes(corpus: str) -> list[str]:
    from liser.corpora.labeled import corpus_classes

    return list(corpus_classes(parse_params(copy.deepcopy(RAW)).corpora, corpus))
