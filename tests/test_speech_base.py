import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from transformers import HubertConfig, HubertModel

from liser.demo.speech_base import (
    PRETRAINING_FILE,
    SMALL_HUBERT,
    frame_targets,
    n_frames,
    pretrain_speech_base,
    span_mask,
    write_pretraining_pool,
)
from liser.files import read_json
from liser.teachers.fetching import WeightsUnavailable
from liser.teachers.speech_base import SpeechBaseChoice, check_speech_base
from liser.teachers.speech_model import ATTENTION_PROJECTIONS, build_speech_teacher, lora_module_names

from .helpers import section

RATE = 16000
# a short run: 16 utterances of about a second, 8 clusters
SHORT = dict(clusters=8, epochs=12, lr=3e-3, batch_size=4, crop_seconds=0.6, check_utterances=8, threads=1)


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


def babble_files(folder, count: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"u{i:02d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), babble(rng.uniform(0.8, 1.2), rng), RATE, subtype="PCM_16")
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech_base")
    out = root / "base"
    figures = pretrain_speech_base(section("speech_base", **SHORT), babble_files(root / "audio", 16, 0), out)
    return out, figures


def test_frame_targets_are_on_hubert_frames():
    model = HubertModel(HubertConfig(**SMALL_HUBERT))
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
    out, figures = pretrained
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert read_json(out / PRETRAINING_FILE) == figures
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging folder left
    record = check_speech_base(
        out, SpeechBaseChoice.of(section("speech_base"))
    )  # made for source: pretrain, as params.yaml's demo says
    assert record["source"] == "pretrain" and record["model_type"] == "hubert"
    assert set(record["files"]) == {"config.json", "model.safetensors", PRETRAINING_FILE}
    teacher = build_speech_teacher(out, 3, section("speech_teacher", lora_rank=2, lora_alpha=4), seed=0)
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
    params = section("speech_base", pool_utterances=4, pool_speakers=2, seed=3)
    manifest = write_pretraining_pool(params, tmp_path / "pool")
    assert list(manifest.columns) == ["utterance", "path", "speaker", "gender", "duration"]
    assert set(manifest["gender"]) == {"male", "female"} and manifest["speaker"].nunique() == 2
    assert pd.read_parquet(tmp_path / "pool" / "manifest.parquet").equals(manifest)
    assert manifest["path"].str.startswith("wav/").all()  # relative to the pool's folder: the same in any checkout
    for path, duration in zip(manifest["path"], manifest["duration"]):
        audio, rate = sf.read(tmp_path / "pool" / path)
        assert rate == RATE and abs(len(audio) / rate - duration) < 1e-6 and np.abs(audio).max() > 0.01
    write_pretraining_pool(params, tmp_path / "again")
    assert all(
        (tmp_path / "pool" / name).read_bytes() == (tmp_path / "again" / name).read_bytes()
        for name in ["manifest.parquet", *manifest["path"]]
    )


def test_span_masks_cover_about_mask_prob_of_the_frames_in_spans():
    rng = np.random.default_rng(0)
    mask = span_mask(200, 50, 0.5, 5, rng)
    assert mask.shape == (200, 50) and mask.any(axis=1).all()
    assert 0.3 < mask.mean() < 0.5  # spans may overlap, so a little under mask_prob
    runs = [np.diff(np.flatnonzero(np.diff(np.r_[0, row.astype(int), 0]))) for row in mask]
    assert min(length for row in runs for length in row[::2]) >= 5  # every masked stretch is a span or more
    assert span_mask(3, 3, 0.3, 5, rng).sum(axis=1).tolist() == [1, 1, 1]  # spans of at most half a short crop
    np.testing.assert_array_equal(
        span_mask(4, 30, 0.5, 5, np.random.default_rng(7)), span_mask(4, 30, 0.5, 5, np.random.default_rng(7))
    )


def test_a_base_made_for_other_params_is_refused_naming_both(pretrained):
    out, _ = pretrained
    paper = SpeechBaseChoice("facebook/hubert-base-ls960", "dba3bb02fda4248b6e082697eee756de8fe8aa8a")
    with pytest.raises(WeightsUnavailable) as refused:
        check_speech_base(out, paper)
    message = str(refused.value)
    assert "source 'pretrain', revision None" in message
    assert "'facebook/hubert-base-ls960', revision 'dba3bb02fda4248b6e082697eee756de8fe8aa8a'" in message
    assert "dvc repro speech_base" in message
