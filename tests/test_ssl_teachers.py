"""The speech teacher on each self-supervised encoder it supports (HuBERT, wav2vec 2.0, WavLM, data2vec-audio):
tiny random configurations saved as a hub checkpoint would be, built, trained, saved, loaded and scored offline."""

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from transformers import AutoModelForAudioClassification, BertConfig, BertModel

from liser.files import read_json, write_json
from liser.params import ParamsError, parse_params
from liser.teachers.fetching import RECORD_FILE, WeightsUnavailable
from liser.teachers.speech_base import provide_speech_base
from liser.teachers.speech_evaluation import teacher_logits
from liser.teachers.speech_input import WaveformInput, waveform_input
from liser.teachers.speech_model import (
    ATTENTION_PROJECTIONS,
    TEACHER_FILE,
    SpeechTeacherUnavailable,
    build_speech_teacher,
    load_speech_teacher,
    lora_module_names,
    lora_targets,
    save_speech_teacher,
)
from liser.teachers.speech_training import train_speech_teacher
from liser.teachers.speech_windows import window_softmaxes
from liser.unlabeled.windows import segment_windows
from tests.helpers import REPO, section, write_tone
from tests.teacher_fixtures import RATE, encoder_config, tiny_base

torch.set_num_threads(1)

CLASSES = ["low", "middle", "high"]
ARCHITECTURES = ["hubert", "wav2vec2", "wavlm", "data2vec-audio"]
# wav2vec2-base's feature extractor: each utterance normalised, padding fed unmasked.
WAV2VEC2_BASE_INPUT = {"do_normalize": True, "return_attention_mask": False}


def teacher(base, normalize="checkpoint", seed=1):
    params = section("speech_teacher", lora_rank=2, lora_alpha=4, normalize=normalize)
    return build_speech_teacher(base, 3, params, seed=seed)


def items(n: int, seed: int) -> list[tuple[np.ndarray, int]]:
    """Short noisy tones, one pitch per class, at different loudness."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        t = np.arange(int(rng.uniform(0.2, 0.35) * RATE)) / RATE
        wave = np.sin(2 * np.pi * (200.0, 500.0, 1200.0)[i % 3] * t) + 0.1 * rng.normal(size=t.size)
        out.append(((rng.uniform(0.05, 0.5) * wave).astype(np.float32), i % 3))
    return out


@pytest.fixture(scope="module")
def unlabeled(tmp_path_factory):
    """Two segments' wavs and their 16-frame windows."""
    root = tmp_path_factory.mktemp("unlabeled")
    frames = {"MSP-FACE_0001_0001": 40, "MSP-FACE_0002_0001": 20}
    manifest = pd.DataFrame(
        [
            {"utterance": s, "path": str(write_tone(root / f"{s}.wav", count / 30, freq=300.0 + 200 * i))}
            for i, (s, count) in enumerate(frames.items())
        ]
    )
    windows = [
        segment_windows(s, f"Speaker_{i}", np.ones(n, dtype=bool), 16, 30.0) for i, (s, n) in enumerate(frames.items())
    ]
    return manifest, pd.concat(windows, ignore_index=True)


def expected_targets(model_type: str) -> list[str]:
    prefix = AutoModelForAudioClassification.from_config(encoder_config(model_type)).base_model_prefix
    return [f"{prefix}.encoder.layers.{i}.attention.{p}" for i in range(2) for p in ATTENTION_PROJECTIONS]


