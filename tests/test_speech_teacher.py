import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from transformers import HubertModel

from liser.folds import fold_utterances, speaker_folds
from liser.teachers.speech_evaluation import evaluate_speech_teacher
from liser.teachers.speech_model import (
    ATTENTION_PROJECTIONS,
    SpeechTeacherUnavailable,
    build_speech_teacher,
    load_speech_teacher,
    lora_module_names,
    save_speech_teacher,
)
from liser.teachers.speech_training import teacher_split, train_speech_teacher
from liser.teachers.speech_windows import window_softmaxes
from liser.teachers.window_scores import teacher_fingerprint
from liser.unlabeled.windows import segment_windows

from .helpers import section
from .teacher_fixtures import SMALL, tiny_base

torch.set_num_threads(1)

RATE = 16000
PITCHES = (180.0, 450.0, 1100.0)  # one per class
CLASSES = ["low", "middle", "high"]
NARROW = {**SMALL, "hidden_size": 32, "intermediate_size": 64, "conv_dim": (16,) * 7, "classifier_proj_size": 16}


def teacher(base, rank: int = 2, alpha: float = 4.0, seed: int = 0):
    return build_speech_teacher(base, 3, section("speech_teacher", lora_rank=rank, lora_alpha=alpha), seed=seed)


@pytest.fixture(scope="module")
def small_base(tmp_path_factory):
    """A random HuBERT of the demo base's shape, saved as a base folder."""
    return tiny_base(tmp_path_factory.mktemp("bases") / "small", shape=SMALL)


@pytest.fixture(scope="module")
def narrow_base(tmp_path_factory):
    return tiny_base(tmp_path_factory.mktemp("bases") / "narrow", shape=NARROW)


