import shutil

import numpy as np
import pytest

from liser.corpora.ferv39k import read_ferv39k
from liser.corpora.labeled import read_corpus
from liser.demo import DEMO_FOLDERS, MANIFESTS, write_demo
from liser.demo.voice import random_speaker, speak
from liser.files import folder_manifest

from .helpers import section


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "demo"
    params = section(
        "demo",
        seed=0,
        ravdess_actors=10,
        crema_d_actors=10,
        mspface_speakers=3,
        mspface_videos=3,
        ferv39k_clips_per_class=2,
        ferv39k_identities=2,
    )
    counts = write_demo(root, params)
    assert counts["ravdess"] == 160 and counts["crema_d"] == 180 and counts["mspface"] > 0
    assert counts["ferv39k"] == 14
    return root


def test_demo_corpora_read_like_the_real_ones(demo_root):
    ravdess = read_corpus("ravdess", demo_root / DEMO_FOLDERS["ravdess"])
    crema_d = read_corpus("crema_d", demo_root / DEMO_FOLDERS["crema_d"])
    assert ravdess.utterances["speaker"].nunique() == 10 and crema_d.utterances["speaker"].nunique() == 10
    assert set(ravdess.utterances["sample_rate"]) == {48000} and set(crema_d.utterances["sample_rate"]) == {16000}
    assert ravdess.utterances["emotion"].nunique() == 8 and crema_d.utterances["emotion"].nunique() == 6
    assert ravdess.utterances.groupby("gender")["speaker"].nunique().to_dict() == {"female": 5, "male": 5}
    assert crema_d.utterances.groupby("gender")["speaker"].nunique().to_dict() == {"female": 5, "male": 5}
    assert (crema_d.utterances.duration > 0.5).all()


def test_demo_face_corpus_reads_like_ferv39k(demo_root):
    clips = read_ferv39k(demo_root / DEMO_FOLDERS["ferv39k"], progress=False).clips
    assert len(clips) == 14 and clips["label"].nunique() == 7
    assert set(clips["split"]) == {"train", "test"}


def test_demo_carries_the_damage_real_copies_have(demo_root):
    ravdess = read_corpus("ravdess", demo_root / DEMO_FOLDERS["ravdess"])
    crema_d = read_corpus("crema_d", demo_root / DEMO_FOLDERS["crema_d"])
    reasons = " | ".join([*ravdess.problems.reason, *crema_d.problems.reason])
    assert "truncated" in reasons and "empty" in reasons and "does not follow" in reasons
    assert len(ravdess.utterances) == 159 and len(crema_d.utterances) == 179


def test_demo_is_deterministic(tmp_path):
    params = section(
        "demo",
        seed=4,
        ravdess_actors=10,
        crema_d_actors=10,
        mspface_speakers=2,
        mspface_videos=3,
        ferv39k_clips_per_class=2,
        ferv39k_identities=2,
        broken_files=False,
    )
    a, b = tmp_path / "a", tmp_path / "b"
    write_demo(a, params)
    write_demo(b, params)
    for name in (
        "ravdess/Actor_07/03-01-04-02-02-01-07.wav",
        "crema_d/VideoDemographics.csv",
        "mspface/segments_data.txt",
    ):
        assert (a / name).read_bytes() == (b / name).read_bytes()


def _cues(waveform, rate=16000):
    return {"duration": len(waveform) / rate, "rms": float(np.sqrt(np.mean(waveform**2)))}


def test_emotion_shows_in_the_signal_but_no_single_cue_decides_it():
    rng = np.random.default_rng(0)
    speakers = [random_speaker(rng, g) for g in ("male", "female") * 4]
    cues = {
        e: [_cues(speak("Kids are talking by the door", e, s, rng, 16000)) for s in speakers]
        for e in ("neutral", "sad", "angry", "calm")
    }
    mean = {e: {k: np.mean([c[k] for c in v]) for k in ("duration", "rms")} for e, v in cues.items()}
    assert mean["sad"]["duration"] > mean["angry"]["duration"]
    assert mean["angry"]["rms"] > mean["sad"]["rms"]
    # loudness alone does not separate angry from neutral speakers, nor duration sad from calm
    assert min(c["rms"] for c in cues["angry"]) < max(c["rms"] for c in cues["neutral"])
    assert min(c["duration"] for c in cues["sad"]) < max(c["duration"] for c in cues["calm"])


def test_same_words_differ_between_utterances():
    speaker = random_speaker(np.random.default_rng(1), "female")
    a = speak("Dogs are sitting by the door", "happy", speaker, np.random.default_rng(1), 16000)
    b = speak("Dogs are sitting by the door", "happy", speaker, np.random.default_rng(2), 16000)
    assert len(a) != len(b) or not np.allclose(a, b)


def test_each_corpus_has_a_manifest_that_changes_with_its_files(demo_root, tmp_path):
    for name, folder in DEMO_FOLDERS.items():
        manifest = (demo_root / MANIFESTS / f"{name}.tsv").read_text()
        files = sorted(p for p in (demo_root / folder).rglob("*") if p.is_file())
        assert [line.split("\t")[0] for line in manifest.splitlines()] == [
            p.relative_to(demo_root / folder).as_posix() for p in files
        ]
        assert manifest == folder_manifest(demo_root / folder)
    copy = tmp_path / "ferv39k"
    shutil.copytree(demo_root / DEMO_FOLDERS["ferv39k"], copy)
    frame = next(p for p in sorted(copy.rglob("*.jpg")))
    frame.write_bytes(frame.read_bytes()[:-1] + b"\0")  # one byte of one frame
    assert folder_manifest(copy) != folder_manifest(demo_root / DEMO_FOLDERS["ferv39k"])
