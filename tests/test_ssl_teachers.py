"""The speech teacher on each self-supervised encoder it supports (HuBERT, wav2vec 2.0, WavLM, data2vec-audio):
tiny random configurations saved as a hub checkpoint would be, built, trained, saved, loaded and scored offline."""

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForAudioClassification,
    BertConfig,
    BertModel,
    Wav2Vec2FeatureExtractor,
)

from liser.files import read_json, write_json
from liser.teachers import speech
from liser.teachers.speech import (
    ATTENTION_PROJECTIONS,
    TEACHER_FILE,
    WaveformInput,
    build_speech_teacher,
    load_speech_teacher,
    lora_module_names,
    lora_targets,
    save_speech_teacher,
    teacher_logits,
    train_speech_teacher,
    waveform_input,
    window_softmaxes,
)
from liser.teachers.weights import WeightsUnavailable, provide_speech_base
from liser.unlabeled.windows import segment_windows
from tests.helpers import write_tone

torch.set_num_threads(1)

RATE = 16000
CLASSES = ["low", "middle", "high"]
# Two conv layers (10 ms frames), two encoder layers of two heads: a few thousand parameters.
TINY = {
    "hidden_size": 16,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "conv_dim": (32, 32),
    "conv_kernel": (10, 3),
    "conv_stride": (5, 2),
    "num_conv_pos_embeddings": 4,
    "num_conv_pos_embedding_groups": 2,
    "classifier_proj_size": 8,
    "layerdrop": 0.0,
    "mask_time_length": 2,
}
OWN_SETTINGS = {
    "wavlm": {"num_buckets": 8, "max_bucket_distance": 16},
    "data2vec-audio": {"num_conv_pos_embeddings": 2, "conv_pos_kernel_size": 3},  # layers of the positional conv
}
ARCHITECTURES = ["hubert", "wav2vec2", "wavlm", "data2vec-audio"]
# wav2vec2-base's feature extractor: each utterance normalised, padding fed unmasked.
WAV2VEC2_BASE_INPUT = {"do_normalize": True, "return_attention_mask": False}


def tiny_config(model_type: str, **settings) -> AutoConfig:
    return AutoConfig.for_model(model_type, **{**TINY, **OWN_SETTINGS.get(model_type, {}), **settings})


def tiny_base(folder, model_type: str, preprocessor: dict | None = None):
    """A random encoder saved as a hub checkpoint is (the bare ``*Model``), with a feature extractor if given."""
    torch.manual_seed(0)
    AutoModel.from_config(tiny_config(model_type)).save_pretrained(folder)
    if preprocessor is not None:
        Wav2Vec2FeatureExtractor(sampling_rate=RATE, **preprocessor).save_pretrained(folder)
    return folder


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
    prefix = AutoModelForAudioClassification.from_config(tiny_config(model_type)).base_model_prefix
    return [f"{prefix}.encoder.layers.{i}.attention.{p}" for i in range(2) for p in ATTENTION_PROJECTIONS]


@pytest.mark.parametrize("model_type", ARCHITECTURES)
def test_each_architecture_trains_saves_loads_and_scores_windows(model_type, tmp_path, unlabeled):
    preprocessor = WAV2VEC2_BASE_INPUT if model_type == "wav2vec2" else None
    base = tiny_base(tmp_path / "base", model_type, preprocessor)
    model = build_speech_teacher(base, num_labels=3, lora_rank=2, lora_alpha=4, seed=1)
    targets = lora_module_names(model)
    assert sorted(targets) == sorted(lora_targets(model.get_base_model())) == sorted(expected_targets(model_type))
    assert not any("gru_rel_pos" in name or "rel_attn_embed" in name for name in targets)
    assert waveform_input(model) == WaveformInput(**(preprocessor or {}))

    result = train_speech_teacher(items(6, 2), items(3, 3), model, epochs=1, lr=1e-2, batch_size=3, max_seconds=0.25)
    assert len(result.history) == 1
    save_speech_teacher(tmp_path / "teacher", result.model, CLASSES, fold=0)
    described = read_json(tmp_path / "teacher" / TEACHER_FILE)
    assert described["lora"]["targets"] == targets
    assert described["input"] == {"do_normalize": False, "return_attention_mask": True, **(preprocessor or {})}
    assert described["architecture"] == type(model.get_base_model()).__name__ and described["base_config"] is None

    loaded, classes, info = load_speech_teacher(tmp_path / "teacher", base_source=base)
    assert classes == CLASSES and info == {"fold": 0} and waveform_input(loaded) == waveform_input(model)
    waveforms = [w for w, _ in items(5, 4)]
    np.testing.assert_array_equal(teacher_logits(loaded, waveforms, 2), teacher_logits(result.model, waveforms, 2))

    manifest, windows = unlabeled
    table = window_softmaxes(loaded, manifest, windows, batch_size=2, classes=CLASSES)
    probabilities = table[[f"p_{c}" for c in CLASSES]].to_numpy()
    assert len(table) == len(windows)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    again = window_softmaxes(result.model, manifest, windows, batch_size=3, classes=CLASSES)
    np.testing.assert_allclose(again[[f"p_{c}" for c in CLASSES]].to_numpy(), probabilities, atol=1e-6)


