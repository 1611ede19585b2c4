import json
import os

import cv2
import numpy as np
import pandas as pd
import pytest
from skimage import data

import liser.unlabeled.faces as faces_module
from liser.ffmpeg import write_video
from liser.unlabeled.face_crops import FACE_MASKS, NoFaces, crop_segments, face_source, track_path
from liser.unlabeled.faces import (
    CropOptions,
    DetectorUnavailable,
    Face,
    align_face,
    aligned_frames,
    box_iou,
    choose_face,
    detect_faces,
    drop_reason,
    frame_plan,
    interpolate_track,
    read_face_clip,
    read_face_mask,
    read_track,
    roll_degrees,
    track_faces,
)

FRAMES = 45  # 1.5 s at 30 fps
SIDE = 256


@pytest.fixture(autouse=True, scope="module")
def one_opencv_thread():
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    yield
    cv2.setNumThreads(before)


def write_clip(path, frames_rgb, fps=30):
    """An H.264 MP4 like a cut segment, from RGB frames."""
    write_video(path, frames_rgb, fps, preset="ultrafast", crf=18)
    return path


def moving_photo(frames=FRAMES):
    """A 256 x 256 window over the astronaut photograph sliding 2 px right and 0.5 px down per frame."""
    photo = data.astronaut()
    return [photo[t // 2 : t // 2 + SIDE, 70 + 2 * t : 70 + 2 * t + SIDE] for t in range(frames)]


def segments_of(*videos, **columns):
    """The obtained segments' table for these videos: each named after its file."""
    return pd.DataFrame({"segment": [v.stem for v in videos], "video_file": [str(v) for v in videos], **columns})


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("segments")
    coffee = cv2.resize(data.coffee(), (SIDE, SIDE))
    (folder / "broken.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    return {
        "face": write_clip(folder / "face.mp4", moving_photo()),
        "short": write_clip(folder / "short.mp4", moving_photo(10)),
        "coffee": write_clip(folder / "coffee.mp4", [np.roll(coffee, t, axis=1) for t in range(30)]),
        "broken": folder / "broken.mp4",
    }


@pytest.fixture(scope="module")
def cropped(clips, tmp_path_factory):
    """One run over all the clips, shared by the tests that only read its results."""
    out_dir = tmp_path_factory.mktemp("faces")
    table = segments_of(clips["face"], clips["coffee"], clips["broken"], clips["short"], speaker=list("abcd"))
    report = crop_segments(table, out_dir)
    return out_dir, report


def test_crop_holds_the_face(cropped):
    out_dir, report = cropped
    clip = read_face_clip(out_dir / "face.mp4")
    assert clip.shape == (FRAMES, 224, 224, 3) and clip.dtype == np.uint8
    for index in (0, FRAMES // 2, FRAMES - 1):
        found = detect_faces(cv2.cvtColor(clip[index], cv2.COLOR_RGB2BGR))
        assert found, f"no face in crop {index}"
        largest = max(found, key=lambda face: face.area)
        assert largest.area > 0.3 * 224 * 224
        assert abs(largest.x + largest.w / 2 - 112) < 30 and abs(largest.y + largest.h / 2 - 112) < 30
    # RGB, not BGR: skin at the crop's centre is redder than it is blue
    centre = clip[:, 90:134, 90:134].reshape(-1, 3).mean(axis=0)
    assert centre[0] > centre[2] + 20
    mask = read_face_mask(out_dir / "face.mp4")
    assert mask.shape == (FRAMES,) and mask.all()


def test_coverage_report(cropped):
    out_dir, report = cropped
    assert report["segments_total"] == 4 and report["segments_kept"] == 1 and report["segments_dropped"] == 3
    reasons = {row["segment"]: row["reason"] for row in report["dropped"]}
    assert "no face" in reasons["coffee"]
    assert "unreadable video" in reasons["broken"]
    assert "fewer than 16" in reasons["short"]
    assert report["frames_total"] == FRAMES + 30 + 10
    assert report["frames_with_face"] == FRAMES + 10
    assert report["face_fraction"] == pytest.approx((FRAMES + 10) / (FRAMES + 40))
    assert sorted(path.name for path in out_dir.glob("*.mp4")) == ["face.mp4"]
    assert sorted(path.name for path in (out_dir / "tracks").iterdir()) == ["coffee.npz", "face.npz", "short.npz"]
    assert json.loads((out_dir / "coverage.json").read_text()) == report
    table = pd.read_csv(out_dir / "coverage.csv", keep_default_na=False)
    assert list(table.columns) == ["segment", "frames", "face_frames", "kept", "reason"]
    face_row = table.set_index("segment").loc["face"]
    assert face_row["frames"] == FRAMES and bool(face_row["kept"]) and face_row["reason"] == ""
    masks = pd.read_parquet(out_dir / FACE_MASKS)
    assert masks[["segment", "frames", "face", "speaker"]].values.tolist() == [["face", FRAMES, "1" * FRAMES, "a"]]


def test_rerun_skips_done_segments_and_reports_as_an_uninterrupted_run(clips, tmp_path, monkeypatch):
    crop_segments(segments_of(clips["face"]), tmp_path / "resumed")
    clip_time = os.stat(tmp_path / "resumed" / "face.mp4").st_mtime_ns
    calls = []
    real_detect = faces_module.detect_faces
    monkeypatch.setattr(faces_module, "detect_faces", lambda *args, **kw: calls.append(1) or real_detect(*args, **kw))
    both = segments_of(clips["face"], clips["short"])
    resumed = crop_segments(both, tmp_path / "resumed")
    assert os.stat(tmp_path / "resumed" / "face.mp4").st_mtime_ns == clip_time
    assert len(calls) == 1 + 10  # the detector check, then every frame of the new segment only
    whole = crop_segments(both, tmp_path / "whole")
    assert resumed == whole
    for name in ("coverage.json", "coverage.csv", FACE_MASKS, "face.mp4", "tracks/face.npz", "tracks/short.npz"):
        assert (tmp_path / "resumed" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name


def test_changed_options_redo_the_track(clips, tmp_path):
    crop_segments(segments_of(clips["face"]), tmp_path, CropOptions(margin=0.2))
    before = read_track(track_path(tmp_path, "face"))
    crop_segments(segments_of(clips["face"]), tmp_path, CropOptions(margin=0.3))
    assert before.record["options"]["margin"] == 0.2
    assert read_track(track_path(tmp_path, "face")).record["options"]["margin"] == 0.3


def test_a_run_that_keeps_no_face_stops_with_its_reasons(clips, tmp_path):
    with pytest.raises(NoFaces, match="no segment kept a face"):
        crop_segments(segments_of(clips["coffee"], clips["broken"]), tmp_path)
    assert "unreadable video" in (tmp_path / "coverage.csv").read_text()


def test_detecting_every_fifth_frame_follows_the_face(clips):
    every_frame = track_faces(clips["face"], detect_every=1)
    every_fifth = track_faces(clips["face"], detect_every=5)
    assert every_frame.examined.all()
    assert np.flatnonzero(every_fifth.examined).tolist() == [0, 5, 10, 15, 20, 25, 30, 35, 40, 44]
    assert every_fifth.has_face.all()
    overlap = box_iou(every_frame.boxes, every_fifth.boxes)
    assert overlap.min() > 0.8 and overlap.mean() > 0.9


def test_unavailable_detector_is_named(clips, tmp_path):
    with pytest.raises(DetectorUnavailable, match="'no-such-detector'"):
        crop_segments(segments_of(clips["face"]), tmp_path, CropOptions(detector="no-such-detector"))


def test_options_are_checked(clips, tmp_path):
    with pytest.raises(ValueError, match="max_gap"):
        crop_segments(segments_of(clips["face"]), tmp_path, CropOptions(detect_every=10, max_gap=5))
    with pytest.raises(ValueError, match="workers"):
        crop_segments(segments_of(clips["face"]), tmp_path, workers=0)
    with pytest.raises(ValueError, match="not a segment id"):
        crop_segments(pd.DataFrame({"segment": ["../x"], "video_file": [str(clips["face"])]}), tmp_path)


def test_box_iou():
    assert box_iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(1 / 3)
    assert box_iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0
    rows = box_iou(np.array([[0, 0, 2, 2], [0, 0, 2, 2]]), np.array([[0, 0, 2, 2], [1, 1, 2, 2]]))
    assert rows.tolist() == [1, 1 / 7]


def test_dominant_face_is_the_one_overlapping_the_previous():
    previous = Face(100, 100, 50, 50)
    small_same_place = Face(105, 102, 40, 40)
    large_elsewhere = Face(300, 50, 120, 120)
    assert choose_face([large_elsewhere, small_same_place], previous) is small_same_place
    assert choose_face([large_elsewhere, small_same_place], None) is large_elsewhere
    # none overlaps the previous face: the largest
    assert choose_face([large_elsewhere, Face(0, 0, 20, 20)], previous) is large_elsewhere
    assert choose_face([], previous) is None


def test_short_gaps_are_interpolated():
    start, end = Face(0, 0, 10, 10, (8, 4), (2, 4)), Face(40, 20, 30, 30, (64, 32), (46, 32))
    track = interpolate_track(6, {0: start, 2: None, 4: end}, max_gap=3)
    assert track.has_face[:5].all() and not track.has_face[5]  # the trailing frame only holds
    assert track.boxes[2].tolist() == [20, 10, 20, 20]
    assert track.eyes[1].tolist() == pytest.approx([22, 11, 13, 11])
    assert track.boxes[5].tolist() == [40, 20, 30, 30]
    assert track.examined.tolist() == [True, False, True, False, True, False]


def test_long_gaps_hold_the_nearest_face_without_counting_it():
    first, second = Face(0, 0, 10, 10), Face(100, 0, 10, 10)
    track = interpolate_track(12, {1: first, 8: second}, max_gap=5)
    assert track.has_face.tolist() == [False, True] + [False] * 6 + [True] + [False] * 3
    assert [box[0] for box in track.boxes] == [0, 0, 0, 0, 0, 100, 100, 100, 100, 100, 100, 100]
    nothing = interpolate_track(3, {0: None}, max_gap=5)
    assert not nothing.has_face.any() and np.isnan(nothing.boxes).all()


def test_implausible_eyes_are_replaced_by_level_ones():
    crossed = Face(0, 0, 100, 100, left_eye=(30, 40), right_eye=(70, 40))
    steep = Face(0, 0, 100, 100, left_eye=(70, 80), right_eye=(30, 20))
    for face in (crossed, steep, Face(0, 0, 100, 100)):
        assert roll_degrees(interpolate_track(1, {0: face}, 0).eyes[0]) == 0


def test_alignment_levels_the_eyes():
    frame = np.zeros((300, 300), dtype=np.uint8)
    right_eye, left_eye = (120.0, 130.0), (180.0, 150.0)  # the person's right eye is on the viewer's left
    for x, y in (right_eye, left_eye):
        cv2.circle(frame, (int(x), int(y)), 4, 255, -1)
    crop = align_face(frame, (100, 100, 100, 100), (*left_eye, *right_eye), margin=0.2)
    assert crop.shape == (224, 224)
    _, labels, stats, centroids = cv2.connectedComponentsWithStats((crop > 127).astype(np.uint8))
    dots = sorted(centroids[1:].tolist())
    assert len(dots) == 2
    assert abs(dots[0][1] - dots[1][1]) < 1.5
    assert 224 * 0.2 < dots[0][0] < 112 < dots[1][0] < 224 * 0.8


def test_drop_reasons():
    assert drop_reason(100, 80) == ""
    assert "below min_face_fraction" in drop_reason(100, 40)
    assert "fewer than 16" in drop_reason(12, 12)
    assert "no face" in drop_reason(30, 0)


# --- frame rates, listed boxes and positions, crops kept or not ----------------------------------------------------


def test_the_frame_on_screen_at_each_output_time():
    assert frame_plan(45, 30, 30).tolist() == list(range(45))
    plan = frame_plan(50, 25, 30)  # 2 s at 25 fps read at 30 fps: 60 frames, every fifth repeated
    assert len(plan) == 60 and plan[:12].tolist() == [0, 0, 1, 2, 3, 4, 5, 5, 6, 7, 8, 9]
    assert plan[-1] == 49 and (np.diff(plan) >= 0).all()
    assert frame_plan(60, 30, 25).tolist()[:6] == [0, 1, 2, 3, 4, 6]  # a faster video skips frames
    assert frame_plan(26, 25, 30, start_s=1.02).tolist()[:4] == [0, 0, 1, 2]  # from the first frame at or after 1.02 s
    assert len(frame_plan(0, 25, 30)) == 0


def numbered_video(path, frames, fps):
    """Frame k is flat grey at 16 + 4k: which frame a crop shows can be read from its brightness."""
    write_video(path, [np.full((120, 160, 3), 16 + 4 * k, np.uint8) for k in range(frames)], fps, crf=0, lossless=True)
    return path


def test_a_25_fps_video_gives_30_fps_faces_and_paper_length_windows(tmp_path):
    video = numbered_video(tmp_path / "id00012_21Uxsk56VDQ_00001.mp4", 50, 25)
    boxes = tmp_path / "00001.txt"
    rows = "".join(f"{245 + k:06d} \t0.25 \t0.20 \t0.50 \t0.60 \n" for k in range(50))
    boxes.write_text(f"Identity  : \tid00012\nReference : \t21Uxsk56VDQ\n\nFRAME \tX \tY \tW \tH \n{rows}")
    table = segments_of(video, boxes=[str(boxes)], speaker=["id00012"])
    options = CropOptions(fps=30, boxes="listed", crf=0)
    report = crop_segments(table, tmp_path / "faces", options)
    assert report["frames_total"] == 60 and report["frames_with_face"] == 60  # 2 s at 30 fps, no detector run
    crops = read_face_clip(tmp_path / "faces" / f"{video.stem}.mp4")
    shown = (crops.reshape(60, -1).mean(axis=1) - 16) / 4
    assert np.abs(shown - frame_plan(50, 25, 30)).max() < 0.3  # output frame i shows video frame floor(i * 25 / 30)
    masks = pd.read_parquet(tmp_path / "faces" / FACE_MASKS)
    assert masks["frames"].tolist() == [60]  # 3 windows of 16 frames, 0.533 s each, as at 30 fps


def test_streamed_faces_are_the_kept_crops_when_those_are_lossless(clips, tmp_path):
    kept = crop_segments(segments_of(clips["face"]), tmp_path / "kept", CropOptions(crf=0))
    streamed = crop_segments(segments_of(clips["face"]), tmp_path / "streamed", CropOptions(crf=0), keep_crops=False)
    assert {k: v for k, v in kept.items() if k != "keep_crops"} == {
        k: v for k, v in streamed.items() if k != "keep_crops"
    }
    assert not (tmp_path / "streamed" / "face.mp4").exists()
    for name in (FACE_MASKS, "coverage.csv"):
        assert (tmp_path / "kept" / name).read_bytes() == (tmp_path / "streamed" / name).read_bytes()
    kind, clip = face_source(tmp_path / "kept", "face")
    assert kind == "clip"
    kind, track = face_source(tmp_path / "streamed", "face")
    assert kind == "track" and track.record["crops"] is None
    assert np.array_equal(aligned_frames(track), read_face_clip(clip))  # the very frames, bit for bit
    assert np.array_equal(aligned_frames(track, clips["face"].read_bytes()), read_face_clip(clip))  # sent as bytes
    # keeping the crops after all makes them; not keeping them again removes them
    crop_segments(segments_of(clips["face"]), tmp_path / "streamed", CropOptions(crf=0))
    assert read_face_clip(tmp_path / "streamed" / "face.mp4").shape == (FRAMES, 224, 224, 3)
    crop_segments(segments_of(clips["face"]), tmp_path / "streamed", CropOptions(crf=0), keep_crops=False)
    assert not (tmp_path / "streamed" / "face.mp4").exists()
    assert read_track(track_path(tmp_path / "streamed", "face")).record["crops"] is None


def test_the_listed_face_position_picks_the_first_face():
    left, right = Face(10, 10, 40, 40), Face(200, 10, 60, 60)
    assert choose_face([left, right], None) is right  # the largest
    assert choose_face([left, right], None, point=(30, 30)) is left  # the one at the listed position
    assert choose_face([left, right], None, point=(100, 30)) is left  # or the nearest
    assert choose_face([left, right], Face(205, 12, 55, 55), point=(30, 30)) is right  # then the track is followed
