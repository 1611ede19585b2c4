"""The unlabeled corpus readers on trees and tables generated in each corpus's own layout (the layouts as their
documentation gives them: ../shared/specs/unlabeled-corpora.md)."""

import math
import os

import pytest

from liser.corpora import avspeech, folder, voxceleb2
from liser.corpora.audiovisual import SEGMENT_COLUMNS, InvalidId, check_id
from liser.unlabeled.corpus import read_unlabeled

from .helpers import section
from .test_mspface import write_lists

CLIP_BYTES = b"\x00\x00\x00\x18ftypmp42 a clip the readers do not decode"


def touch(path, data=CLIP_BYTES):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def problems_of(corpus):
    return {row.file: row.reason for row in corpus.problems.itertuples()}


TRACK = """Identity  : \tid00012
Reference : \t21Uxsk56VDQ
Offset    : \t1
FV Conf   : \t16.647\t(1)

FRAME \tX \tY \tW \tH
000245 \t0.392 \t0.223 \t0.253 \t0.451
000246 \t0.390 \t0.224 \t0.254 \t0.450
000247 \t0.388 \t0.225 \t0.255 \t0.449
"""


@pytest.fixture
def vox(tmp_path):
    root = tmp_path / "VoxCeleb2"
    for clip in ("id00012/21Uxsk56VDQ/00001.mp4", "id00012/21Uxsk56VDQ/00002.mp4", "id00015/0fijmz4vTVU/00001.mp4"):
        touch(root / "dev" / "mp4" / clip)
    touch(root / "dev" / "mp4" / "id00016" / "aaaaaaaaaaa" / "00001.mp4")  # a speaker vox2_meta.csv does not list
    touch(root / "test" / "mp4" / "id00017" / "bbbbbbbbbbb" / "00001.mp4")
    touch(root / "dev" / "mp4" / "id00012" / "21Uxsk56VDQ" / "00003.mp4", b"")  # empty
    touch(root / "dev" / "mp4" / "id00012" / "21Uxsk56VDQ" / "clip.mp4")  # not a clip name
    touch(root / "dev" / "mp4" / "id00012" / "short" / "00001.mp4")  # not a YouTube id
    touch(root / "dev" / "mp4" / "speaker7" / "21Uxsk56VDQ" / "00001.mp4")  # not a speaker id
    outside = touch(tmp_path / "elsewhere" / "secret.mp4")
    os.symlink(outside, root / "dev" / "mp4" / "id00015" / "0fijmz4vTVU" / "00002.mp4")  # leads out of the corpus
    (root / "vox2_meta.csv").write_text(
        "VoxCeleb2 ID ,VGGFace2 ID ,Gender ,Set \nid00012 , n000012 , m , dev\nid00015, n000015, f, dev\n"
        "id00099, n000099, x, dev\n"
    )
    touch(root / "txt" / "id00012" / "21Uxsk56VDQ" / "00001.txt", TRACK.encode())
    return root


def test_voxceleb2_tree_gives_its_clips_speakers_genders_and_face_tracks(vox):
    corpus = voxceleb2.read_corpus(vox, ["dev"])
    assert list(corpus.segments.columns) == list(SEGMENT_COLUMNS) and not corpus.downloads
    segments = corpus.segments.set_index("segment")
    assert list(segments.index) == [
        "id00012_21Uxsk56VDQ_00001",
        "id00012_21Uxsk56VDQ_00002",
        "id00015_0fijmz4vTVU_00001",
        "id00016_aaaaaaaaaaa_00001",
    ]
    assert list(segments["speaker"]) == ["id00012", "id00012", "id00015", "id00016"]
    assert list(segments["gender"]) == ["male", "male", "female", "unknown"]
    assert segments.loc["id00015_0fijmz4vTVU_00001", "source"] == str(vox / "dev/mp4/id00015/0fijmz4vTVU/00001.mp4")
    assert segments["start_s"].eq(0).all() and segments["end_s"].isna().all()  # whole clips
    assert segments.loc["id00012_21Uxsk56VDQ_00001", "boxes"] == str(vox / "txt/id00012/21Uxsk56VDQ/00001.txt")
    assert segments.loc["id00012_21Uxsk56VDQ_00002", "boxes"] == ""
    problems = problems_of(corpus)
    assert problems["dev/mp4/id00012/21Uxsk56VDQ/00003.mp4"] == "empty file"
    assert "not a clip" in problems["dev/mp4/id00012/21Uxsk56VDQ/clip.mp4"]
    assert "not a video folder" in problems["dev/mp4/id00012/short"]
    assert "not a speaker folder" in problems["dev/mp4/speaker7"]
    assert "outside the corpus folder" in problems["dev/mp4/id00015/0fijmz4vTVU/00002.mp4"]
    assert "gender 'x'" in problems["vox2_meta.csv"]
    both = voxceleb2.read_corpus(vox, ["dev", "test"])
    assert "id00017_bbbbbbbbbbb_00001" in set(both.segments["segment"])


