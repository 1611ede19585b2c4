import numpy as np
import pandas as pd
import pytest

from liser.unlabeled.windows import segment_windows, window_table
from liser.window_tables import WINDOW_COLUMNS


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


def test_segments_without_a_clip_are_left_out(tmp_path):
    with pytest.raises(RuntimeError, match="no face clip"):
        window_table(pd.DataFrame({"segment": ["MSP-FACE_0001_0001"], "speaker": ["Speaker_1"]}), tmp_path)
