import io

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from liser.features import FeatureStore, LogMel, audio_blocks, extract_corpus_features, load_audio

from .helpers import section, write_tone


def test_three_seconds_is_64_by_94():
    params = section("features")
    logmel = LogMel(params)(np.random.default_rng(0).normal(0, 0.1, 48000).astype(np.float32))
    assert logmel.shape == (64, 94) == (params.n_mels, params.crop_frames)
    assert logmel.dtype == np.float32


def test_silence_maps_to_the_log_floor():
    params = section("features")
    logmel = LogMel(params)(np.zeros(16000, dtype=np.float32))
    assert np.allclose(logmel, LogMel.silence_of(params))


def test_48k_stereo_is_resampled_to_16k_mono(tmp_path):
    path = write_tone(tmp_path / "a.wav", seconds=1.5, sample_rate=48000, channels=2, freq=1000.0)
    waveform = load_audio(path, 16000)
    assert waveform.shape == (24000,)
    spectrum = np.abs(np.fft.rfft(waveform))
    assert np.argmax(spectrum) * 16000 / len(waveform) == pytest.approx(1000, abs=2)


def test_tone_energy_lands_in_the_right_mel_band():
    params = section("features")
    t = np.arange(16000) / 16000
    low = LogMel(params)(np.sin(2 * np.pi * 200 * t).astype(np.float32)).mean(axis=1).argmax()
    high = LogMel(params)(np.sin(2 * np.pi * 4000 * t).astype(np.float32)).mean(axis=1).argmax()
    assert low < high


def test_store_round_trip_and_bad_file_reported(tmp_path):
    paths = [write_tone(tmp_path / f"{i}.wav", seconds=s) for i, s in enumerate([1.0, 3.0, 0.4])]
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....WAVEfmt garbage")
    manifest = pd.DataFrame({"utterance": ["a", "b", "c", "broken"], "path": [*map(str, paths), str(broken)]})
    problems = extract_corpus_features(manifest, section("features"), tmp_path / "features")
    assert list(problems["path"]) == [str(broken)]
    store = FeatureStore(tmp_path / "features")
    assert sorted(p.name for p in (tmp_path / "features").iterdir()) == ["index.parquet", "logmel.npy", "problems.csv"]
    assert list(pd.read_csv(tmp_path / "features" / "problems.csv")["path"]) == [str(broken)]
    assert store["b"].shape == (64, 94)
    assert store["a"].shape == (64, 32) and store["c"].shape[1] == 13
    expected = LogMel(section("features"))(load_audio(paths[0], 16000))
    np.testing.assert_allclose(store["a"], expected)
    assert "broken" not in store
    # written an utterance at a time, the file is what np.save writes for the whole array
    whole = io.BytesIO()
    np.save(whole, np.load(tmp_path / "features" / "logmel.npy"))
    assert (tmp_path / "features" / "logmel.npy").read_bytes() == whole.getvalue()


@pytest.mark.parametrize("rate, channels", [(16000, 1), (48000, 2), (22050, 1)])
def test_audio_read_in_blocks_is_the_audio_read_whole(tmp_path, rate, channels):
    rng = np.random.default_rng(rate)
    path = tmp_path / "speech.wav"
    sf.write(path, rng.normal(0, 0.1, (int(7.3 * rate), channels)).astype(np.float32), rate, subtype="FLOAT")
    blocks = list(audio_blocks(path, 16000, block_s=2.0))
    assert len(blocks) == 4
    np.testing.assert_array_equal(np.concatenate(blocks), load_audio(path, 16000))


@pytest.mark.parametrize("seconds, block_s", [(7.3, 2.0), (3.0, 0.05), (0.6, 10.0), (5.0, 0.128)])
def test_log_mel_computed_block_by_block_is_the_log_mel_of_the_whole(seconds, block_s):
    params = section("features")
    waveform = np.random.default_rng(1).normal(0, 0.1, int(seconds * 16000)).astype(np.float32)
    size = int(block_s * 16000)
    blocks = [waveform[i : i + size] for i in range(0, len(waveform), size)]
    whole = LogMel(params)(waveform)
    streamed = LogMel(params).streamed(blocks)
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, rtol=0, atol=1e-4)