def test_voxceleb2_face_track_files_are_read_as_fractions_per_frame(vox, tmp_path):
    boxes = voxceleb2.read_face_boxes(vox / "txt/id00012/21Uxsk56VDQ/00001.txt")
    assert boxes.shape == (3, 4) and boxes[0].tolist() == [0.392, 0.223, 0.253, 0.451]
    bad = touch(tmp_path / "bad.txt", b"FRAME X Y W H\n000001 0.1 0.2 zero 0.4\n")
    with pytest.raises(ValueError, match="bad.txt:2"):
        voxceleb2.read_face_boxes(bad)
    with pytest.raises(FileNotFoundError, match="dev/mp4"):
        voxceleb2.read_corpus(tmp_path / "elsewhere", ["dev"])


def test_avspeech_rows_become_segments_of_videos_to_download(tmp_path):
    table = tmp_path / "avspeech_train.csv"
    table.write_text(
        "AvWWVOgaMlk,90.023267,93.566667,0.624219,0.30625\n"
        "AvWWVOgaMlk,100.0,104.5,0.5,0.5\n"
        "-8ZUdv3NLqk,0.0,3.2,0.3,0.4\n"
        "AvWWVOgaMlk,90.023267,95.0,0.6,0.3\n"  # line 4: the same start again
        "short,1,2,0.5,0.5\n"  # line 5: not a YouTube id
        "Ab3fG5hJk_L,2,1,0.5,0.5\n"  # line 6: ends before it starts
        "Ab3fG5hJk_L,1,2,1.5,0.5\n"  # line 7: face outside the frame
        "Ab3fG5hJk_L,1,2,0.5\n"  # line 8: four fields
        "Ab3fG5hJk_L,nan,2,0.5,0.5\n"  # line 9
    )
    corpus = avspeech.read_corpus(table)
    assert corpus.downloads
    segments = corpus.segments.set_index("segment")
    assert list(segments.index) == ["-8ZUdv3NLqk_00000000", "AvWWVOgaMlk_00090023", "AvWWVOgaMlk_00100000"]
    first = segments.loc["AvWWVOgaMlk_00090023"]
    assert (first["source"], first["start_s"], first["end_s"]) == ("AvWWVOgaMlk", 90.023267, 93.566667)
    assert (first["face_x"], first["face_y"]) == (0.624219, 0.30625)
    assert (first["speaker"], first["gender"]) == ("AvWWVOgaMlk", "unknown")  # each video stands in for a speaker
    watch = "https://www.youtube.com/watch?v="
    assert corpus.videos.values.tolist() == [
        ["-8ZUdv3NLqk", watch + "-8ZUdv3NLqk", watch + "-8ZUdv3NLqk"],
        ["AvWWVOgaMlk", watch + "AvWWVOgaMlk", watch + "AvWWVOgaMlk"],
    ]
    problems = {row.line: row.reason for row in corpus.problems.itertuples()}
    assert "listed again (first on line 1)" in problems[4]
    assert "not a YouTube id" in problems[5]
    assert "not after start" in problems[6]
    assert "face x 1.5 is out of range" in problems[7]
    assert "expected 5" in problems[8]
    assert "not a number" in problems[9]


