import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from liser.cli import main
from liser.features import LogMel, load_audio
from liser.models.student import Student, StudentConfig
from liser.predict import Predictor, find_audio, student_files
from liser.students.checkpoints import save_student
from liser.students.crossval import windowing
from liser.students.evaluate import utterance_logits

from .helpers import REPO

CLASSES = ["neutral", "happy", "sad"]
PARAMS_FILE = str(REPO / "params.yaml")


def write_sound(path, seconds, sample_rate=16000, channels=1, seed=0):
    """A gliding tone with noise, so that successive 3 s windows differ; format from the suffix."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    voice = 0.3 * np.sin(2 * np.pi * (150 + 60 * t) * t) + rng.normal(0, 0.02, len(t))
    data = np.stack([voice * (1 - 0.3 * c) for c in range(channels)], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data.astype(np.float32), sample_rate)
    return path


def make_student(path, seed=0, classes=CLASSES, **info):
    torch.manual_seed(seed)
    model = Student(StudentConfig(speech_classes=len(classes))).eval()
    save_student(path, model, classes, corpus="ravdess", fold=0, **info)
    return model


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def student(tmp_path):
    path = tmp_path / "student.safetensors"
    return path, make_student(path)


def test_predict_agrees_with_utterance_logits(tmp_path, student, repo_params):
    files = [
        write_sound(tmp_path / "a.wav", 2.0),
        write_sound(tmp_path / "b.wav", 5.3, sample_rate=48000, seed=1),
        write_sound(tmp_path / "c.flac", 4.0, sample_rate=44100, seed=2),
        write_sound(tmp_path / "d.mp3", 3.5, sample_rate=22050, seed=3),
    ]
    path, model = student
    predictor = Predictor.load(path, repo_params.features, repo_params.evaluate)
    predictions = [predictor.predict(f) for f in files]

    logmels = [LogMel(repo_params.features)(load_audio(f, 16000)) for f in files]
    expected = utterance_logits(model, logmels, windowing(repo_params.features, repo_params.evaluate))
    got = np.stack([p.logits for p in predictions])
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    probabilities = torch.softmax(torch.from_numpy(expected), dim=1).numpy()
    np.testing.assert_allclose(np.stack([p.probabilities for p in predictions]), probabilities, atol=1e-6)
    assert [p.emotion for p in predictions] == [CLASSES[i] for i in expected.argmax(axis=1)]
    assert all(p.error is None and p.warnings == () for p in predictions)
    assert [round(p.seconds, 1) for p in predictions] == [2.0, 5.3, 4.0, 3.5]


def test_ensemble_averages_the_folds_probabilities(tmp_path, repo_params):
    models = {k: make_student(tmp_path / "config" / f"fold{k}" / "student.safetensors", seed=k) for k in (0, 2, 10)}
    make_student(tmp_path / "config" / "fold1-old" / "student.safetensors", seed=1)  # not a fold folder
    assert [p.parent.name for p in student_files(tmp_path / "config")] == ["fold0", "fold2", "fold10"]
    audio = write_sound(tmp_path / "a.wav", 4.0)

    prediction = Predictor.load(tmp_path / "config", repo_params.features, repo_params.evaluate).predict(audio)

    logmel = LogMel(repo_params.features)(load_audio(audio, 16000))
    each = [
        torch.softmax(
            torch.from_numpy(utterance_logits(model, [logmel], windowing(repo_params.features, repo_params.evaluate))),
            dim=1,
        ).numpy()[0]
        for model in models.values()
    ]
    np.testing.assert_allclose(prediction.probabilities, np.mean(each, axis=0), atol=1e-6)
    assert prediction.logits is None
    assert prediction.emotion == CLASSES[int(np.mean(each, axis=0).argmax())]


def test_students_must_share_classes_and_exist(tmp_path, repo_params):
    make_student(tmp_path / "fold0" / "student.safetensors")
    make_student(tmp_path / "fold1" / "student.safetensors", classes=["calm", "happy", "sad"])
    with pytest.raises(ValueError, match="differ"):
        Predictor.load(tmp_path, repo_params.features, repo_params.evaluate)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no student.safetensors"):
        Predictor.load(tmp_path / "empty", repo_params.features, repo_params.evaluate)


def make_bad_inputs(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.wav").write_text("these are not audio samples")
    (folder / "empty.flac").write_bytes(b"")
    truncated = write_sound(folder / "truncated.wav", 2.0).read_bytes()
    (folder / "truncated.wav").write_bytes(truncated[: len(truncated) // 2])
    sf.write(str(folder / "silence.wav"), np.zeros(32000, dtype=np.int16), 16000, subtype="PCM_16")
    write_sound(folder / "blip.wav", 0.3)
    return {
        "notes.wav": "unreadable audio",
        "empty.flac": "empty file",
        "truncated.wav": "truncated",
        "silence.wav": "digital silence",
        "blip.wav": "too short: 0.30 s",
        "missing.wav": "no such file",
    }


def test_each_bad_input_gets_its_own_error(tmp_path, student, repo_params):
    problems = make_bad_inputs(tmp_path)
    predictor = Predictor.load(student[0], repo_params.features, repo_params.evaluate)
    for name, problem in problems.items():
        prediction = predictor.predict(tmp_path / name)
        assert prediction.emotion is None and prediction.probabilities is None
        assert problem in prediction.error, (name, prediction.error)


def test_8khz_stereo_is_predicted_with_warnings(tmp_path, student, repo_params):
    audio = write_sound(tmp_path / "phone.wav", 3.0, sample_rate=8000, channels=2)
    prediction = Predictor.load(student[0], repo_params.features, repo_params.evaluate).predict(audio)
    assert prediction.error is None and prediction.emotion in CLASSES
    assert prediction.probabilities.sum() == pytest.approx(1.0)
    assert len(prediction.warnings) == 2
    assert "recorded at 8000 Hz: nothing above 4000 Hz" in prediction.warnings[0]
    assert prediction.warnings[1] == "2 channels averaged to mono"


def test_a_broken_file_in_a_folder_does_not_stop_the_others(tmp_path, student, capsys):
    folder = tmp_path / "recordings"
    write_sound(folder / "one.wav", 3.0)
    write_sound(folder / "sub" / "two.mp3", 2.0, seed=4)
    (folder / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    (folder / "readme.txt").write_text("not audio, not picked up")
    assert [p.name for p in find_audio([folder])] == ["broken.wav", "one.wav", "two.mp3"]

    out = tmp_path / "r.csv"
    status = main(["predict", str(folder), "--student", str(student[0]), "--out", str(out), "--params", PARAMS_FILE])

    assert status == 0
    shown = capsys.readouterr()
    assert "broken.wav" in shown.out and "ERROR: unreadable audio" in shown.out
    assert "1 of 3 files could not be used" in shown.err
    results = pd.read_csv(out)
    assert list(results["path"].map(lambda p: p.rsplit("/", 1)[1])) == ["broken.wav", "one.wav", "two.mp3"]
    assert results["emotion"].isna().tolist() == [True, False, False]
    assert results["error"].notna().tolist() == [True, False, False]
    scores = [f"probability_{c}" for c in CLASSES] + [f"logit_{c}" for c in CLASSES]
    assert [column for column in results if column.startswith(("probability_", "logit_"))] == scores


def test_exit_status_is_1_only_when_every_file_fails(tmp_path, student, capsys):
    problems = make_bad_inputs(tmp_path / "bad")
    paths = [str(tmp_path / "bad" / name) for name in problems]
    out = tmp_path / "r.json"
    assert main(["predict", *paths, "--student", str(student[0]), "--out", str(out), "--params", PARAMS_FILE]) == 1
    results = json.loads(out.read_text())
    assert results["classes"] == CLASSES and results["stride_s"] == 0.1
    assert [r["error"] is not None for r in results["predictions"]] == [True] * len(problems)
    assert "6 of 6 files could not be used" in capsys.readouterr().err

    good = write_sound(tmp_path / "good.wav", 2.0)
    assert main(["predict", *paths, str(good), "--student", str(student[0]), "--params", PARAMS_FILE]) == 0
    assert main(["predict", str(good), "--student", str(tmp_path / "nothing"), "--params", PARAMS_FILE]) == 2


def test_a_longer_stride_uses_fewer_windows(tmp_path, student, repo_params):
    audio = write_sound(tmp_path / "long.wav", 12.0)
    paper = Predictor.load(student[0], repo_params.features, repo_params.evaluate)
    fast = Predictor.load(student[0], repo_params.features, repo_params.evaluate, stride_s=1.0)
    assert paper.windows == windowing(
        repo_params.features, repo_params.evaluate
    ) and paper.windows.stride_frames == pytest.approx(3.125)
    assert fast.windows.stride_frames == pytest.approx(31.25)
    slow_prediction, fast_prediction = paper.predict(audio), fast.predict(audio)
    assert fast_prediction.error is None
    assert not np.allclose(slow_prediction.logits, fast_prediction.logits, atol=1e-7)
    with pytest.raises(ValueError, match="stride"):
        Predictor.load(student[0], repo_params.features, repo_params.evaluate, stride_s=0)