@pytest.mark.parametrize("model_type", ARCHITECTURES)
def test_each_architecture_trains_saves_loads_and_scores_windows(model_type, tmp_path, unlabeled):
    preprocessor = WAV2VEC2_BASE_INPUT if model_type == "wav2vec2" else None
    base = tiny_base(tmp_path / "base", model_type, preprocessor)
    model = teacher(base)
    targets = lora_module_names(model)
    assert sorted(targets) == sorted(lora_targets(model.get_base_model())) == sorted(expected_targets(model_type))
    assert not any("gru_rel_pos" in name or "rel_attn_embed" in name for name in targets)
    expected_input = {"normalize": "checkpoint", "do_normalize": False, "return_attention_mask": True}
    expected_input.update(preprocessor or {})
    assert waveform_input(model) == WaveformInput(**expected_input)

    params = section("speech_teacher", epochs=1, lr=1e-2, batch_size=3, max_seconds=0.25)
    result = train_speech_teacher(items(6, 2), items(3, 3), model, params, seed=0)
    assert len(result.history) == 1
    save_speech_teacher(tmp_path / "teacher", result.model, CLASSES, fold=0)
    described = read_json(tmp_path / "teacher" / TEACHER_FILE)
    assert described["lora"]["targets"] == targets
    assert described["input"] == expected_input
    assert described["architecture"] == type(model.get_base_model()).__name__
    assert described["base"] is None  # a folder stage speech_base did not write: no record of where it came from

    loaded, classes, info = load_speech_teacher(tmp_path / "teacher", base)
    assert classes == CLASSES and info == {"fold": 0} and waveform_input(loaded) == waveform_input(model)
    waveforms = [w for w, _ in items(5, 4)]
    np.testing.assert_array_equal(teacher_logits(loaded, waveforms, 2), teacher_logits(result.model, waveforms, 2))

    manifest, windows = unlabeled
    table = window_softmaxes(loaded, manifest, windows, 2, classes=CLASSES)
    probabilities = table[[f"p_{c}" for c in CLASSES]].to_numpy()
    assert len(table) == len(windows)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    again = window_softmaxes(result.model, manifest, windows, 3, classes=CLASSES)
    np.testing.assert_allclose(again[[f"p_{c}" for c in CLASSES]].to_numpy(), probabilities, atol=1e-6)


def test_a_teacher_is_loaded_only_on_the_base_it_was_trained_on(tmp_path):
    """The base's record (stage speech_base's fetched.json) goes into teacher.json; another base is refused."""
    source = tiny_base(tmp_path / "source", "hubert")
    provide_speech_base(section("speech_base", source=str(source), revision=None), tmp_path / "base")
    model = teacher(tmp_path / "base")
    save_speech_teacher(tmp_path / "teacher", model, CLASSES)
    recorded = read_json(tmp_path / "teacher" / TEACHER_FILE)["base"]
    assert recorded == {"source": str(source), "revision": None, "commit": None}
    load_speech_teacher(tmp_path / "teacher", tmp_path / "base")
    other = tiny_base(tmp_path / "other", "hubert", seed=5)
    provide_speech_base(section("speech_base", source=str(other), revision=None), tmp_path / "other_base")
    with pytest.raises(SpeechTeacherUnavailable, match="was trained on the speech base"):
        load_speech_teacher(tmp_path / "teacher", tmp_path / "other_base")
    with pytest.raises(SpeechTeacherUnavailable, match="was trained on the speech base"):
        load_speech_teacher(tmp_path / "teacher", other)  # a folder without a record


def test_a_teacher_json_of_an_older_version_is_refused_with_what_to_do(tmp_path):
    base = tiny_base(tmp_path / "base", "hubert")
    save_speech_teacher(tmp_path / "teacher", teacher(base), CLASSES)
    described = read_json(tmp_path / "teacher" / TEACHER_FILE)
    write_json(tmp_path / "teacher" / TEACHER_FILE, {k: v for k, v in described.items() if k != "base"})
    with pytest.raises(ValueError, match="older version: run its stage again"):
        load_speech_teacher(tmp_path / "teacher", base)


