"""`liser export --waveform`: 16 kHz samples in, the utterance's probabilities out, equal to `liser predict`."""

import json
import subprocess
import sys

import librosa
import numpy as np
import onnx
import onnxruntime
import pytest

from liser.cli import main
from liser.deploy.waveform import WAVEFORM_OUTPUTS, mel_filterbank_model
from liser.export import PARITY_TOLERANCE
from liser.features import audio_blocks
from liser.predict import Predictor
from liser.students.checkpoints import save_student
from liser.students.crops import window_starts

from .audio_cases import demo_like, demo_like_files, write_bad_audio_cases
from .helpers import REPO
from .test_export import random_student

CLASSES = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
PARAMS_FILE = str(REPO / "params.yaml")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A trained-looking student, exported with --waveform through the command line."""
    folder = tmp_path_factory.mktemp("waveform")
    checkpoint = folder / "student.safetensors"
    save_student(checkpoint, random_student(3, len(CLASSES)), CLASSES, corpus="ravdess", fold=1)
    out = folder / "model.onnx"
    args = ["export", "--student", str(checkpoint), "--out", str(out), "--waveform", "--params", PARAMS_FILE]
    assert main(args) == 0
    return checkpoint, out


def decoded(path, sample_rate=16000):
    """The 16 kHz mono samples `liser predict` scores (decoded, mixed and resampled block by block)."""
    return np.concatenate(list(audio_blocks(path, sample_rate)))


def graph_outputs(session, samples):
    return dict(zip(WAVEFORM_OUTPUTS, session.run(list(WAVEFORM_OUTPUTS), {"waveform": samples})))


def test_the_graphs_mel_filterbank_is_librosas_bit_for_bit(repo_params):
    session = onnxruntime.InferenceSession(mel_filterbank_model(repo_params.features).SerializeToString())
    (basis,) = session.run(None, {})
    features = repo_params.features
    expected = librosa.filters.mel(sr=features.sample_rate, n_fft=features.n_fft, n_mels=features.n_mels)
    assert basis.shape == (features.n_fft // 2 + 1, features.n_mels)
    assert np.array_equal(basis.T, expected.astype(np.float32))


def test_the_waveform_graph_gives_predicts_probabilities_on_demo_like_speech(exported, tmp_path, repo_params):
    checkpoint, out = exported
    files = demo_like_files(tmp_path / "demo", count=4)
    files.append(demo_like(tmp_path / "ravdess-like.wav", ("angry", "calm"), seed=7, sample_rate=48000))
    predictor = Predictor.load(checkpoint, repo_params.features, repo_params.evaluate)
    session = onnxruntime.InferenceSession(str(out))
    hop = repo_params.features.hop_s
    for path in files:
        prediction = predictor.predict(path)
        got = graph_outputs(session, decoded(path))
        np.testing.assert_allclose(got["probabilities"], prediction.probabilities, atol=PARITY_TOLERANCE, rtol=0)
        np.testing.assert_allclose(got["logits"], prediction.logits, atol=PARITY_TOLERANCE, rtol=0)
        frames = 1 + len(decoded(path)) // repo_params.features.hop_length
        starts = window_starts(frames, predictor.windows.window_frames, predictor.windows.stride_frames)
        np.testing.assert_allclose(got["window_start_s"], starts * hop, rtol=1e-6)
        assert got["window_probabilities"].shape == (len(starts), len(CLASSES))
        np.testing.assert_allclose(got["window_probabilities"].sum(axis=1), 1, atol=1e-5)


def test_the_waveform_graph_gives_predicts_probabilities_on_the_usable_bad_audio_cases(exported, tmp_path, repo_params):
    checkpoint, out = exported
    cases = write_bad_audio_cases(tmp_path / "cases")
    predictor = Predictor.load(checkpoint, repo_params.features, repo_params.evaluate)
    session = onnxruntime.InferenceSession(str(out))
    usable = [name for name, problem in cases.items() if problem is None]
    assert len(cases) == 17 and len(usable) == 9
    for name, problem in cases.items():
        prediction = predictor.predict(tmp_path / "cases" / name)
        if problem is not None:  # what the page and the caller refuse too, before the graph
            assert problem in prediction.error, (name, prediction.error)
            continue
        got = graph_outputs(session, decoded(tmp_path / "cases" / name))
        difference = np.abs(got["probabilities"] - prediction.probabilities).max()
        assert difference <= PARITY_TOLERANCE, (name, difference)


def test_the_card_says_what_goes_in_and_out_and_how_large_it_is(exported):
    _, out = exported
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["kind"] == "waveform" and card["precision"] == "float32"
    assert card["input"]["name"] == "waveform" and card["input"]["sample_rate"] == 16000
    assert card["front_end"]["n_fft"] == 2048 and card["front_end"]["n_mels"] == 64
    assert list(card["output"]) == list(WAVEFORM_OUTPUTS)
    export = card["export"]
    assert export["waveform_parity_max_abs_diff"] <= PARITY_TOLERANCE
    # the front end adds no weight tensor: a dense mel matrix alone would be 262,400 bytes
    assert export["graph_bytes"] - export["student_graph_bytes"] < 20_000
    assert "262,400 bytes" in export["front_end"] and "16,793,600 bytes" in export["front_end"]
    assert out.stat().st_size < export["graph_bytes"] + 10_000
    graph = onnx.load(str(out)).graph
    assert [i.name for i in graph.input] == ["waveform"] and [o.name for o in graph.output] == list(WAVEFORM_OUTPUTS)
    (loop,) = [node for node in graph.node if node.op_type == "Loop"]  # the student, a batch of windows at a time
    operators = {node.op_type for node in (*graph.node, *loop.attribute[0].g.node)}
    assert operators >= {"STFT", "HannWindow", "MatMul", "Log", "Conv", "LSTM"}
    assert "/work/" not in out.read_bytes().decode("latin-1")  # no machine paths from the exporter
    markdown = out.with_suffix(".md").read_text()
    assert "waveform input, float32" in markdown and "`window_probabilities`" in markdown


PEAKS = """
import json, resource, sys
import numpy as np, onnxruntime
options = onnxruntime.SessionOptions()
options.enable_cpu_mem_arena = False  # what the session holds is then what it needs
session = onnxruntime.InferenceSession(sys.argv[1], options)
rng, peaks = np.random.default_rng(0), {}
for seconds in (12, 120):
    samples = rng.normal(0, 0.1, seconds * 16000).astype(np.float32)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    session.run(["probabilities"], {"waveform": samples})
    peaks[seconds] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps(peaks))
"""


def test_memory_does_not_grow_with_the_recording(exported):
    """The student runs on a batch of windows at a time: ten times the audio, about the same extra memory.  Measured
    in a process of its own: a process's peak is its whole life's, and what earlier tests allocated would hide it."""
    _, out = exported
    result = subprocess.run([sys.executable, "-c", PEAKS, str(out)], capture_output=True, text=True, check=True)
    peaks = {int(seconds): kb for seconds, kb in json.loads(result.stdout).items()}
    # 120 s at a 0.1 s stride is 1,171 windows: about 3 GB of activations at once, 28 MB of windows in batches of 64
    assert peaks[120] < 300 * 1024, peaks  # kB


def test_predict_and_stream_refuse_a_waveform_model_in_one_line(exported, tmp_path, capsys):
    _, out = exported
    sound = demo_like(tmp_path / "a.wav", ("happy",), seed=1)
    for command in (["predict", str(sound)], ["stream", str(sound)]):
        assert main([*command, "--student", str(out), "--params", PARAMS_FILE]) == 2
        err = capsys.readouterr().err
        assert "a waveform model" in err and len(err.strip().splitlines()) == 1, err
