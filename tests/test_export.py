import json

import numpy as np
import onnx
import pytest
import soundfile as sf
import torch

from liser.cli import main
from liser.export import PARITY_TOLERANCE, OnnxStudent, ParityError, export_student, load_onnx_student
from liser.models.student import Student, StudentConfig
from liser.predict import Predictor
from liser.students.checkpoints import save_student

from .helpers import REPO

CLASSES = ["neutral", "calm", "happy", "sad"]
METRICS = {"test": {"uar": 0.5, "war": 0.625}, "validation": {"uar": 0.4, "war": 0.45}, "best_epoch": 3}
CONFIGURATION_METRICS = {
    "test": {"uar": 0.45, "uar_std": 0.1},
    "validation": {"uar": 0.5, "uar_std": 0.1},
    "folds": {"1": {"test": {"uar": 0.4}}, "2": METRICS},
}


def random_student(seed: int, classes: int = len(CLASSES)) -> Student:
    torch.manual_seed(seed)
    model = Student(StudentConfig(speech_classes=classes))
    for module in model.modules():  # trained-looking batch-norm statistics, not the identity
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One export through the command line, shared by the tests (torch.export takes a few seconds)."""
    folder = tmp_path_factory.mktemp("export")
    model = random_student(seed=0)
    checkpoint = folder / "student.safetensors"
    save_student(checkpoint, model, CLASSES, corpus="ravdess", fold=2, best_epoch=3, test_uar=0.5, test_war=0.625)
    (folder / "no-dstl.json").write_text(json.dumps(CONFIGURATION_METRICS))
    out = folder / "model.onnx"
    status = main(
        [
            "export",
            "--student",
            str(checkpoint),
            "--out",
            str(out),
            "--params",
            str(REPO / "params.yaml"),
            "--metrics",
            str(folder / "no-dstl.json"),
        ]
    )
    assert status == 0
    return model, checkpoint, out


def test_onnx_runtime_matches_pytorch(exported):
    model, _, out = exported
    runtime = OnnxStudent(out, threads=1)
    logmel = np.random.default_rng(1).normal(-6, 3, (9, 1, 64, 94)).astype(np.float32)
    with torch.inference_mode():
        expected = model.classify(torch.from_numpy(logmel)).numpy()
    for batch in (slice(0, 1), slice(1, 9)):
        np.testing.assert_allclose(runtime.logits(logmel[batch]), expected[batch], atol=PARITY_TOLERANCE, rtol=0)
    graph = onnx.load(str(out)).graph
    assert [i.name for i in graph.input] == ["logmel"] and [o.name for o in graph.output] == ["logits"]
    dims = graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [1, 64, 94]


def test_model_card_describes_classes_input_training_and_size(exported):
    model, checkpoint, out = exported
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["classes"] == CLASSES
    spec = card["input"]
    assert spec["shape"] == ["batch", 1, 64, 94] and spec["dtype"] == "float32"
    settings = (spec["sample_rate"], spec["n_mels"], spec["window_s"], spec["hop_s"], spec["crop_s"])
    assert settings == (16000, 64, 0.128, 0.032, 3.0)
    assert spec["log_floor"] == 1e-6 and spec["pad_value"] == pytest.approx(np.log(1e-6))
    assert card["file_level"]["stride_s"] == 0.1
    assert card["training"] == {"corpus": "ravdess", "fold": 2, "best_epoch": 3, "test": {"uar": 0.5, "war": 0.625}}
    assert card["metrics"]["validation"] == METRICS["validation"] and card["metrics"]["best_epoch"] == 3
    assert card["metrics"]["all_folds"]["test"] == CONFIGURATION_METRICS["test"]
    assert card["parameters"]["student"] == sum(p.numel() for p in model.parameters())
    exported_parameters = sum(p.numel() for part in (model.conv, model.lstm, model.sup_head) for p in part.parameters())
    assert card["parameters"]["exported"] == exported_parameters
    assert card["export"]["parity_max_abs_diff"] <= PARITY_TOLERANCE and card["export"]["opset"] == 18

    _, classes, embedded = load_onnx_student(out)
    assert classes == CLASSES and embedded == card
    markdown = out.with_suffix(".md").read_text()
    assert "| 1 | calm |" in markdown and "| ravdess | 2 | 3 | 0.500 | 0.625 |" in markdown
    assert f"{exported_parameters:,} exported" in markdown
    written = sorted(p.name for p in out.parent.iterdir())
    assert written == ["model.json", "model.md", "model.onnx", "no-dstl.json", "student.safetensors"]


def test_a_model_that_disagrees_is_refused_and_nothing_written(exported, tmp_path, repo_params, monkeypatch):
    _, _, out = exported
    other = tmp_path / "other.safetensors"
    save_student(other, random_student(seed=1), CLASSES)
    # the first student's graph presented as the export of another one
    monkeypatch.setattr("liser.export.to_onnx", lambda student, features: onnx.load(str(out)))
    with pytest.raises(ParityError, match="differ from PyTorch's by up to"):
        export_student(other, tmp_path / "bad.onnx", repo_params.features, repo_params.evaluate)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.safetensors"]


def test_the_export_predicts_what_the_checkpoint_predicts(exported, tmp_path, repo_params):
    _, checkpoint, out = exported
    rng = np.random.default_rng(0)
    audio = tmp_path / "a.wav"
    sf.write(str(audio), (0.1 * rng.standard_normal(7 * 22050)).astype(np.float32), 22050)
    from_onnx = Predictor.load(out, repo_params.features, repo_params.evaluate, threads=1).predict(audio)
    from_torch = Predictor.load(checkpoint, repo_params.features, repo_params.evaluate).predict(audio)
    np.testing.assert_allclose(from_onnx.logits, from_torch.logits, atol=1e-5, rtol=0)
    assert from_onnx.emotion == from_torch.emotion

    other_hop = repo_params.features.model_copy(update={"hop_s": 0.016})
    with pytest.raises(ValueError, match="hop_s 0.032 vs 0.016"):
        Predictor.load(out, other_hop, repo_params.evaluate)


def test_what_cannot_be_exported_is_refused(tmp_path, repo_params):
    save_student(tmp_path / "s.safetensors", Student(StudentConfig(speech_classes=4, n_mels=32)), CLASSES)
    with pytest.raises(ValueError, match="32 Mel bands"):
        export_student(tmp_path / "s.safetensors", tmp_path / "m.onnx", repo_params.features, repo_params.evaluate)
    with pytest.raises(ValueError, match="one fold's student.safetensors"):
        export_student(tmp_path, tmp_path / "m.onnx", repo_params.features, repo_params.evaluate)
    with pytest.raises(ValueError, match="should end in .onnx"):
        export_student(tmp_path / "s.safetensors", tmp_path / "m.json", repo_params.features, repo_params.evaluate)
    assert [p.name for p in tmp_path.iterdir()] == ["s.safetensors"]


def test_a_pipeline_students_results_are_found_beside_it(tmp_path):
    from liser.export import metrics_path_for

    run = tmp_path / "outputs/students/ravdess/no-dstl"
    for student in (run / "fold2/student.safetensors", run / "fold2/seed1/student.safetensors"):
        student.parent.mkdir(parents=True, exist_ok=True)
        assert metrics_path_for(student) is None
        (run / "results.json").write_text(json.dumps(CONFIGURATION_METRICS))
        assert metrics_path_for(student) == run / "results.json"
        (run / "results.json").unlink()