class Recording(torch.nn.Module):
    """Passes batches to the teacher and keeps what it was given."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model, self.config, self.calls = model, model.config, []

    def forward(self, input_values, attention_mask=None):
        self.calls.append((input_values.clone(), attention_mask))
        return self.model(input_values=input_values, attention_mask=attention_mask)


def test_the_feature_extractors_settings_are_applied(tmp_path):
    waveforms = [0.2 * w for w, _ in items(3, 7)]
    normalising = teacher(tiny_base(tmp_path / "w2v", "wav2vec2", WAV2VEC2_BASE_INPUT))
    np.testing.assert_allclose(
        teacher_logits(normalising, [3 * w for w in waveforms], 8), teacher_logits(normalising, waveforms, 8), atol=1e-5
    )
    recording = Recording(normalising)
    teacher_logits(recording, waveforms, 3)
    (batch, mask), shortest = recording.calls[0], min(len(w) for w in waveforms)
    assert mask is None and batch.shape[1] > shortest  # padded, and fed unmasked
    assert abs(float(batch[0, :shortest].mean())) < 1e-4 and abs(float(batch[0, :shortest].std()) - 1) < 1e-3
    assert not batch[0, shortest:].any()  # zero padding after the normalised samples

    raw = teacher(tiny_base(tmp_path / "hubert", "hubert"))  # no preprocessor_config.json
    assert waveform_input(raw) == WaveformInput("checkpoint", do_normalize=False, return_attention_mask=True)
    assert not np.allclose(
        teacher_logits(raw, [3 * w for w in waveforms], 8), teacher_logits(raw, waveforms, 8), atol=1e-4
    )
    recording = Recording(raw)
    teacher_logits(recording, waveforms, 3)
    (batch, mask), ordered = recording.calls[0], sorted(waveforms, key=len)
    assert mask is not None and [int(m.sum()) for m in mask] == [len(w) for w in ordered]
    np.testing.assert_array_equal(batch[0, : len(ordered[0])].numpy(), ordered[0])  # as given


def test_what_is_not_a_speech_encoder_is_refused_clearly(tmp_path):
    BertModel(BertConfig(vocab_size=8, hidden_size=8, num_hidden_layers=1, num_attention_heads=1)).save_pretrained(
        tmp_path / "bert"
    )
    with pytest.raises(ValueError, match="no audio-classification model for model_type 'bert'"):
        teacher(tmp_path / "bert")
    with pytest.raises(WeightsUnavailable, match="model_type 'bert' is not a speech encoder"):
        provide_speech_base(section("speech_base", source=str(tmp_path / "bert"), revision=None), tmp_path / "out")
    with pytest.raises(ValueError, match="Linear: no encoder layer with a self-attention"):
        lora_targets(torch.nn.Linear(2, 2))


def test_the_speech_base_stage_takes_any_of_the_encoders_with_its_feature_extractor(tmp_path):
    source = tiny_base(tmp_path / "wav2vec2", "wav2vec2", WAV2VEC2_BASE_INPUT)
    record = provide_speech_base(section("speech_base", source=str(source), revision=None), tmp_path / "base")
    assert record["model_type"] == "wav2vec2" and "preprocessor_config.json" in record["files"]
    assert (tmp_path / "base" / RECORD_FILE).is_file()
    assert waveform_input(teacher(tmp_path / "base")) == WaveformInput("checkpoint", **WAV2VEC2_BASE_INPUT)


@pytest.mark.parametrize(
    ("normalize", "with_file", "normalised"),
    [("checkpoint", True, True), ("checkpoint", False, False), (True, False, True), (False, True, False)],
)
def test_normalize_is_an_explicit_choice_recorded_with_the_teacher(normalize, with_file, normalised, tmp_path):
    """speech_teacher.normalize: true and false override the base's preprocessor_config.json; checkpoint follows it
    (no normalisation without one).  The mask always follows the base."""
    preprocessor = {"do_normalize": True, "return_attention_mask": True} if with_file else None
    model = teacher(tiny_base(tmp_path / "base", "hubert", preprocessor), normalize=normalize)
    assert waveform_input(model) == WaveformInput(normalize, normalised, True)
    save_speech_teacher(tmp_path / "teacher", model, CLASSES)
    assert read_json(tmp_path / "teacher" / TEACHER_FILE)["input"] == {
        "normalize": normalize,
        "do_normalize": normalised,
        "return_attention_mask": True,
    }
    recording = Recording(model)
    waveform = 0.2 * items(1, 8)[0][0] + 0.1
    teacher_logits(recording, [waveform], 1)
    fed = recording.calls[0][0][0].numpy()
    if normalised:
        assert abs(fed.mean()) < 1e-4 and abs(fed.std() - 1) < 1e-3
    else:
        np.testing.assert_array_equal(fed, waveform)


def test_normalize_takes_true_false_or_checkpoint_and_nothing_else():
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    assert parse_params(raw).speech_teacher.normalize is False
    for value in (True, "checkpoint"):
        raw["speech_teacher"]["normalize"] = value
        assert parse_params(raw).speech_teacher.normalize == value
    raw["speech_teacher"]["normalize"] = "per_utterance"
    with pytest.raises(ParamsError, match="speech_teacher.normalize"):
        parse_params(raw)
