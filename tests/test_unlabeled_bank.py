"""The students' unlabeled log-Mels read from their feature store a crop at a time: the same crops as held in
memory, and only the drawn items read, whatever the size of the set."""

import logging

import numpy as np
import pandas as pd
import pytest
import torch

import liser.students.population as population
from liser.features import FeatureStore, RowFile
from liser.files import write_npy, write_parquet
from liser.students.batching import FeatureBank, StreamedBank, StreamedWindowTargets, WindowTargets
from liser.students.data import frame_counts, unlabeled_set
from liser.students.objective import Objective
from liser.students.population import Member, train_population
from liser.window_tables import softmax_frame, write_softmaxes
from tests.student_data import CONFIG, WINDOWING, band_set, train_params

SPEECH = ("negative", "positive")
VIDEO = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
MELS = 64


def stored_set(folder, frames: list[int], values: bool = True, windows: int = 2):
    """A feature store of segments of ``frames`` frames (random log-Mels, or a sparse file of zeros) with both
    teachers' window softmaxes, and the students' unlabeled set of it."""
    names = [f"seg{k:07d}" for k in range(len(frames))]
    total = int(np.sum(frames))
    store = folder / "store"
    if values:
        write_npy(store / "logmel.npy", np.random.default_rng(0).normal(-8, 2, (total, MELS)).astype(np.float32))
    else:  # only the pages read take disk
        store.mkdir(parents=True)
        zeros = np.lib.format.open_memmap(store / "logmel.npy", mode="w+", dtype=np.float32, shape=(total, MELS))
        del zeros
    offsets = np.concatenate([[0], np.cumsum(frames)[:-1]])
    write_parquet(store / "index.parquet", pd.DataFrame({"utterance": names, "offset": offsets, "frames": frames}))
    table = pd.DataFrame(
        {
            "segment": np.repeat(names, windows),
            "window": np.tile(np.arange(windows), len(names)),
            "start_s": np.tile(np.arange(windows) * 0.5, len(names)),
            "end_s": np.tile(np.arange(windows) * 0.5 + 0.5, len(names)),
        }
    )
    rng = np.random.default_rng(1)
    for name, classes in (("speech", SPEECH), ("video", VIDEO)):
        probabilities = rng.dirichlet(np.ones(len(classes)), len(table))
        faces = rng.random(len(table)) if name == "video" else None
        write_softmaxes(folder / f"{name}.parquet", softmax_frame(table, probabilities, classes, faces), classes, name)
    feature_store = FeatureStore(store)
    unlabeled = unlabeled_set(
        feature_store, 0.032, folder / "speech.parquet", folder / "video.parquet", min_face_fraction=0.5
    )
    return feature_store, unlabeled


class CountingRows(RowFile):
    """The store's log-Mel file, counting the reads and the rows read."""

    def __init__(self, rows: RowFile):
        super().__init__(rows.path)
        self.reads, self.rows_read = [], 0

    def rows(self, start: int, stop: int) -> np.ndarray:
        read = super().rows(start, stop)
        self.reads.append(len(read))
        self.rows_read += len(read)
        return read


def test_streamed_crops_are_the_in_memory_ones(tmp_path):
    frames = [30, 94, 95, 200, 7, 160, 94, 130]  # shorter than, as long as, and longer than a crop
    _, unlabeled = stored_set(tmp_path, frames)
    extra = band_set(5, 3).features  # a second source: rows go on after the set's
    streamed = StreamedBank([unlabeled.features, extra])
    in_memory = FeatureBank(list(unlabeled.features) + list(extra))
    np.testing.assert_array_equal(streamed.lengths, in_memory.lengths)
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(in_memory), 40)
    starts = np.array([rng.integers(0, max(1, length - 20)) for length in in_memory.lengths[rows]])  # past the end too
    crop, pad = WINDOWING.window_frames, WINDOWING.pad_value
    got = streamed.crops(torch.from_numpy(rows), torch.from_numpy(starts), crop, pad)
    expected = in_memory.crops(torch.from_numpy(rows), torch.from_numpy(starts), crop, pad)
    assert got.shape == (40, MELS, crop) and got.dtype == torch.float32
    assert torch.equal(got, expected)


def test_the_lengths_come_from_the_index_without_reading_a_frame(tmp_path):
    store, unlabeled = stored_set(tmp_path, [40, 50, 60])
    store.data = counting = CountingRows(store.data)
    np.testing.assert_array_equal(frame_counts(unlabeled.features), [40, 50, 60])
    assert len(StreamedBank([unlabeled.features])) == 3
    assert counting.reads == []


