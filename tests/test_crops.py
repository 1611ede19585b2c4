import numpy as np

from liser.students.crops import pad_to, random_crop, sliding_windows, window_starts


def test_stride_of_a_tenth_of_a_second_in_32_ms_frames():
    starts = window_starts(n_frames=200, window_frames=94, stride_frames=0.1 / 0.032)
    assert list(starts[:5]) == [0, 3, 6, 9, 12]  # 0, 3.125, 6.25, 9.375, 12.5 rounded
    assert starts[-1] == 200 - 94
    assert np.all(np.diff(starts) > 0)


def test_short_signal_gets_one_padded_window():
    logmel = np.ones((64, 40), dtype=np.float32)
    windows = sliding_windows(logmel, 94, 3.125, pad_value=-13.8)
    assert windows.shape == (1, 64, 94)
    assert np.all(windows[0, :, :40] == 1) and np.all(windows[0, :, 40:] == np.float32(-13.8))


def test_exact_length_signal_has_one_window():
    assert list(window_starts(94, 94, 3.125)) == [0]


def test_random_crop_is_a_contiguous_piece():
    logmel = np.arange(300, dtype=np.float32)[None, :].repeat(2, axis=0)
    crop = random_crop(logmel, 94, np.random.default_rng(0), pad_value=0.0)
    assert crop.shape == (2, 94)
    assert np.all(np.diff(crop[0]) == 1)


def test_pad_leaves_long_input_alone():
    logmel = np.zeros((3, 100))
    assert pad_to(logmel, 94, -1.0) is logmel
