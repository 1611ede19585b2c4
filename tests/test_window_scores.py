"""Both teachers take their window scores in through ``window_scores.fill_in``: it saves often enough that a stopped
run loses little, and rarely enough that a long run does not spend its time rewriting its table."""

import numpy as np

from liser.teachers.window_scores import fill_in


def scored_with_saves(total: int, scored_before: int, batch: int, every: int) -> tuple[np.ndarray, list[int]]:
    """Score ``total`` windows, ``scored_before`` of them taken from an earlier table; the windows each save wrote."""
    probabilities = np.full((total, 2), np.nan)
    probabilities[:scored_before] = 0.5
    todo = np.arange(scored_before, total)
    batches = ((todo[i : i + batch], np.full((len(todo[i : i + batch]), 2), 0.5)) for i in range(0, len(todo), batch))
    writes: list[int] = []
    fill_in(probabilities, batches, lambda done: int(done.sum()), writes.append, every, "windows")
    assert writes[-1] == total  # the whole table, at the end
    return probabilities, writes[:-1]


def test_a_stopped_run_loses_little_and_a_long_run_rewrites_its_table_little():
    windows = 1_000_000
    probabilities, saves = scored_with_saves(windows, 0, batch=16, every=1_000)
    assert not np.isnan(probabilities).any()
    for before, after in zip([0, *saves], [*saves, windows]):  # a stop between two saves loses what lies between
        assert after - before <= max(1_000, before // 10) + 16
    assert sum(saves) <= 12 * windows  # rewriting the table at every 1,000 windows would write 500 times that
    assert len(saves) < 70


def test_windows_of_an_earlier_table_count_as_saved():
    _, saves = scored_with_saves(600_000, 500_000, batch=16, every=1_000)
    assert saves[0] == 550_000  # a tenth of the 500,000 already saved, not 1,000, before the first save