def test_training_reads_only_the_drawn_items_of_a_large_set(tmp_path, monkeypatch, caplog):
    """Ten thousand segments (a sparse store); two members of one fold share the set; three batches each: the bank
    holds one row per segment, and exactly the drawn unlabeled crops are read, each at most a crop long."""
    frames = np.random.default_rng(2).integers(102, 352, 10_000).tolist()
    store, unlabeled = stored_set(tmp_path, frames, values=False)
    size = sum(frames) * MELS * 4
    monkeypatch.setattr(population, "UNLABELED_IN_MEMORY_BYTES", size - 1)  # just over the limit: streamed
    banks = []

    class Recorded(StreamedBank):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            banks.append(self)

    monkeypatch.setattr(population, "StreamedBank", Recorded)
    targets = []
    real_window_targets = population.window_targets

    def recorded_targets(*args, **kwargs):
        made = real_window_targets(*args, **kwargs)
        targets.extend(made.values())
        return made

    monkeypatch.setattr(population, "window_targets", recorded_targets)
    store.data = counting = CountingRows(store.data)
    train, validation = band_set(6, 1), band_set(4, 2)
    members = [
        Member(f"lambda {lam}", train, validation, Objective(lam, lam), unlabeled, seed=0, batches_per_epoch=3)
        for lam in (0.5, 5.0)
    ]
    caplog.set_level(logging.INFO, logger="liser.students.population")
    results = train_population(members, CONFIG, train_params(epochs=1, batch_size=8), WINDOWING)
    assert [r.steps for r in results] == [3, 3]
    assert len(banks) == 1 and len(banks[0]) == len(frames)  # the shared set once
    assert "a crop at a time" in caplog.text
    assert all(isinstance(t, StreamedWindowTargets) for t in targets if t is not None)  # the targets stream too
    drawn = 2 * 3 * 8  # members x batches x items: each member's 6 labeled items at most among them
    assert drawn - 2 * 6 <= len(counting.reads) <= drawn
    assert max(counting.reads) <= WINDOWING.window_frames
    assert counting.rows_read <= drawn * WINDOWING.window_frames < sum(frames) / 100


@pytest.mark.parametrize("over", [False, True])
def test_the_bank_streams_beyond_the_limit(tmp_path, monkeypatch, caplog, over):
    frames = [120, 140, 100]
    _, unlabeled = stored_set(tmp_path, frames)
    size = sum(frames) * MELS * 4
    monkeypatch.setattr(population, "UNLABELED_IN_MEMORY_BYTES", size - 1 if over else size)
    caplog.set_level(logging.INFO, logger="liser.students.population")
    member = Member("sp-dstl", band_set(6, 1), None, Objective(lambda_sd=1.0), unlabeled, batches_per_epoch=1)
    train_population([member], CONFIG, train_params(epochs=1), WINDOWING)
    assert ("a crop at a time" if over else "held in one tensor") in caplog.text


class CountingItems:
    """A sequence of per-segment arrays, counting which segments are read."""

    def __init__(self, items):
        self.items, self.read = items, []
        self.offsets = items.offsets  # the set's: lengths without a read

    def __len__(self):
        return len(self.items)

    def __getitem__(self, item):
        self.read.append(item)
        return self.items[item]


def test_streamed_window_targets_are_the_in_memory_ones_and_read_only_the_drawn_segments(tmp_path):
    frames = [120, 300, 95, 200, 160]
    _, unlabeled = stored_set(tmp_path, frames, windows=3)
    for teacher in ("speech", "video"):
        table, valid = getattr(unlabeled, teacher), unlabeled.video_valid if teacher == "video" else None
        in_memory = WindowTargets(table, unlabeled.window_midpoints, "cpu", valid)
        counted = CountingItems(table)
        streamed = StreamedWindowTargets(counted, unlabeled.window_midpoints, "cpu", valid)
        assert counted.read == []
        rng = np.random.default_rng(3)
        rows = torch.from_numpy(rng.integers(0, len(frames), 12))
        starts = torch.from_numpy(rng.integers(0, 100, 12))
        got, expected = streamed.targets(rows, starts, 94), in_memory.targets(rows, starts, 94)
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
        assert sorted(counted.read) == sorted(rows.tolist())
