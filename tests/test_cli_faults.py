"""Faults found by trying `liser predict` / `liser export` as a new user would, each reproduced first.

A damaged student ends in one line naming the file and the problem, exit status 2, before any file is scored; an
--out that cannot be written is found before scoring; files come out 0644; `liser --help` answers without loading
torch; other libraries' INFO chatter stays off stderr.
"""

import json
import logging
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from liser.cli import main
from liser.logs import configure_logging
from liser.models.student import Student, StudentConfig
from liser.students.checkpoints import METADATA_KEY, load_student, save_student

from .helpers import REPO

CLASSES = ["neutral", "happy", "sad"]
PARAMS_FILE = str(REPO / "params.yaml")


@pytest.fixture
def student(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "student.safetensors"
    save_student(path, Student(StudentConfig(speech_classes=len(CLASSES))).eval(), CLASSES, corpus="ravdess", fold=0)
    return path


@pytest.fixture
def sound(tmp_path):
    import numpy as np
    import soundfile as sf

    path = tmp_path / "talk.wav"
    t = np.arange(32000) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), 16000)
    return path


def rewritten(student, tmp_path, edit_tensors=None, edit_described=None):
    """A copy of ``student`` with its tensors or its metadata changed."""
    from safetensors import safe_open

    with safe_open(str(student), framework="pt") as handle:
        described = json.loads(handle.metadata()[METADATA_KEY])
    tensors = load_file(str(student))
    if edit_tensors:
        edit_tensors(tensors)
    if edit_described:
        edit_described(described)
    path = tmp_path / "damaged.safetensors"
    save_file(tensors, str(path), metadata={METADATA_KEY: json.dumps(described)})
    return path


def damaged_students(student, tmp_path):
    first = next(iter(load_file(str(student))))
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(student.read_bytes()[:200])
    return {
        "missing tensor": rewritten(student, tmp_path / "a", edit_tensors=lambda t: t.pop(first)),
        "unexpected tensor": rewritten(student, tmp_path / "b", edit_tensors=lambda t: t.update(extra=torch.zeros(2))),
        "has shape": rewritten(student, tmp_path / "c", edit_tensors=lambda t: t.update({first: torch.zeros(1, 2)})),
        "unknown student config field": rewritten(
            student, tmp_path / "d", edit_described=lambda d: d["config"].update(dropout=0.5)
        ),
        "class names for a student with 3 outputs": rewritten(
            student, tmp_path / "e", edit_described=lambda d: d.update(classes=["neutral", "happy"])
        ),
        "not a readable safetensors file": truncated,
    }


@pytest.fixture
def damaged(student, tmp_path):
    for name in "abcde":
        (tmp_path / name).mkdir()
    return damaged_students(student, tmp_path)


def test_a_damaged_student_is_named_with_its_problem_when_loaded(damaged):
    for problem, path in damaged.items():
        with pytest.raises(ValueError, match=problem) as caught:
            load_student(path)
        assert str(path) in str(caught.value)


def test_predict_with_a_damaged_student_is_one_line_and_exit_2(damaged, sound, capsys):
    for problem, path in damaged.items():
        status = main(["predict", str(sound), "--student", str(path), "--params", PARAMS_FILE])
        err = capsys.readouterr().err
        assert status == 2, problem
        assert problem in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_a_corrupt_onnx_file_is_one_line_and_exit_2(tmp_path, sound, capsys):
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"\x08\x07not really onnx")
    assert main(["predict", str(sound), "--student", str(broken), "--params", PARAMS_FILE]) == 2
    err = capsys.readouterr().err
    assert str(broken) in err and "not a readable ONNX model" in err and len(err.strip().splitlines()) == 1


def test_an_unwritable_out_is_refused_before_any_file_is_scored(student, sound, tmp_path, capsys, monkeypatch):
    scored = []
    import liser.predict

    original = liser.predict.Predictor.predict
    monkeypatch.setattr(liser.predict.Predictor, "predict", lambda self, p: scored.append(p) or original(self, p))
    (tmp_path / "results.csv").mkdir()
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    cases = {
        tmp_path / "results.csv": "is a folder",
        tmp_path / "nowhere" / "results.csv": "does not exist",
    }
    if os.geteuid() != 0:  # root writes anywhere
        cases[locked / "results.csv"] = "cannot be written"
    for out, problem in cases.items():
        status = main(["predict", str(sound), "--student", str(student), "--out", str(out), "--params", PARAMS_FILE])
        err = capsys.readouterr().err
        assert status == 2 and problem in err and str(out) in err and ".tmp" not in err, err
    assert scored == []


def test_written_files_are_readable_by_others(student, tmp_path):
    assert oct(student.stat().st_mode & 0o777) == "0o644"


def test_help_answers_without_loading_torch():
    code = (
        "import sys; from liser.cli import main\n"
        "try: main(['--help'])\n"
        "except SystemExit: pass\n"
        "print(sorted(m for m in ('torch', 'onnx', 'pandas') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "predict" in result.stdout and result.stdout.strip().endswith("[]")


def test_other_libraries_info_messages_are_not_shown(capsys):
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    root.handlers = []
    try:
        configure_logging()
        logging.getLogger("onnxscript").info("applied 12 rewrite rules")
        logging.getLogger("onnxscript").warning("a real problem")
        logging.getLogger("liser.export").info("our progress")
    finally:
        root.handlers, root.level = handlers, level
    err = capsys.readouterr().err
    assert "rewrite rules" not in err and "a real problem" in err and "our progress" in err
