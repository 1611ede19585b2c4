"""Training one student through the engine: it learns, keeps its best epoch, repeats exactly, saves and loads."""

import numpy as np
import pytest
import torch

from liser.students.checkpoints import load_student, save_student
from liser.students.evaluate import Windowing, score, utterance_logits
from tests.student_data import WINDOWING, band_set, train_one, train_params


def small_run(epochs=3, seed=0, precision="float32", **options):
    return train_one(
        band_set(32, 1), band_set(16, 2), train_params(epochs=epochs, precision=precision), seed=seed, **options
    )


def test_learns_a_separable_problem():
    result = small_run(epochs=4)
    test = band_set(20, 3)
    assert score(test.labels, utterance_logits(result.model, test.features, WINDOWING)).uar >= 0.9
    assert list(result.history["epoch"]) == [1, 2, 3, 4]
    assert result.history["validation_uar"].max() == result.history.loc[result.best_epoch - 1, "validation_uar"]
    assert result.steps == 4 * 4  # 32 items in batches of 8, 4 epochs


def test_bfloat16_training_learns_and_keeps_float32_weights():
    result = small_run(epochs=4, precision="bfloat16")
    test = band_set(20, 3)
    assert result.history["validation_uar"].max() == 1.0
    assert score(test.labels, utterance_logits(result.model, test.features, WINDOWING)).uar >= 0.8  # chance: 0.5
    assert all(p.dtype == torch.float32 for p in result.model.parameters())
    float32 = small_run(epochs=1).model.state_dict()
    bfloat16 = small_run(epochs=1, precision="bfloat16").model.state_dict()
    assert not torch.equal(float32["conv.0.0.weight"], bfloat16["conv.0.0.weight"])  # autocast did run


def test_validation_uses_its_own_stride(monkeypatch):
    import liser.students.population

    strides, scored = [], liser.students.population.utterance_logits

    def recording(model, features, windowing):
        strides.append(windowing.stride_frames)
        return scored(model, features, windowing)

    monkeypatch.setattr(liser.students.population, "utterance_logits", recording)
    coarse = Windowing(window_frames=94, stride_frames=15.625, pad_value=-13.8, batch_size=32)
    small_run(epochs=2, validation_windowing=coarse)
    small_run(epochs=1)
    assert strides == [15.625, 15.625, 3.125]


def test_same_seed_same_model():
    a, b = small_run(epochs=2, seed=5), small_run(epochs=2, seed=5)
    for (name, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(x, y), name
    c = small_run(epochs=2, seed=6)
    assert not torch.equal(a.model.state_dict()["conv.0.0.weight"], c.model.state_dict()["conv.0.0.weight"])


def test_checkpoint_round_trip(tmp_path):
    model = small_run(epochs=1).model
    save_student(tmp_path / "s.safetensors", model, ["low", "high"], fold=3)
    loaded, classes, info = load_student(tmp_path / "s.safetensors")
    x = torch.randn(3, 1, 64, 94)
    model.eval()
    torch.testing.assert_close(loaded.classify(x), model.classify(x), rtol=0, atol=0)
    assert classes == ["low", "high"] and info == {"fold": 3}
    save_student(tmp_path / "again.safetensors", loaded, ["low", "high"], fold=3)
    assert (tmp_path / "again.safetensors").read_bytes() == (tmp_path / "s.safetensors").read_bytes()


def test_checkpoint_that_is_not_a_student(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a LiSER student"):
        load_student(tmp_path / "other.safetensors")


def test_utterance_logits_average_the_windows():
    result = small_run(epochs=1)
    long = np.random.default_rng(0).normal(-8, 1, (64, 150)).astype(np.float32)
    starts = sorted({round(k * 3.125) for k in range(18)} | {150 - 94})  # 0.1 s steps, then flush with the end
    windows = [long[:, s : s + 94] for s in starts]
    with torch.no_grad():
        expected = result.model.classify(torch.from_numpy(np.stack(windows)).unsqueeze(1)).mean(0)
    np.testing.assert_allclose(
        utterance_logits(result.model, [long], WINDOWING)[0], expected.numpy(), rtol=1e-5, atol=1e-5
    )


def test_a_checkpoint_whose_class_names_repeat_is_refused(tmp_path):
    import json

    from safetensors.torch import load_file, save_file

    model = small_run(epochs=1).model
    with pytest.raises(ValueError, match="distinct"):
        save_student(tmp_path / "s.safetensors", model, ["low", "low"])
    save_student(tmp_path / "s.safetensors", model, ["low", "high"])
    from safetensors import safe_open

    with safe_open(str(tmp_path / "s.safetensors"), framework="pt") as handle:
        described = json.loads(handle.metadata()["liser_student"])
    described["classes"] = ["neutral", "neutral"]
    tensors = load_file(str(tmp_path / "s.safetensors"))
    save_file(tensors, str(tmp_path / "tampered.safetensors"), metadata={"liser_student": json.dumps(described)})
    with pytest.raises(ValueError, match=r"tampered\.safetensors: its class names repeat \(neutral\)"):
        load_student(tmp_path / "tampered.safetensors")