@pytest.mark.parametrize("model_type", ARCHITECTURES)
def test_a_teacher_carrying_its_own_base_round_trips(model_type, tmp_path):
    torch.manual_seed(2)
    model = speech._with_lora(
        AutoModelForAudioClassification.from_config(tiny_config(model_type, num_labels=3)), 2, 4.0, 0.0
    )
    save_speech_teacher(tmp_path / "teacher", model, CLASSES)
    assert read_json(tmp_path / "teacher" / TEACHER_FILE)["base_config"]["model_type"] == model_type
    loaded, _, _ = load_speech_teacher(tmp_path / "teacher")
    waveforms = [w for w, _ in items(3, 5)]
    np.testing.assert_array_equal(teacher_logits(loaded, waveforms), teacher_logits(model, waveforms))


def test_teachers_saved_before_other_architectures_still_load(tmp_path):
    model = build_speech_teacher(None, num_labels=3, lora_rank=2, small_config=TINY, seed=3)
    save_speech_teacher(tmp_path / "teacher", model, CLASSES, fold=1)
    described = read_json(tmp_path / "teacher" / TEACHER_FILE)
    first_format = {
        "classes": described["classes"],
        "base_source": None,
        "hubert_config": described["base_config"]["config"],
        "lora": {key: described["lora"][key] for key in ("rank", "alpha", "dropout")},
        "info": described["info"],
    }
    write_json(tmp_path / "teacher" / TEACHER_FILE, first_format)
    loaded, classes, info = load_speech_teacher(tmp_path / "teacher")
    assert classes == CLASSES and info == {"fold": 1} and waveform_input(loaded) == WaveformInput()
    waveforms = [w for w, _ in items(3, 6)]
    np.testing.assert_array_equal(teacher_logits(loaded, waveforms), teacher_logits(model, waveforms))


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
    normalising = build_speech_teacher(tiny_base(tmp_path / "w2v", "wav2vec2", WAV2VEC2_BASE_INPUT), 3, seed=1)
    np.testing.assert_allclose(
        teacher_logits(normalising, [3 * w for w in waveforms]), teacher_logits(normalising, waveforms), atol=1e-5
    )
    recording = Recording(normalising)
    teacher_logits(recording, waveforms, batch_size=3)
    (batch, mask), shortest = recording.calls[0], min(len(w) for w in waveforms)
    assert mask is None and batch.shape[1] > shortest  # padded, and fed unmasked
    assert abs(float(batch[0, :shortest].mean())) < 1e-4 and abs(float(batch[0, :shortest].std()) - 1) < 1e-3
    assert not batch[0, shortest:].any()  # zero padding after the normalised samples

    raw = build_speech_teacher(tiny_base(tmp_path / "hubert", "hubert"), 3, seed=1)  # no preprocessor_config.json
    assert waveform_input(raw) == WaveformInput(do_normalize=False, return_attention_mask=True)
    assert not np.allclose(teacher_logits(raw, [3 * w for w in waveforms]), teacher_logits(raw, waveforms), atol=1e-4)
    recording = Recording(raw)
    teacher_logits(recording, waveforms, batch_size=3)
    (batch, mask), ordered = recording.calls[0], sorted(waveforms, key=len)
    assert mask is not None and [int(m.sum()) for m in mask] == [len(w) for w in ordered]
    np.testing.assert_array_equal(batch[0, : len(ordered[0])].numpy(), ordered[0])  # as given


def test_what_is_not_a_speech_encoder_is_refused_clearly(tmp_path):
    BertModel(BertConfig(vocab_size=8, hidden_size=8, num_hidden_layers=1, num_attention_heads=1)).save_pretrained(
        tmp_path / "bert"
    )
    with pytest.raises(ValueError, match="no audio-classification model for model_type 'bert'"):
        build_speech_teacher(tmp_path / "bert", num_labels=3)
    with pytest.raises(WeightsUnavailable, match="model_type 'bert' is not a speech encoder"):
        provide_speech_base(str(tmp_path / "bert"), None, tmp_path / "out")
    with pytest.raises(ValueError, match="Linear: no encoder layer with a self-attention"):
        lora_targets(torch.nn.Linear(2, 2))


def test_the_speech_base_stage_takes_any_of_the_encoders_with_its_feature_extractor(tmp_path):
    source = tiny_base(tmp_path / "wav2vec2", "wav2vec2", WAV2VEC2_BASE_INPUT)
    record = provide_speech_base(str(source), None, tmp_path / "base")
    assert record["model_type"] == "wav2vec2" and "preprocessor_config.json" in record["files"]
    teacher = build_speech_teacher(tmp_path / "base", num_labels=3, lora_rank=2)
    assert waveform_input(teacher) == WaveformInput(**WAV2VEC2_BASE_INPUT)
