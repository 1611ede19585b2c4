"""`liser export --int8`: ONNX Runtime's static quantisation, calibrated on the fold's training crops, under 120 KB,
with its cost on the fold's test speakers in the card."""

import json

import numpy as np
import onnx
import onnxruntime
import pandas as pd
import pytest
import torch

from liser.cli import main
from liser.deploy.int8 import CorpusFiles, calibration_crops, fold_data
from liser.deploy.waveform import WAVEFORM_OUTPUTS
from liser.export import PARITY_TOLERANCE, OnnxStudent, load_onnx_student
from liser.features import LogMel
from liser.files import write_parquet
from liser.metrics import score
from liser.students.checkpoints import save_student
from liser.students.evaluate import utterance_logits, windowing

from .helpers import REPO
from .test_export import random_student

CLASSES = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
PARAMS_FILE = str(REPO / "params.yaml")
# float32 front ends differ by ~1e-6, which can move an int8 activation by a quantisation step: probabilities then
# move by up to about 1e-3 (4e-4 on the demo's students), where float32 graphs agree within 1e-6
QUANTISATION_STEP = 1e-2
SPEAKERS = [f"Actor_{i:02d}" for i in range(1, 7)]
# speaker folds as the folds stage writes them (one test and one validation speaker each, the rest train)
HELD_OUT = {0: {"Actor_01": "test", "Actor_02": "validation"}, 1: {"Actor_04": "test", "Actor_03": "validation"}}


def write_corpus(data, n_mels=64):
    """A small corpus as the pipeline leaves it under data/: manifest, folds, log-Mel features."""
    rng = np.random.default_rng(0)
    rows, frames, index, offset = [], [], [], 0
    for speaker in SPEAKERS:
        for label in range(len(CLASSES)):
            for take in range(2):
                utterance = f"{speaker}-{label}-{take}"
                length = int(rng.integers(60, 160))
                logmel = rng.normal(-8 + 0.6 * label, 2.5, (length, n_mels)).astype(np.float32)
                frames.append(logmel)
                index.append({"utterance": utterance, "offset": offset, "frames": length})
                offset += length
                rows.append({"utterance": utterance, "path": f"{utterance}.wav", "speaker": speaker, "label": label})
    (data / "features" / "ravdess").mkdir(parents=True)
    np.save(data / "features" / "ravdess" / "logmel.npy", np.concatenate(frames))
    write_parquet(data / "features" / "ravdess" / "index.parquet", pd.DataFrame(index))
    write_parquet(data / "manifests" / "ravdess.parquet", pd.DataFrame(rows))
    folds = [
        {"fold": fold, "speaker": speaker, "gender": "female", "role": held_out.get(speaker, "train")}
        for fold, held_out in HELD_OUT.items()
        for speaker in SPEAKERS
    ]
    (data / "folds").mkdir()
    pd.DataFrame(folds).to_csv(data / "folds" / "ravdess.csv", index=False)
    return data


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("int8")
    write_corpus(folder / "data")
    checkpoint = folder / "student.safetensors"
    save_student(checkpoint, random_student(5, len(CLASSES)), CLASSES, corpus="ravdess", fold=1, best_epoch=4)
    return folder, checkpoint


def export(folder, checkpoint, out, *extra):
    args = ["export", "--student", str(checkpoint), "--out", str(out), "--int8", "--data", str(folder / "data")]
    return main([*args, "--params", PARAMS_FILE, *extra])


@pytest.fixture(scope="module")
def quantized(project):
    folder, checkpoint = project
    assert export(folder, checkpoint, folder / "int8.onnx") == 0
    float32 = ["export", "--student", str(checkpoint), "--out", str(folder / "f32.onnx"), "--params", PARAMS_FILE]
    assert main(float32) == 0
    return folder / "int8.onnx", folder / "f32.onnx"


def test_the_int8_student_is_under_120_kb_and_runs_where_float32_runs(quantized):
    int8, float32 = quantized
    assert int8.stat().st_size <= 120_000, int8.stat().st_size
    assert float32.stat().st_size > 3.3 * int8.stat().st_size
    graph = onnx.load(str(int8)).graph
    weights = {t.name: t for t in graph.initializer}
    large_float = [
        name for name, t in weights.items() if t.data_type == onnx.TensorProto.FLOAT and np.prod(t.dims) > 600
    ]
    assert large_float == []  # every weight matrix (convolutions, LSTM, head) is int8
    assert sum(t.data_type == onnx.TensorProto.INT8 for t in weights.values()) >= 6
    runtime, classes, card = load_onnx_student(int8)
    assert classes == CLASSES and card["precision"] == "int8" and card["kind"] == "logmel"
    logmel = np.random.default_rng(0).normal(-6, 3, (5, 1, 64, 94)).astype(np.float32)
    assert runtime.logits(logmel).shape == (5, len(CLASSES))


