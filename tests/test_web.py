"""`liser export --web`: the page runs the waveform model in a real browser (Debian's Chromium, headless, driven by
playwright-core from npm), offline, and shows what `liser predict` gives.

Needs `chromium` and `node` (./run.sh installs them from Debian) and `web/node_modules` (./run.sh runs `npm ci`);
without them the test fails, saying what to run: it is part of the suite, never skipped.  It saves a screenshot of
the plot in test-artefacts/ (or $LISER_TEST_ARTEFACTS).  $LISER_WEB_TEST_STUDENT names a trained student to use
instead of a random one (the README's screenshot was made so, with a demo student).
"""

import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from liser.cli import main
from liser.deploy.waveform import WAVEFORM_OUTPUTS
from liser.deploy.web import DEFAULT_ONNXRUNTIME_WEB, ORT_FILES
from liser.features import audio_blocks
from liser.predict import Predictor
from liser.students.checkpoints import save_student

from .audio_cases import demo_like, demo_like_files
from .helpers import REPO
from .test_export import random_student
from .test_int8 import QUANTISATION_STEP, write_corpus

CHROMIUM = Path("/usr/bin/chromium")
DRIVER = REPO / "web" / "drive_page.mjs"
PARAMS_FILE = str(REPO / "params.yaml")
ARTEFACTS = Path(os.environ.get("LISER_TEST_ARTEFACTS", REPO / "test-artefacts"))
TOLERANCE = 1e-3


def _needed() -> None:
    missing = []
    if not CHROMIUM.is_file():
        missing.append(f"{CHROMIUM} (apt-get install chromium chromium-driver)")
    if shutil.which("node") is None:
        missing.append("node (apt-get install nodejs npm)")
    for package in ("playwright-core", "onnxruntime-web"):
        if not (REPO / "web" / "node_modules" / package / "package.json").is_file():
            missing.append(f"web/node_modules/{package} (npm ci --prefix web)")
    assert not missing, "the browser test needs " + "; ".join(missing) + ": ./run.sh installs them all"


@pytest.fixture(scope="module")
def served():
    """Serve folders on 127.0.0.1 only: ``serve(folder)`` gives the page's URL."""
    servers = []

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    def serve(folder: Path) -> str:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def drive(url: str, files: list[Path], profile: Path, screenshot: Path | None = None, microphone_s: float = 0):
    options = {
        "url": url,
        "files": [str(f) for f in files],
        "chromium": str(CHROMIUM),
        "profile": str(profile),  # a fresh user-data-dir
        "screenshot": str(screenshot) if screenshot else None,
        "microphone_s": microphone_s,
    }
    done = subprocess.run(["node", str(DRIVER), json.dumps(options)], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["states"]["loaded"] == "ready", report
    assert report["outside"] == [], f"the page asked for something outside its folder: {report['outside']}"
    assert report["errors"] == [], report["errors"]
    return report


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    trained = os.environ.get("LISER_WEB_TEST_STUDENT")
    if trained:
        return Path(trained)
    path = tmp_path_factory.mktemp("web-student") / "student.safetensors"
    classes = ["anger", "disgust", "fear", "happy", "neutral", "sad"]
    save_student(path, random_student(21, len(classes)), classes, corpus="crema_d", fold=0)
    return path


def test_the_page_gives_predicts_probabilities_in_chromium(student, served, tmp_path, repo_params):
    _needed()
    page = tmp_path / "page"
    assert main(["export", "--student", str(student), "--web", str(page), "--params", PARAMS_FILE]) == 0
    assert sorted(p.name for p in (page / "ort").iterdir()) == sorted(ORT_FILES)
    files = demo_like_files(tmp_path / "audio", count=4)
    files.append(demo_like(tmp_path / "audio" / "three-moods.wav", ("happy", "sad", "angry"), seed=5))
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTEFACTS / "deploy-page.png"
    screenshot.unlink(missing_ok=True)

    report = drive(served(page), files, tmp_path / "profile", screenshot=screenshot, microphone_s=4)

    predictor = Predictor.load(student, repo_params.features, repo_params.evaluate)
    for path in files:
        shown, expected = report["results"][path.name], predictor.predict(path)
        assert shown is not None, report["states"][path.name]
        assert shown["seconds"] == pytest.approx(expected.seconds, abs=1e-4)
        difference = np.abs(np.array(shown["probabilities"]) - expected.probabilities).max()
        assert difference <= TOLERANCE, (path.name, difference)
        assert expected.emotion in report["states"][path.name]
        assert len(shown["windowStartS"]) == len(shown["windowProbabilities"]) >= 1
    assert screenshot.is_file() and screenshot.stat().st_size > 10_000
    microphone = report["results"]["microphone"]  # Chromium's fake microphone: a beep, recorded for 4 s
    assert microphone is not None, report["states"]["microphone"]
    assert 3.5 < microphone["seconds"] < 6 and sum(microphone["probabilities"]) == pytest.approx(1, abs=1e-5)


def test_the_int8_page_runs_its_model_as_onnx_runtime_does(served, tmp_path, repo_params):
    _needed()
    write_corpus(tmp_path / "data")
    checkpoint = tmp_path / "student.safetensors"
    classes = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
    save_student(checkpoint, random_student(5, len(classes)), classes, corpus="ravdess", fold=1)
    page = tmp_path / "page"
    export = ["export", "--student", str(checkpoint), "--web", str(page), "--int8", "--data", str(tmp_path / "data")]
    assert main([*export, "--params", PARAMS_FILE]) == 0
    assert json.loads((page / "model.json").read_text())["precision"] == "int8"
    files = demo_like_files(tmp_path / "audio", count=2)

    report = drive(served(page), files, tmp_path / "profile")

    session = onnxruntime.InferenceSession(str(page / "model.onnx"))
    for path in files:
        samples = np.concatenate(list(audio_blocks(path, 16000)))
        expected = dict(zip(WAVEFORM_OUTPUTS, session.run(list(WAVEFORM_OUTPUTS), {"waveform": samples})))
        shown = report["results"][path.name]
        assert np.abs(np.array(shown["probabilities"]) - expected["probabilities"]).max() <= QUANTISATION_STEP
        difference = np.abs(np.array(shown["windowProbabilities"]) - expected["window_probabilities"]).max()
        assert difference <= QUANTISATION_STEP


def test_a_missing_onnxruntime_web_is_one_line_and_nothing_is_written(student, tmp_path, capsys):
    page = tmp_path / "page"
    args = ["export", "--student", str(student), "--web", str(page), "--onnxruntime-web", str(tmp_path / "nothing")]
    assert main([*args, "--params", PARAMS_FILE]) == 2
    err = capsys.readouterr().err
    assert "ONNX Runtime Web is not installed" in err and "npm ci --prefix" in err and len(err.splitlines()) == 1
    assert not page.exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("not to be replaced")
    args = ["export", "--student", str(student), "--web", str(tmp_path / "mine"), "--params", PARAMS_FILE]
    if DEFAULT_ONNXRUNTIME_WEB.is_dir():  # the folder check comes after the one for ONNX Runtime Web
        assert main(args) == 2
        assert "holds other files" in capsys.readouterr().err
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "not to be replaced"
