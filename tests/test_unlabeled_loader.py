"""The students' unlabeled set built a part at a time from files: the same set as from tables read whole."""

import numpy as np
import pandas as pd
import pytest

from liser.features import FeatureStore
from liser.files import write_npy, write_parquet
from liser.students.data import unlabeled_set
from liser.window_tables import Softmaxes, softmax_frame, write_softmaxes

SPEECH = ("angry", "happy", "neutral")
VIDEO = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")


def windows_of(segments: dict[str, int]) -> pd.DataFrame:
    rows = [
        {"segment": s, "window": w, "start_s": w * 16 / 30, "end_s": (w + 1) * 16 / 30}
        for s, count in segments.items()
        for w in range(count)
    ]
    return pd.DataFrame(rows)


def softmax(n: int, k: int, seed: int) -> np.ndarray:
    raw = np.random.default_rng(seed).random((n, k))
    return raw / raw.sum(axis=1, keepdims=True)


@pytest.fixture
def inputs(tmp_path):
    counts = {f"seg{k:03d}": 1 + k % 4 for k in range(23)}
    speech_windows = windows_of(counts)
    video_windows = windows_of({s: c for s, c in counts.items() if s != "seg005"})  # the video teacher left one out
    video_windows = video_windows[~((video_windows.segment == "seg007") & (video_windows.window == 1))]
    speech = softmax_frame(speech_windows, softmax(len(speech_windows), 3, 0), SPEECH)
    video = softmax_frame(
        video_windows, softmax(len(video_windows), 7, 1), VIDEO, np.linspace(0, 1, len(video_windows))
    )
    write_softmaxes(tmp_path / "speech.parquet", speech, SPEECH, "s")
    write_softmaxes(tmp_path / "video.parquet", video, VIDEO, "v")
    with_features = [s for s in counts if s != "seg011"]  # one segment without features
    frames = [40 + 3 * k for k in range(len(with_features))]
    write_npy(tmp_path / "store" / "logmel.npy", np.random.default_rng(2).random((sum(frames), 4)).astype(np.float32))
    offsets = np.concatenate([[0], np.cumsum(frames)[:-1]])
    write_parquet(
        tmp_path / "store" / "index.parquet",
        pd.DataFrame({"utterance": with_features, "offset": offsets, "frames": frames}),
    )
    return tmp_path, Softmaxes(speech, SPEECH, "s"), Softmaxes(video, VIDEO, "v")


def as_lists(unlabeled):
    return (
        list(unlabeled.segments),
        [f.copy() for f in unlabeled.features],
        [m.copy() for m in unlabeled.window_midpoints],
        [p.copy() for p in unlabeled.speech],
        [p.copy() for p in unlabeled.video],
        [v.copy() for v in unlabeled.video_valid],
    )


def test_a_set_read_a_few_rows_at_a_time_from_files_equals_one_from_whole_tables(inputs):
    folder, speech, video = inputs
    store = FeatureStore(folder / "store")
    whole = as_lists(unlabeled_set(store, 0.032, speech, video, min_face_fraction=0.5))
    streamed = unlabeled_set(
        store, 0.032, folder / "speech.parquet", folder / "video.parquet", min_face_fraction=0.5, rows=3
    )
    for expected, got in zip(whole, as_lists(streamed)):
        assert len(expected) == len(got)
        for a, b in zip(expected, got):
            np.testing.assert_array_equal(a, b)
    segments = whole[0]
    assert "seg005" not in segments and "seg011" not in segments and len(segments) == 21
    seg007 = segments.index("seg007")
    assert len(whole[2][seg007]) == 3  # its window 1 was scored by one teacher only
    np.testing.assert_array_equal(streamed.features[0], store["seg000"])
    assert streamed.segments[-1] == segments[-1]
    with pytest.raises(IndexError):
        streamed.features[len(segments)]
