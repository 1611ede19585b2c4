import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from transformers import HubertConfig, HubertModel

from liser.demo.speech_base import (
    PRETRAINING_FILE,
    frame_targets,
    n_frames,
    pretrain_speech_base,
    write_pretraining_pool,
)
from liser.teachers.speech import ATTENTION_PROJECTIONS, DEMO_CONFIG, build_speech_teacher, lora_module_names

RATE = 16000
TINY = {"hidden_size": 32, "intermediate_size": 64, "conv_dim": (16,) * 7, "classifier_proj_size": 16}


def babble(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Syllable-like stretches: a harmonic tone gliding in pitch or a noise burst, with pauses."""
    pieces = []
    while sum(map(len, pieces)) < seconds * RATE:
        n = int(rng.uniform(0.06, 0.2) * RATE)
        t = np.arange(n) / RATE
        kind = rng.integers(3)
        if kind == 0:
            f0 = rng.uniform(100, 300) * (1 + rng.uniform(-0.3, 0.3) * t / t[-1])
            phase = 2 * np.pi * np.cumsum(f0) / RATE
            piece = sum(np.sin(k * phase) / k for k in (1, 2, 3)) * np.hanning(n)
        elif kind == 1:
            piece = rng.normal(0, 0.5, n) * np.hanning(n)
        else:
            piece = np.zeros(n)
        pieces.append(0.3 * piece)
    audio = np.concatenate(pieces)[: int(seconds * RATE)]
    return (audio + rng.normal(0, 0.003, audio.size)).astype(np.float32)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech_base")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(16):
        path = root / "audio" / f"u{i:02d}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(str(path), babble(rng.uniform(0.8, 1.2), rng), RATE, subtype="PCM_16")
        paths.append(path)
    out = root / "base"
    figures = pretrain_speech_base(
        paths,
        out,
        config=TINY,
        clusters=8,
        epochs=12,
        lr=3e-3,
        batch_size=4,
        crop_seconds=0.6,
        check_utterances=8,
        seed=0,
        threads=1,
    )
    return out, figures


def test_frame_targets_are_on_hubert_frames():
    model = HubertModel(HubertConfig(**{**DEMO_CONFIG, **TINY}))
    rng = np.random.default_rng(1)
    for samples in (400, 719, 720, 5000, 16123):
        mfcc, prosody = frame_targets(babble(samples / RATE + 0.01, rng)[:samples])
        expected = int(model._get_feat_extract_output_lengths(torch.tensor(samples)))
        assert n_frames(samples) == expected == len(mfcc) == len(prosody)
        assert mfcc.shape[1] == 39 and prosody.shape[1] == 3 and np.isfinite(mfcc).all() and np.isfinite(prosody).all()


def test_pretraining_lowers_the_masked_prediction_loss(pretrained):
    _, figures = pretrained
    assert figures["masked_loss_after"] < figures["masked_loss_before"] - 0.1
    assert figures["prosody_loss_after"] < figures["prosody_loss_before"]
    assert figures["clusters"] == 8 and figures["utterances"] == 16


def test_the_saved_base_loads_through_the_teachers_code_path(pretrained, monkeypatch):
    out, _ = pretrained
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert (out / PRETRAINING_FILE).is_file()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging folder left
    teacher = build_speech_teacher(str(out), num_labels=3, lora_rank=2, lora_alpha=4)
    saved = HubertModel.from_pretrained(out).state_dict()
    loaded = teacher.get_base_model().hubert.state_dict()
    for name, tensor in saved.items():
        plain = {k.replace(".base_layer.", "."): v for k, v in loaded.items()}[name]
        assert torch.equal(plain, tensor), name
    layers = teacher.get_base_model().config.num_hidden_layers
    assert sorted(lora_module_names(teacher)) == sorted(
        f"hubert.encoder.layers.{i}.attention.{p}" for i in range(layers) for p in ATTENTION_PROJECTIONS
    )
    logits = teacher(input_values=torch.zeros(2, RATE)).logits
    assert logits.shape == (2, 3)


def test_the_pool_is_unlabeled_speech_of_its_own_speakers(tmp_path):
    manifest = write_pretraining_pool(tmp_path / "pool", 4, n_speakers=2, seed=3)
    assert list(manifest.columns) == ["utterance", "path", "speaker", "gender", "duration"]
    assert set(manifest["gender"]) == {"male", "female"} and manifest["speaker"].nunique() == 2
    assert pd.read_parquet(tmp_path / "pool" / "manifest.parquet").equals(manifest)
    for path, duration in zip(manifest["path"], manifest["duration"]):
        audio, rate = sf.read(path)
        assert rate == RATE and abs(len(audio) / rate - duration) < 1e-6 and np.abs(audio).max() > 0.01
    again = write_pretraining_pool(tmp_path / "again", 4, n_speakers=2, seed=3)
    assert np.array_equal(sf.read(again["path"][0])[0], sf.read(manifest["path"][0])[0])