def test_a_folder_of_videos_with_and_without_a_table(tmp_path):
    root = tmp_path / "videos"
    touch(root / "talks" / "day 1.mp4")
    touch(root / "talks" / "day.2.webm")
    touch(root / "talks__day_1.mp4")  # names the same segment as talks/day 1.mp4
    touch(root / "notes.txt")
    touch(root / "empty.mov", b"")
    corpus = folder.read_corpus(root)
    assert list(corpus.segments["segment"]) == ["talks__day_1", "talks__day_2"]
    assert set(corpus.segments["speaker"]) == {"unknown"}
    problems = problems_of(corpus)
    assert problems["empty.mov"] == "empty file" and "already" in problems["talks__day_1.mp4"]

    table = tmp_path / "table.csv"
    table.write_text(
        "path,speaker,gender,start,end\n"
        "talks/day 1.mp4,ann,f,0,4.5\n"
        "talks/day 1.mp4,bob,m,4.5,9\n"
        "../outside.mp4,ann,f,,\n"  # line 4
        "/etc/passwd,ann,f,,\n"  # line 5
        "talks/missing.mp4,ann,f,,\n"  # line 6
        "talks/day.2.webm,,f,,\n"  # line 7: no speaker
        "talks/day.2.webm,cy,x,,\n"  # line 8
        "talks/day.2.webm,cy,,3,\n"  # line 9: start without an end
        "talks/day.2.webm,cy,,,\n"
    )
    listed = folder.read_corpus(root, table)
    segments = listed.segments.set_index("segment")
    assert list(segments.index) == ["talks__day_1_00000000", "talks__day_1_00004500", "talks__day_2"]
    assert segments.loc["talks__day_1_00004500", ["speaker", "gender", "start_s", "end_s"]].tolist() == [
        "bob",
        "male",
        4.5,
        9.0,
    ]
    assert math.isnan(segments.loc["talks__day_2", "end_s"]) and segments.loc["talks__day_2", "gender"] == "unknown"
    problems = {row.line: row.reason for row in listed.problems.itertuples()}
    assert "leaves" in problems[4] and "absolute path" in problems[5] and "listed file not found" in problems[6]
    assert problems[7] == "no speaker" and "gender 'x'" in problems[8] and "both start and end" in problems[9]


def test_params_choose_the_reader_and_leave_out_excluded_speakers(vox, tmp_path):
    lists = write_lists(
        tmp_path / "lists",
        videos=["MSP-FACE_0001.mp4\tvideos/MSP-FACE_0001.mp4"],
        segments=["0.0\t2.0\tMSP-FACE_0001_0001.mp4", "2.0\t4.0\tMSP-FACE_0001_0002.mp4"],
        speakers=["MSP-FACE_0001_0001.mp4,Speaker_1", "MSP-FACE_0001_0002.mp4,Speaker_2"],
        genders=["Speaker_1,Female", "Speaker_2,Male"],
    )
    msp = read_unlabeled(section("unlabeled", exclude_speakers=["Speaker_2"]), lists)
    assert list(msp.segments["segment"]) == ["MSP-FACE_0001_0001"] and msp.downloads
    assert msp.videos["listed"].tolist() == ["videos/MSP-FACE_0001.mp4"]
    assert "Speaker_2 is in unlabeled.exclude_speakers" in problems_of(msp)["MSP-FACE_0001_0002"]
    vox_corpus = read_unlabeled(section("unlabeled", reader="voxceleb2", root=vox, exclude_speakers=["id00012"]), lists)
    assert set(vox_corpus.segments["speaker"]) == {"id00015", "id00016"}
    with pytest.raises(ValueError, match="root: missing"):
        section("unlabeled", reader="voxceleb2")
    with pytest.raises(ValueError, match="table: the voxceleb2 reader does not read it"):
        section("unlabeled", reader="voxceleb2", root=vox, table=tmp_path / "t.csv")


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "a.b", "x" * 201, "\u0661", "a\n", None])
def test_ids_that_could_be_paths_are_refused(bad):
    with pytest.raises(InvalidId):
        check_id(bad)


def test_ids_of_every_reader_are_safe_names():
    for name in ("MSP-FACE_0001_0001", "id00012_21Uxsk56VDQ_00001", "-8ZUdv3NLqk_00000000", "talks__day_1"):
        assert check_id(name) == name
    assert folder.segment_name("ü n/ï.mp4") == "__n___" == check_id(folder.segment_name("ü n/ï.mp4"))
    assert folder.segment_name("talks/day 1.mp4", 4.5) == "talks__day_1_00004500"


def test_ray_settings_need_cluster_ray():
    assert section("runtime", cluster="ray", ray_address="127.0.0.1:6379").ray_address == "127.0.0.1:6379"
    with pytest.raises(ValueError, match="ray_address: a Ray setting, but cluster is local"):
        section("runtime", ray_address="127.0.0.1:6379")
    with pytest.raises(ValueError, match="shared_root: a Ray setting"):
        section("runtime", shared_root="/mnt/liser")
    with pytest.raises(ValueError):
        section("runtime", cluster="spark")
