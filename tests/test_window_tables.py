"""The window-softmax table: what the teachers write and the students read, in one format."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from liser.window_tables import (
    FORMAT,
    METADATA_KEY,
    Softmaxes,
    SoftmaxWriter,
    TableError,
    earlier_probabilities,
    read_softmaxes,
    read_window_table,
    softmax_batches,
    softmax_frame,
    write_softmaxes,
    write_window_table,
)

CLASSES = ("calm", "angry", "sad")


def windows(segments=("A", "B"), per_segment=2) -> pd.DataFrame:
    rows = [
        {"segment": s, "window": w, "start_s": w * 16 / 30, "end_s": (w + 1) * 16 / 30}
        for s in segments
        for w in range(per_segment)
    ]
    return pd.DataFrame(rows)


def probabilities(n: int, seed: int = 0) -> np.ndarray:
    raw = np.random.default_rng(seed).random((n, len(CLASSES)))
    return (raw / raw.sum(axis=1, keepdims=True)).astype(np.float32)


def test_a_written_table_reads_back_with_its_classes_and_teacher(tmp_path):
    table = softmax_frame(windows(), probabilities(4), CLASSES, face_fraction=np.array([1, 0.5, 0.25, 0]))
    assert list(table.columns) == ["segment", "window", "start_s", "end_s", "p_calm", "p_angry", "p_sad", "p_max"] + [
        "face_fraction"
    ]
    np.testing.assert_array_equal(table["p_max"], probabilities(4).max(axis=1))
    write_softmaxes(tmp_path / "t.parquet", table, CLASSES, "abc")
    read = read_softmaxes(tmp_path / "t.parquet")
    assert read.classes == CLASSES and read.teacher == "abc" and len(read) == 4
    pd.testing.assert_frame_equal(read.frame, table)
    np.testing.assert_array_equal(read.probabilities, probabilities(4))


def test_the_same_table_is_written_to_the_same_bytes(tmp_path):
    table = softmax_frame(windows(), probabilities(4), CLASSES)
    write_softmaxes(tmp_path / "a.parquet", table, CLASSES, "abc")
    write_softmaxes(tmp_path / "b.parquet", table.copy(), CLASSES, "abc")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_a_table_of_another_format_or_none_is_refused_naming_the_file(tmp_path):
    plain = tmp_path / "old.parquet"
    softmax_frame(windows(), probabilities(4), CLASSES).to_parquet(plain)  # no format marker: an older version
    with pytest.raises(TableError, match=r"old\.parquet.*older version.*run its stage again"):
        read_softmaxes(plain)
    table = pa.Table.from_pandas(softmax_frame(windows(), probabilities(4), CLASSES), preserve_index=False)
    future = json.dumps({"format": FORMAT + 1, "classes": list(CLASSES), "teacher": "x"}).encode()
    pq.write_table(table.replace_schema_metadata({METADATA_KEY: future}), tmp_path / "new.parquet")
    with pytest.raises(TableError, match=rf"new\.parquet: window-softmax table format {FORMAT + 1}"):
        read_softmaxes(tmp_path / "new.parquet")
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(TableError, match=r"junk\.parquet: not a readable Parquet file"):
        read_softmaxes(tmp_path / "junk.parquet")
    with pytest.raises(TableError, match="no such window-softmax table"):
        read_softmaxes(tmp_path / "missing.parquet")


def test_columns_must_match_the_classes_and_windows_appear_once(tmp_path):
    table = softmax_frame(windows(), probabilities(4), CLASSES)
    with pytest.raises(ValueError, match="not a window-softmax table"):
        write_softmaxes(tmp_path / "t.parquet", table.drop(columns="p_max"), CLASSES, "abc")
    twice = pd.concat([table, table.iloc[:1]], ignore_index=True)
    with pytest.raises(ValueError, match="a window twice"):
        write_softmaxes(tmp_path / "t.parquet", twice, CLASSES, "abc")
    # a file with a window twice, written some other way, is refused by both readers
    write_softmaxes(tmp_path / "t.parquet", table, CLASSES, "abc")
    arrow = pq.read_table(tmp_path / "t.parquet")
    pq.write_table(pa.concat_tables([arrow, arrow.slice(0, 1)]), tmp_path / "t.parquet")
    with pytest.raises(TableError, match="a window appears twice"):
        read_softmaxes(tmp_path / "t.parquet")
    with pytest.raises(TableError, match="a window twice"):
        list(softmax_batches(tmp_path / "t.parquet")[2])
    with pytest.raises(ValueError, match="distinct"):
        softmax_frame(windows(), probabilities(4), ("a", "a", "b"))


def test_earlier_probabilities_come_only_from_the_same_teacher_and_window(tmp_path):
    out = tmp_path / "t.parquet"
    first = windows(("A",))
    write_softmaxes(out, softmax_frame(first, probabilities(2), CLASSES), CLASSES, "abc")
    now = windows(("A", "B"))
    now.loc[1, "end_s"] += 0.1  # a window whose span changed is scored again
    reused = earlier_probabilities(now, out, CLASSES, "abc")
    np.testing.assert_array_equal(reused[0], probabilities(2)[0])
    assert np.isnan(reused[1:]).all()
    assert np.isnan(earlier_probabilities(now, out, CLASSES, "another")).all()
    assert np.isnan(earlier_probabilities(now, out, ("x", "y", "z"), "abc")).all()
    assert np.isnan(earlier_probabilities(now, tmp_path / "none.parquet", CLASSES, "abc")).all()


def test_the_window_table_round_trips_and_is_checked(tmp_path):
    table = windows().assign(first_frame=0, last_frame=15, speaker="s1", face_fraction=1.0)
    write_window_table(tmp_path / "w.parquet", table)
    read = read_window_table(tmp_path / "w.parquet")
    assert list(read.columns) == [
        "segment",
        "window",
        "first_frame",
        "last_frame",
        "start_s",
        "end_s",
        "speaker",
        "face_fraction",
    ]
    table.drop(columns="speaker").to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(TableError, match=r"bad\.parquet: a window table lacks the columns \['speaker'\]"):
        read_window_table(tmp_path / "bad.parquet")


def test_a_table_is_written_and_read_a_batch_at_a_time_in_window_order(tmp_path):
    table = softmax_frame(windows(("A", "B", "C")), probabilities(6), CLASSES, face_fraction=np.linspace(0, 1, 6))
    with SoftmaxWriter(tmp_path / "t.parquet", CLASSES, "abc", face_fraction=True) as writer:
        writer.write(table.iloc[:3])
        writer.write(table.iloc[3:])
        with pytest.raises(ValueError, match="out of window order"):
            writer.write(table.iloc[:1])
    classes, teacher, batches = softmax_batches(tmp_path / "t.parquet", rows=2)
    parts = list(batches)
    assert (classes, teacher, [len(part) for part in parts]) == (CLASSES, "abc", [2, 1, 2, 1])  # by row group
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), table)
    pd.testing.assert_frame_equal(read_softmaxes(tmp_path / "t.parquet").frame, table)
    shuffled = Softmaxes(table.iloc[::-1], CLASSES, "abc")  # a table in memory is sorted first
    pd.testing.assert_frame_equal(pd.concat(list(softmax_batches(shuffled, rows=5)[2]), ignore_index=True), table)
    write_softmaxes(tmp_path / "any order.parquet", shuffled.frame, CLASSES, "abc")  # kept in its order, and read
    pd.testing.assert_frame_equal(
        read_softmaxes(tmp_path / "any order.parquet").frame, shuffled.frame.reset_index(drop=True)
    )
    streamed = softmax_batches(tmp_path / "any order.parquet", rows=5)[2]  # whole, then in window order
    pd.testing.assert_frame_equal(pd.concat(list(streamed), ignore_index=True), table)