def test_the_card_holds_the_calibration_and_the_test_uar_of_both(project, quantized, repo_params):
    folder, _ = project
    int8, float32 = quantized
    card = json.loads(int8.with_suffix(".json").read_text())
    quantization = card["quantization"]
    data = fold_data(CorpusFiles.under(folder / "data", "ravdess"), 1)
    assert quantization["calibration"] == {"corpus": "ravdess", "fold": 1, "crops": len(data.train), "seed": 0}
    assert len(data.train) == 4 * len(CLASSES) * 2 and len(data.test) == len(CLASSES) * 2
    windows = windowing(repo_params.features, repo_params.evaluate)
    expected = {}
    for name, path in (("float32", float32), ("int8", int8)):
        logits = utterance_logits(OnnxStudent(path, threads=1), data.test, windows)
        expected[name] = score(data.test_labels, logits).as_dict()
    test = quantization["test"]
    assert test["float32"] == expected["float32"] and test["int8"] == expected["int8"]
    assert test["uar_drop_points"] == pytest.approx(100 * (expected["float32"]["uar"] - expected["int8"]["uar"]))
    assert test["test_utterances"] == len(data.test)
    markdown = int8.with_suffix(".md").read_text()
    assert "## int8" in markdown and f"{len(data.train)} random 3 s crops" in markdown and "UAR drop" in markdown


def test_calibration_crops_are_training_crops_drawn_with_a_seed(project, repo_params):
    folder, _ = project
    data = fold_data(CorpusFiles.under(folder / "data", "ravdess"), 1)
    crops = calibration_crops(data.train, repo_params.features)
    assert crops.shape == (len(data.train), 1, 64, 94)
    assert np.array_equal(crops, calibration_crops(data.train, repo_params.features))
    short = [i for i, utterance in enumerate(data.train) if utterance.shape[1] < 94]
    assert short
    for i in short:  # the whole utterance, padded with the log-Mel of silence
        frames = data.train[i].shape[1]
        assert np.array_equal(crops[i, 0, :, :frames], data.train[i])
        assert np.all(crops[i, 0, :, frames:] == np.float32(LogMel.silence_of(repo_params.features)))


def test_the_same_inputs_give_the_same_bytes(project, quantized):
    folder, checkpoint = project
    int8, _ = quantized
    assert export(folder, checkpoint, folder / "again.onnx") == 0
    assert (folder / "again.onnx").read_bytes() == int8.read_bytes()


def test_an_int8_waveform_graph_is_its_int8_student_behind_the_front_end(project, repo_params):
    folder, checkpoint = project
    out = folder / "int8-waveform.onnx"
    assert export(folder, checkpoint, out, "--waveform") == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["kind"] == "waveform" and card["precision"] == "int8"
    assert card["export"]["waveform_parity_max_abs_diff"] <= PARITY_TOLERANCE  # the composition is exact
    assert card["export"]["waveform_vs_logmel_int8_max_abs_diff"] <= QUANTISATION_STEP
    int8_student = OnnxStudent(folder / "int8.onnx", threads=1)
    session = onnxruntime.InferenceSession(str(out))
    t = np.arange(4 * 16000) / 16000
    samples = (0.3 * np.sin(2 * np.pi * (120 + 30 * t) * t)).astype(np.float32)
    got = dict(zip(WAVEFORM_OUTPUTS, session.run(list(WAVEFORM_OUTPUTS), {"waveform": samples})))
    windows = windowing(repo_params.features, repo_params.evaluate)
    logits = utterance_logits(int8_student, [LogMel(repo_params.features)(samples)], windows)[0]
    expected = torch.softmax(torch.from_numpy(logits), dim=0).numpy()
    np.testing.assert_allclose(got["probabilities"], expected, atol=QUANTISATION_STEP, rtol=0)


def test_what_int8_needs_is_asked_for_in_one_line(project, tmp_path, capsys):
    folder, checkpoint = project
    assert export(tmp_path, checkpoint, tmp_path / "m.onnx") == 2  # no data/ there
    err = capsys.readouterr().err
    assert "--int8 calibrates on ravdess's training crops" in err and "features/ravdess" in err, err
    assert len(err.strip().splitlines()) == 1
    anonymous = tmp_path / "anonymous.safetensors"
    save_student(anonymous, random_student(5, len(CLASSES)), CLASSES)
    assert export(folder, anonymous, tmp_path / "m.onnx") == 2
    err = capsys.readouterr().err
    assert "names no corpus and fold" in err and len(err.strip().splitlines()) == 1
    float32 = ["export", "--student", str(checkpoint), "--out", str(tmp_path / "m.onnx"), "--params", PARAMS_FILE]
    assert main([*float32, "--data", str(folder / "data")]) == 2
    assert "--data goes with --int8" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["anonymous.safetensors"]
