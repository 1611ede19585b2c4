import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from liser.unlabeled.windows import FACE_MASK_SCHEMA, NoWindows, cut_windows, segment_windows
from liser.window_tables import WINDOW_COLUMNS, read_window_table


def test_non_overlapping_16_frame_windows_drop_the_tail():
    mask = np.ones(50, dtype=bool)
    mask[20:24] = False
    windows = segment_windows("MSP-FACE_0001_0001", "Speaker_3", mask, frames=16, fps=30.0)
    assert list(windows.columns) == list(WINDOW_COLUMNS)
    assert list(windows["first_frame"]) == [0, 16, 32] and list(windows["last_frame"]) == [15, 31, 47]
    assert windows["end_s"].iloc[0] == pytest.approx(16 / 30)
    assert windows["start_s"].iloc[2] == pytest.approx(32 / 30)
    assert list(windows["face_fraction"]) == [1.0, 12 / 16, 1.0]
    assert set(windows["speaker"]) == {"Speaker_3"}


def test_segment_shorter_than_a_window_has_none():
    assert segment_windows("s", "p", np.ones(15, dtype=bool), 16, 30.0).empty


def face_masks(path, rows):
    columns = {name: [row[i] for row in rows] for i, name in enumerate(FACE_MASK_SCHEMA.names)}
    pq.write_table(pa.table(columns, schema=FACE_MASK_SCHEMA), path)
    return path


def test_the_stage_cuts_every_kept_segment_a_batch_at_a_time(tmp_path, monkeypatch):
    import liser.unlabeled.windows as windows_module

    monkeypatch.setattr(windows_module, "BATCH_SEGMENTS", 2)
    masks = ["1" * 50, "1" * 20 + "0" * 4 + "1" * 26, "1" * 10, "0" * 16 + "1" * 17]
    rows = [
        (f"s{k}", len(mask), mask, f"p{k % 2}", "female", len(mask) / 30, f"a/s{k}.wav") for k, mask in enumerate(masks)
    ]
    summary = cut_windows(
        face_masks(tmp_path / "masks.parquet", rows), 16, 30.0, tmp_path / "w.parquet", tmp_path / "m.parquet"
    )
    table = read_window_table(tmp_path / "w.parquet")
    expected = pd.concat(
        [segment_windows(f"s{k}", f"p{k % 2}", np.array([c == "1" for c in m]), 16, 30.0) for k, m in enumerate(masks)],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(table, expected, check_dtype=False)
    manifest = pd.read_parquet(tmp_path / "m.parquet")
    assert list(manifest["utterance"]) == ["s0", "s1", "s3"] and list(manifest["path"]) == [
        "a/s0.wav",
        "a/s1.wav",
        "a/s3.wav",
    ]
    assert summary == {
        "windows": 8,
        "segments": 3,
        "speakers": 2,
        "hours": pytest.approx(8 * 16 / 30 / 3600),
        "mean_face_fraction": pytest.approx(float(expected["face_fraction"].mean())),
    }


def test_no_window_stops_with_a_message(tmp_path):
    rows = [("s0", 10, "1" * 10, "p", "male", 0.3, "s0.wav")]
    with pytest.raises(NoWindows, match="no kept segment has 16 frames"):
        cut_windows(
            face_masks(tmp_path / "masks.parquet", rows), 16, 30.0, tmp_path / "w.parquet", tmp_path / "m.parquet"
        )
    assert not (tmp_path / "w.parquet").exists() and not (tmp_path / "m.parquet").exists()
