"""Atomic outputs: what a writer killed outright leaves behind is cleared by the next run."""

from liser.files import remove_leftovers


def test_what_a_killed_writer_left_is_removed_and_a_set_aside_folder_put_back(tmp_path):
    table = tmp_path / "video.parquet"
    table.write_bytes(b"complete")
    (tmp_path / ".video.parquet.a1b2_c3d.tmp").write_bytes(b"half")  # atomic_path's, killed mid-write
    (tmp_path / ".video.parquet.txt").write_bytes(b"not ours")
    folder = tmp_path / "features"
    (tmp_path / ".features.zz99yy88").mkdir()  # atomic_directory's staging, killed while filling it
    (tmp_path / ".features.earlier.q1w2e3r4").mkdir()  # the earlier output set aside, the new one never in place
    (tmp_path / ".features.earlier.q1w2e3r4" / "logmel.npy").write_bytes(b"earlier")
    remove_leftovers(table)
    remove_leftovers(folder)
    assert (folder / "logmel.npy").read_bytes() == b"earlier" and table.read_bytes() == b"complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".video.parquet.txt", "features", "video.parquet"]
