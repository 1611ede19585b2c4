import pytest

from liser.corpora.mspface import (
    SEGMENT_COLUMNS,
    VIDEO_COLUMNS,
    InvalidId,
    check_segment_id,
    check_video_id,
    read_lists,
)

from .helpers import REPO

PUBLISHED = REPO / "resources" / "msp-face"


def write_lists(folder, videos, segments, speakers, genders):
    """The four list files, each given as its lines; CRLF endings as in the published lists."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in (
        ("link_videos.txt", videos),
        ("segments_data.txt", segments),
        ("speaker_id_segments.txt", speakers),
        ("speaker_id_gender.txt", genders),
    ):
        (folder / name).write_bytes("\r\n".join(lines).encode("utf-8"))
    return folder


@pytest.fixture
def lists(tmp_path):
    return write_lists(
        tmp_path / "lists",
        videos=[
            "MSP-FACE_0001.mp4\thttps://www.youtube.com/watch?v=aaaaaaaaaaa ",  # trailing space, as published
            "MSP-FACE_0002.mp4\thttps://www.youtube.com/watch?v=bbbbbbbbbbb",
            "MSP-FACE_0002.mp4\thttps://www.youtube.com/watch?v=ccccccccccc",  # line 3: listed again
            "../MSP-FACE_0003.mp4\thttps://www.youtube.com/watch?v=ddddddddddd",  # line 4: a path
            "MSP-FACE_0004.mp4 https://www.youtube.com/watch?v=eeeeeeeeeee",  # line 5: no tab
            "MSP-FACE_0005.mp4\tjavascript:alert(1)",  # line 6: not a URL
            "",
        ],
        segments=[
            "10.977\t20.487\tMSP-FACE_0001_0001.mp4",
            "2.802\t8.041\tMSP-FACE_0001_0002.mp4",
            "0\t4.5\tMSP-FACE_0002_0001.mp4",
            "nan\t3\tMSP-FACE_0002_0002.mp4",  # line 4
            "5\t5\tMSP-FACE_0002_0003.mp4",  # line 5
            "-1\t3\tMSP-FACE_0002_0004.mp4",  # line 6
            "1_0\t12\tMSP-FACE_0002_0005.mp4",  # line 7: Python's float() would take it
            "1\t1e999\tMSP-FACE_0002_0006.mp4",  # line 8
            "1\t2\tMSP-FACE_0001_0001/../../x.mp4",  # line 9
            "1\t2\tMSP-FACE_\u0660\u0661\u0662\u0663_0001.mp4",  # line 10: Arabic-Indic digits
            "1\t2",  # line 11
            "1\t2\tMSP-FACE_0009_0001.mp4",  # line 12: video not listed
            "1\t2\tMSP-FACE_0002_0007.mp4",  # line 13: no speaker
            "1\t2\tMSP-FACE_0002_0008.mp4",  # line 14: speaker without gender
            "3\t4\tMSP-FACE_0001_0002.mp4",  # line 15: listed again
        ],
        speakers=[
            "MSP-FACE_0001_0001.mp4,Speaker_7",
            "MSP-FACE_0001_0002.mp4,Speaker_7",
            "MSP-FACE_0002_0001.mp4,Speaker_12",
            "MSP-FACE_0002_0004.mp4,Speaker_12",
            "MSP-FACE_0009_0001.mp4,Speaker_12",
            "MSP-FACE_0002_0008.mp4,Speaker_99",
            "MSP-FACE_0003_0001.mp4,Speaker_12",  # line 7: segment not in segments_data.txt
            "MSP-FACE_0002_0001.mp4,Speaker_7",  # line 8: a second speaker
            "MSP-FACE_0001_0001.mp4;Speaker_7",  # line 9: no comma
        ],
        genders=["Speaker_7,Male", "Speaker_12,Female", "Speaker_13,Other", "Speaker_7,Female"],
    )


def problems_by_line(table):
    return {(row.file, row.line): row.reason for row in table.problems.itertuples()}


def test_lists_become_videos_and_segments_tables(lists):
    table = read_lists(lists)
    assert list(table.videos.columns) == list(VIDEO_COLUMNS)
    assert list(table.segments.columns) == list(SEGMENT_COLUMNS)
    assert table.videos.values.tolist() == [
        ["MSP-FACE_0001", *["https://www.youtube.com/watch?v=aaaaaaaaaaa"] * 2],  # fetched, and as listed
        ["MSP-FACE_0002", *["https://www.youtube.com/watch?v=bbbbbbbbbbb"] * 2],
    ]
    rows = table.segments.set_index("segment")
    assert list(rows.index) == ["MSP-FACE_0001_0001", "MSP-FACE_0001_0002", "MSP-FACE_0002_0001"]
    first = rows.loc["MSP-FACE_0001_0001"]
    assert (first.video, first.start, first.end, first.speaker, first.gender) == (
        "MSP-FACE_0001",
        10.977,
        20.487,
        "Speaker_7",
        "male",
    )
    assert first.duration == pytest.approx(9.51)
    assert rows.loc["MSP-FACE_0002_0001"].gender == "female"
    assert table.summary() == {
        "videos": 2,
        "segments": 3,
        "hours": pytest.approx((9.51 + 5.239 + 4.5) / 3600),
        "speakers": 2,
        "speakers_female": 1,
        "problems": len(table.problems),
    }


def test_every_unusable_line_is_reported_with_file_line_and_reason(lists):
    why = problems_by_line(read_lists(lists))
    videos, segments = "link_videos.txt", "segments_data.txt"
    speakers, genders = "speaker_id_segments.txt", "speaker_id_gender.txt"
    assert "listed again (first on line 2)" in why[(videos, 3)]
    assert "not a video file name" in why[(videos, 4)]
    assert "expected 2 tab-separated fields, got 1" in why[(videos, 5)]
    assert "not an http(s):// or file:// URL" in why[(videos, 6)]
    assert "not a number" in why[(segments, 4)]
    assert "not after start" in why[(segments, 5)]
    assert "negative" in why[(segments, 6)]
    assert "not a number" in why[(segments, 7)]
    assert "not finite" in why[(segments, 8)]
    assert "not a segment file name" in why[(segments, 9)]
    assert "not a segment file name" in why[(segments, 10)]
    assert "expected 3 tab-separated fields, got 2" in why[(segments, 11)]
    assert "video MSP-FACE_0009 of MSP-FACE_0009_0001 is not in link_videos.txt" in why[(segments, 12)]
    assert "no speaker" in why[(segments, 13)]
    assert "speaker Speaker_99 of MSP-FACE_0002_0008 has no gender" in why[(segments, 14)]
    assert "listed again" in why[(segments, 15)]
    assert "not in segments_data.txt" in why[(speakers, 7)]
    assert "already given to Speaker_12" in why[(speakers, 8)]
    assert "expected 2 comma-separated fields, got 1" in why[(speakers, 9)]
    assert "'Other' is not Male or Female" in why[(genders, 3)]
    assert "already listed as male" in why[(genders, 4)]
    # A segment rejected for its times is not blamed again on its speaker line (line 4).
    assert len(why) == 21


def test_an_id_that_is_a_path_never_reaches_the_tables(lists):
    table = read_lists(lists)
    everything = " ".join(table.videos.video) + " ".join(table.segments.segment) + " ".join(table.segments.video)
    assert "/" not in everything and ".." not in everything


@pytest.mark.parametrize(
    "text",
    [
        "MSP-FACE_0001/..",
        "../MSP-FACE_0001",
        "MSP-FACE_001",
        "MSP-FACE_00011",
        "MSP-FACE_0001\n",
        "msp-face_0001",
        "MSP-FACE_\u0660\u0661\u0662\u0663",
        "MSP-FACE_0001.mp4",
        "",
        None,
    ],
)
def test_video_ids_are_checked_strictly(text):
    with pytest.raises(InvalidId):
        check_video_id(text)


def test_segment_ids_are_checked_strictly():
    assert check_video_id("MSP-FACE_0728") == "MSP-FACE_0728"
    assert check_segment_id("MSP-FACE_0728_0005") == "MSP-FACE_0728_0005"
    for text in ("MSP-FACE_0728", "MSP-FACE_0728_0005/..", "MSP-FACE_0728_0005\\x", "MSP-FACE_0728_0005\n"):
        with pytest.raises(InvalidId):
            check_segment_id(text)


def test_a_missing_list_file_is_named(lists):
    (lists / "speaker_id_gender.txt").unlink()
    with pytest.raises(FileNotFoundError, match="speaker_id_gender.txt"):
        read_lists(lists)


def test_published_lists():
    table = read_lists(PUBLISHED)
    assert len(table.videos) == 728
    assert len(table.segments) == 27_325
    assert table.problems.empty
    assert table.segments["duration"].sum() / 3600 == pytest.approx(70.2, abs=0.1)
    assert table.segments["speaker"].notna().all() and table.segments["speaker"].str.startswith("Speaker_").all()
    assert set(table.segments["gender"]) == {"male", "female"}
    assert table.segments["video"].isin(table.videos["video"]).all()
    first = table.segments.set_index("segment").loc["MSP-FACE_0001_0001"]
    assert (first.start, first.end, first.speaker, first.gender) == (10.977, 20.487, "Speaker_264", "male")
    urls = table.videos.set_index("video")["url"]
    assert urls["MSP-FACE_0081"] == "https://www.youtube.com/watch?v=3pAWfYsjuQQ"  # published with a trailing space
    assert (PUBLISHED / "LICENSE").read_text().startswith("MIT License")


def test_relative_urls_resolve_against_the_lists_folder(tmp_path):
    folder = write_lists(
        tmp_path / "lists",
        videos=["MSP-FACE_0001.mp4\tonline/MSP-FACE_0001.mp4", "MSP-FACE_0002.mp4\t../outside/MSP-FACE_0002.mp4"],
        segments=["0.0\t2.0\tMSP-FACE_0001_0001.mp4"],
        speakers=["MSP-FACE_0001_0001.mp4,Speaker_1"],
        genders=["Speaker_1,Female"],
    )
    lists = read_lists(folder)
    assert list(lists.videos["url"]) == [(folder / "online" / "MSP-FACE_0001.mp4").resolve().as_uri()]
    assert list(lists.videos["listed"]) == ["online/MSP-FACE_0001.mp4"]  # what reports name: the same everywhere
    assert "relative .mp4 path" in lists.problems.loc[lists.problems.line == 2, "reason"].iloc[0]