def tone(label: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A harmonic tone at the class's pitch (±8 %) in noise."""
    t = np.arange(int(seconds * RATE)) / RATE
    pitch = PITCHES[label] * rng.uniform(0.92, 1.08)
    voiced = sum(np.sin(2 * np.pi * k * pitch * t + rng.uniform(0, 6)) / k for k in (1, 2, 3))
    return (0.2 * voiced + 0.03 * rng.normal(size=t.size)).astype(np.float32)


def tone_items(n: int, seed: int) -> list[tuple[np.ndarray, int]]:
    rng = np.random.default_rng(seed)
    return [(tone(i % 3, rng.uniform(0.5, 1.0), rng), i % 3) for i in range(n)]


@pytest.fixture(scope="module")
def trained(small_base):
    """A teacher on a base of the demo's shape before training, and after a short run on a separable problem."""
    model = teacher(small_base, rank=4, alpha=8, seed=1)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    params = section("speech_teacher", epochs=12, lr=5e-3, batch_size=8, max_seconds=0.75)
    result = train_speech_teacher(tone_items(48, seed=2), tone_items(15, seed=3), model, params, seed=0)
    return before, result


def test_lora_sits_on_exactly_the_attention_projections(narrow_base):
    model = teacher(narrow_base)
    layers = model.get_base_model().config.num_hidden_layers
    expected = [f"hubert.encoder.layers.{i}.attention.{p}" for i in range(layers) for p in ATTENTION_PROJECTIONS]
    assert sorted(lora_module_names(model)) == sorted(expected)
    lora_parameters = [name for name, _ in model.named_parameters() if "lora_" in name]
    assert lora_parameters and all(".attention." in name for name in lora_parameters)
    assert not any(
        part in name
        for name in lora_parameters
        for part in ("feed_forward", "feature_extractor", "feature_projection", "pos_conv")
    )


def test_only_lora_and_heads_train_and_the_base_stays_as_it_was(trained):
    before, result = trained
    for name, parameter in result.model.named_parameters():
        trainable = "lora_" in name or ".modules_to_save." in name
        assert parameter.requires_grad == trainable, name
        if trainable:
            assert not torch.equal(parameter, before[name]), f"{name} did not train"
        else:
            assert torch.equal(parameter, before[name]), f"{name} changed"
    trained_heads = {
        name.split(".modules_to_save.")[0] for name, p in result.model.named_parameters() if ".modules_to_save." in name
    }
    assert trained_heads == {"base_model.model.projector", "base_model.model.classifier"}


def test_learns_a_separable_problem(trained):
    _, result = trained
    history = result.history
    assert list(history["epoch"]) == list(range(1, 13))
    assert history["validation_uar"].max() == history.loc[result.best_epoch - 1, "validation_uar"]
    assert history["validation_uar"].max() >= 0.8  # chance is 1/3
    scores, logits = evaluate_speech_teacher(result.model, tone_items(18, seed=4), 5)
    assert logits.shape == (18, 3) and scores.uar >= 0.6


def test_adapter_round_trip_gives_identical_outputs(trained, small_base, tmp_path):
    _, result = trained
    save_speech_teacher(tmp_path / "teacher", result.model, CLASSES, fold=2, best_epoch=result.best_epoch)
    saved = {p.name for p in (tmp_path / "teacher").iterdir()}
    assert saved == {"adapter_model.safetensors", "adapter_config.json", "teacher.json"}  # the base stays where it is
    assert str(small_base) not in (tmp_path / "teacher" / "adapter_config.json").read_text()
    loaded, classes, info = load_speech_teacher(tmp_path / "teacher", small_base)
    assert classes == CLASSES and info == {"fold": 2, "best_epoch": result.best_epoch}
    waveforms = torch.from_numpy(np.stack([w[:8000] for w, _ in tone_items(4, seed=5)]))
    result.model.eval()
    with torch.inference_mode():
        torch.testing.assert_close(
            loaded(input_values=waveforms).logits, result.model(input_values=waveforms).logits, rtol=0, atol=0
        )
    assert not any(p.requires_grad for p in loaded.parameters())


def test_the_base_is_read_from_its_folder_as_saved(narrow_base):
    model = teacher(narrow_base)
    pretrained = HubertModel.from_pretrained(narrow_base)
    torch.testing.assert_close(
        model.get_base_model().hubert.encoder.layers[1].feed_forward.output_dense.weight,
        pretrained.encoder.layers[1].feed_forward.output_dense.weight,
        rtol=0,
        atol=0,
    )
    assert len(lora_module_names(model)) == 4 * NARROW["num_hidden_layers"]


def test_a_missing_base_says_which_stage_writes_it(tmp_path):
    with pytest.raises(SpeechTeacherUnavailable, match="no such folder.*dvc repro speech_base"):
        teacher(tmp_path / "nowhere" / "hubert")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text('{"model_type": "hubert"}')
    with pytest.raises(SpeechTeacherUnavailable, match="not a complete save_pretrained folder"):
        teacher(tmp_path / "half")


class CountingModel(torch.nn.Module):
    """Passes batches to the teacher and counts the windows it is asked to score (a batch is filled up to its size
    by repeating its last window, which is not counted again)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.config = model.config
        self.windows = 0

    def forward(self, input_values, attention_mask=None):
        self.windows += len(torch.unique(input_values, dim=0))
        return self.model(input_values=input_values, attention_mask=attention_mask)


@pytest.fixture
def unlabeled(tmp_path):
    """Three segments' wavs (the last 50 ms short of its video) and their 16-frame windows."""
    rng = np.random.default_rng(6)
    frames = {"MSP-FACE_0001_0001": 70, "MSP-FACE_0001_0002": 40, "MSP-FACE_0002_0001": 48}
    rows, tables = [], []
    for i, (segment, count) in enumerate(frames.items()):
        seconds = count / 30 - (0.05 if i == 2 else 0)
        path = tmp_path / f"{segment}.wav"
        sf.write(path, tone(i, seconds, rng), RATE, subtype="PCM_16")
        rows.append({"utterance": segment, "path": str(path)})
        tables.append(segment_windows(segment, f"Speaker_{i}", np.ones(count, dtype=bool), 16, 30.0))
    return pd.DataFrame(rows), pd.concat(tables, ignore_index=True)


def test_window_probabilities_match_the_window_table(unlabeled, narrow_base, tmp_path):
    manifest, windows = unlabeled
    model = teacher(narrow_base)
    table = window_softmaxes(
        model, manifest, windows, 3, device="cpu", classes=CLASSES, out=tmp_path / "speech.parquet"
    )
    assert list(table.columns) == ["segment", "window", "start_s", "end_s", "p_low", "p_middle", "p_high", "p_max"]
    pd.testing.assert_frame_equal(
        table[["segment", "window", "start_s", "end_s"]], windows[["segment", "window", "start_s", "end_s"]]
    )
    probabilities = table[["p_low", "p_middle", "p_high"]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(table["p_max"], probabilities.max(axis=1))
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "speech.parquet"), table)
    one_at_a_time = window_softmaxes(model, manifest, windows, 1, device="cpu", classes=CLASSES)
    np.testing.assert_allclose(one_at_a_time[["p_low", "p_middle", "p_high"]], probabilities, atol=1e-5)


def test_incremental_scoring_scores_only_new_windows(unlabeled, narrow_base, tmp_path):
    manifest, windows = unlabeled
    counting = CountingModel(teacher(narrow_base))
    out = tmp_path / "speech.parquet"
    first = windows[windows["segment"] != "MSP-FACE_0001_0002"]
    earlier = window_softmaxes(counting, manifest, first, 4, classes=CLASSES, out=out)
    assert counting.windows == len(first)
    counting.windows = 0
    table = window_softmaxes(counting, manifest, windows, 4, classes=CLASSES, out=out)
    assert counting.windows == (windows["segment"] == "MSP-FACE_0001_0002").sum()
    assert list(zip(table["segment"], table["window"])) == list(zip(windows["segment"], windows["window"]))
    reused = table.merge(earlier, on=["segment", "window"], suffixes=("", "_earlier"))
    np.testing.assert_array_equal(reused["p_low"], reused["p_low_earlier"])
    fresh = tmp_path / "fresh.parquet"
    window_softmaxes(counting, manifest, windows, 4, classes=CLASSES, out=fresh)
    assert fresh.read_bytes() == out.read_bytes()  # scored in two runs, the bytes of one
    counting.windows = 0
    again = window_softmaxes(counting, manifest, windows, 4, classes=CLASSES, out=out)
    assert counting.windows == 0
    pd.testing.assert_frame_equal(again, table)
    another_teacher = CountingModel(teacher(narrow_base, seed=9))
    window_softmaxes(another_teacher, manifest, windows, 4, classes=CLASSES, out=out)
    assert another_teacher.windows == len(windows)  # earlier scores are only reused from the same teacher


def speakers_table(n_per_gender: int) -> pd.DataFrame:
    rows = []
    for gender in ("female", "male"):
        for s in range(n_per_gender):
            speaker = f"{gender[0]}{s:02d}"
            rows += [
                {"utterance": f"{speaker}_{u}", "speaker": speaker, "gender": gender, "label": u % 3} for u in range(3)
            ]
    return pd.DataFrame(rows)


def test_teacher_split_is_by_speaker_and_never_uses_test_speakers():
    utterances = speakers_table(10)
    folds = speaker_folds(utterances, n_folds=5, seed=0)
    fold_train = fold_utterances(utterances, folds, fold=1, role="train")
    teacher_train, selection = teacher_split(fold_train, fraction=0.8, seed=3, folds=folds, fold=1)
    train_speakers, selection_speakers = set(teacher_train["speaker"]), set(selection["speaker"])
    assert not train_speakers & selection_speakers
    assert train_speakers | selection_speakers == set(fold_train["speaker"])
    assert len(teacher_train) + len(selection) == len(fold_train)
    assert len(selection_speakers) == round(0.2 * fold_train["speaker"].nunique())
    assert set(selection["gender"]) == {"female", "male"}
    tested = set(folds.loc[(folds["fold"] == 1) & (folds["role"] == "test"), "speaker"])
    assert not (train_speakers | selection_speakers) & tested
    again, _ = teacher_split(fold_train, 0.8, 3)
    pd.testing.assert_frame_equal(again, teacher_train)
    with pytest.raises(ValueError, match="test speakers"):
        teacher_split(utterances, 0.8, 0, folds=folds, fold=1)
    with pytest.raises(ValueError, match="cannot be split"):
        teacher_split(utterances[utterances["speaker"] == "f00"], 0.8, 0)


def test_a_loaded_teacher_has_one_fingerprint_whatever_the_global_generator(trained, small_base, tmp_path):
    """Earlier window scores are reused only from the same teacher: its weights fingerprint must not change from one
    load (one run of a stage) to the next."""
    _, result = trained
    save_speech_teacher(tmp_path / "teacher", result.model, CLASSES)
    fingerprints = set()
    for seed in (1, 2):
        torch.manual_seed(seed)
        fingerprints.add(teacher_fingerprint(load_speech_teacher(tmp_path / "teacher", small_base)[0]))
    assert len(fingerprints) == 1
