"""Face crops for the video teacher: the speaker's face in every frame of a segment, aligned, 224 x 224 RGB.

Each segment video ``<segment>.mp4`` becomes one clip ``<out_dir>/<segment>.mp4`` with exactly as
many frames as the segment, at its frame rate: H.264 (CRF 18, yuv420p), 224 x 224, read back with
:func:`read_face_clip`.  The clip's ``comment`` tag holds which frames show a face (read with
:func:`read_face_mask`), so a later stage can leave the others out.  A clip appears only by an
atomic rename of a complete file, so an interrupted run is resumed by running it again.

How a frame's crop is found (:func:`track_faces`):

- Detection.  DeepFace's detector (``opencv`` by default; any backend whose weights are
  present) runs on every ``detect_every``-th frame and on the last frame; the face box and
  the two eye centres of frames in between are interpolated linearly.
- Several faces in a frame: the dominant track is kept, that is the face overlapping most
  (IoU) with the previously kept face, or the largest face when none overlaps (or none was
  kept yet).
- Frames with no face: where the run of frames between two detected faces is at most
  ``max_gap`` frames long, box and eyes are interpolated and those frames count as face
  frames.  Frames of a longer gap, and frames before the first or after the last detected
  face, hold the nearest detected box but count as "no face".
- A segment is dropped (no clip written) when fewer than ``min_face_fraction`` of its frames
  are face frames, or fewer than ``min_face_frames`` (16, the video teacher's clip length);
  an unreadable video is dropped too.  Every dropped segment is listed with its reason in
  the coverage report.

Alignment (:func:`align_face`): the frame is rotated about the face box's centre so that the
eyes are level, and a square of side ``max(w, h) * (1 + 2 * margin)`` centred on the box is
resized to 224 x 224.  An eye pair that implies a roll beyond ``MAX_ROLL_DEGREES``, or does not
put the person's left eye to the right of their right eye in the image, is a mistake of the eye
detector: the face is then kept upright, as it is when the detector finds no eyes.
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import as_completed
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from deepface import DeepFace
from deepface.modules.exceptions import FaceNotDetected
from tqdm import tqdm

from liser.ffmpeg import last_line, write_video
from liser.files import atomic_path, write_csv, write_json
from liser.logs import UserError
from liser.processes import worker_pool

__all__ = [
    "COVERAGE_CSV",
    "COVERAGE_JSON",
    "FACE_SIZE",
    "MIN_FACE_FRAMES",
    "CropOptions",
    "DetectorUnavailable",
    "Face",
    "FaceTrack",
    "SegmentCoverage",
    "UnreadableVideo",
    "align_face",
    "box_iou",
    "check_detector",
    "choose_face",
    "crop_segment",
    "crop_segments",
    "detect_faces",
    "drop_reason",
    "interpolate_track",
    "read_face_clip",
    "read_face_mask",
    "roll_degrees",
    "track_faces",
]

log = logging.getLogger(__name__)

FACE_SIZE = 224
MIN_FACE_FRAMES = 16  # one clip of the S2D video teacher
MAX_ROLL_DEGREES = 30.0
# Where a level face's eyes sit in its box, as fractions of (w, h): the person's left eye is on
# the viewer's right.  Used when the detector gives no usable eyes, so that every face has eyes.
LEVEL_LEFT_EYE = (0.7, 0.4)
LEVEL_RIGHT_EYE = (0.3, 0.4)
FALLBACK_FPS = 30  # the segments' rate (liser.acquire), if a video does not state its own
COVERAGE_JSON = "coverage.json"
COVERAGE_CSV = "coverage.csv"
COVERAGE_COLUMNS = ["segment", "frames", "face_frames", "kept", "reason"]


class DetectorUnavailable(UserError, RuntimeError):
    """A DeepFace detector backend that cannot run here (unknown, not installed, or no weights)."""


class UnreadableVideo(RuntimeError):
    """A video file from which no frame can be decoded."""


@dataclass(frozen=True)
class Face:
    """One detected face: box (x, y, w, h) in frame pixels and the person's eye centres (None if not found)."""

    x: float
    y: float
    w: float
    h: float
    left_eye: tuple[float, float] | None = None
    right_eye: tuple[float, float] | None = None

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.w, self.h)

    @property
    def area(self) -> float:
        return self.w * self.h


@dataclass(frozen=True)
class FaceTrack:
    """Where the crop of each of a video's T frames is taken from."""

    boxes: np.ndarray  # (T, 4) float: x, y, w, h
    eyes: np.ndarray  # (T, 4) float: left eye x, y, right eye x, y (the person's left and right)
    has_face: np.ndarray  # (T,) bool: detected or interpolated; False where a box is only held
    examined: np.ndarray  # (T,) bool: frames the detector ran on

    @property
    def frames(self) -> int:
        return len(self.has_face)

    @property
    def face_frames(self) -> int:
        return int(self.has_face.sum())


@dataclass(frozen=True)
class CropOptions:
    """Everything that decides a segment's crops (see the module docstring)."""

    detector: str = "opencv"
    detect_every: int = 1
    margin: float = 0.2
    max_gap: int = 15
    min_face_fraction: float = 0.5
    min_face_frames: int = MIN_FACE_FRAMES

    def check(self) -> None:
        """Raise ValueError naming the first option out of range."""
        if self.detect_every < 1:
            raise ValueError(f"detect_every must be at least 1 (got {self.detect_every})")
        if self.max_gap < self.detect_every - 1:
            raise ValueError(
                f"max_gap ({self.max_gap}) must be at least detect_every - 1 ({self.detect_every - 1}), "
                "or the frames between two detections could never be interpolated"
            )
        if self.margin < 0:
            raise ValueError(f"margin must not be negative (got {self.margin})")
        if not 0 <= self.min_face_fraction <= 1:
            raise ValueError(f"min_face_fraction must be in [0, 1] (got {self.min_face_fraction})")
        if self.min_face_frames < 1:
            raise ValueError(f"min_face_frames must be at least 1 (got {self.min_face_frames})")


@dataclass(frozen=True)
class SegmentCoverage:
    """One row of the coverage report."""

    segment: str
    frames: int
    face_frames: int
    kept: bool
    reason: str  # why the segment was dropped; empty when kept
    already_done: bool = False  # its clip existed before this run


def box_iou(first: Sequence[float] | np.ndarray, second: Sequence[float] | np.ndarray) -> np.ndarray | float:
    """Intersection over union of (x, y, w, h) boxes; arrays of shape (..., 4) are compared row by row."""
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    left, top = np.maximum(a[..., 0], b[..., 0]), np.maximum(a[..., 1], b[..., 1])
    right = np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2])
    bottom = np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3])
    overlap = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - overlap
    iou = np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0)
    return float(iou) if iou.ndim == 0 else iou


def choose_face(faces: Sequence[Face], previous: Face | None) -> Face | None:
    """The dominant face among ``faces``: the one overlapping ``previous`` most, else the largest."""
    if not faces:
        return None
    if previous is not None:
        overlaps = [box_iou(face.box, previous.box) for face in faces]
        best = int(np.argmax(overlaps))
        if overlaps[best] > 0:
            return faces[best]
    return max(faces, key=lambda face: face.area)


def roll_degrees(eyes: Sequence[float]) -> float:
    """The head's roll from (left x, left y, right x, right y) eye centres: 0 when the eyes are level."""
    left_x, left_y, right_x, right_y = eyes
    return math.degrees(math.atan2(left_y - right_y, left_x - right_x))


def _face_vector(face: Face) -> np.ndarray:
    """x, y, w, h, left eye x, y, right eye x, y, with level eyes where the detected ones are missing or implausible."""
    if face.left_eye is not None and face.right_eye is not None:
        eyes = (*face.left_eye, *face.right_eye)
        if eyes[0] > eyes[2] and abs(roll_degrees(eyes)) <= MAX_ROLL_DEGREES:
            return np.array([*face.box, *eyes], dtype=float)
    level = (
        face.x + LEVEL_LEFT_EYE[0] * face.w,
        face.y + LEVEL_LEFT_EYE[1] * face.h,
        face.x + LEVEL_RIGHT_EYE[0] * face.w,
        face.y + LEVEL_RIGHT_EYE[1] * face.h,
    )
    return np.array([*face.box, *level], dtype=float)


def interpolate_track(n_frames: int, detections: Mapping[int, Face | None], max_gap: int) -> FaceTrack:
    """Every frame's box and eyes from the faces found on the examined frames (``detections``: frame -> face or None).

    Between two detected faces at most ``max_gap`` frames apart (frames strictly between), box
    and eyes are interpolated linearly and count as face; a longer gap, and the frames before
    the first and after the last face, hold the nearest face's box and count as no face.  With
    no face at all, boxes and eyes are NaN.
    """
    boxes_and_eyes = np.full((n_frames, 8), np.nan)
    has_face = np.zeros(n_frames, dtype=bool)
    examined = np.zeros(n_frames, dtype=bool)
    examined[[index for index in detections if 0 <= index < n_frames]] = True
    found = sorted(index for index, face in detections.items() if face is not None and 0 <= index < n_frames)
    if found:
        vectors = {index: _face_vector(detections[index]) for index in found}
        first, last = found[0], found[-1]
        boxes_and_eyes[:first] = vectors[first]
        boxes_and_eyes[last:] = vectors[last]
        has_face[found] = True
        for start, end in zip(found, found[1:]):
            if end - start - 1 <= max_gap:
                weights = (np.arange(start, end) - start)[:, None] / (end - start)
                boxes_and_eyes[start:end] = (1 - weights) * vectors[start] + weights * vectors[end]
                has_face[start:end] = True
            else:  # nearest face, the earlier one on a tie
                middle = (start + end) // 2
                boxes_and_eyes[start : middle + 1] = vectors[start]
                boxes_and_eyes[middle + 1 : end] = vectors[end]
    return FaceTrack(boxes=boxes_and_eyes[:, :4], eyes=boxes_and_eyes[:, 4:], has_face=has_face, examined=examined)


def detect_faces(frame_bgr: np.ndarray, detector: str = "opencv") -> list[Face]:
    """Every face DeepFace's ``detector`` finds in a BGR frame (empty list if none)."""
    try:
        # align=False: boxes and eyes are the same, and DeepFace's own alignment (which pads
        # the frame to twice its size before detecting) is half the cost; we align ourselves.
        found = DeepFace.extract_faces(
            frame_bgr, detector_backend=detector, enforce_detection=True, align=False, normalize_face=False
        )
    except FaceNotDetected:
        return []
    faces = []
    for item in found:
        area = item["facial_area"]
        left, right = area.get("left_eye"), area.get("right_eye")
        faces.append(
            Face(
                x=float(area["x"]),
                y=float(area["y"]),
                w=float(area["w"]),
                h=float(area["h"]),
                left_eye=None if left is None else (float(left[0]), float(left[1])),
                right_eye=None if right is None else (float(right[0]), float(right[1])),
            )
        )
    return [face for face in faces if face.w > 0 and face.h > 0]


def check_detector(detector: str) -> None:
    """Raise :class:`DetectorUnavailable` unless DeepFace can run ``detector`` here (builds it once)."""
    try:
        detect_faces(np.zeros((64, 64, 3), dtype=np.uint8), detector)
    except Exception as error:  # noqa: BLE001 - unknown name, missing package or weights: all say the same
        raise DetectorUnavailable(f"face detector backend {detector!r} is unavailable: {error}") from error


def _open_video(path: Path) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        reason = "file not found" if not path.is_file() else "not a video OpenCV can open"
        raise UnreadableVideo(f"unreadable video: {reason}")
    return capture


def _frames(path: Path) -> Iterator[np.ndarray]:
    """The video's frames, BGR, one at a time (a whole segment would not fit in memory at 720p)."""
    capture = _open_video(path)
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield frame
    finally:
        capture.release()


def _frame_rate(path: Path) -> Fraction:
    capture = _open_video(path)
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    if not (math.isfinite(fps) and fps > 0):
        return Fraction(FALLBACK_FPS)
    return Fraction(fps).limit_denominator(1001)


def track_faces(video: str | Path, detector: str = "opencv", detect_every: int = 1, max_gap: int = 15) -> FaceTrack:
    """The face track of a video: detect on every ``detect_every``-th frame and the last, then interpolate."""
    if detect_every < 1:
        raise ValueError(f"detect_every must be at least 1 (got {detect_every})")
    detections: dict[int, Face | None] = {}
    previous: Face | None = None
    unexamined_last: tuple[int, np.ndarray] | None = None
    n_frames = 0
    for index, frame in enumerate(_frames(Path(video))):
        n_frames = index + 1
        if index % detect_every:
            unexamined_last = (index, frame)
            continue
        unexamined_last = None
        detections[index] = choose_face(detect_faces(frame, detector), previous)
        previous = detections[index] or previous
    if unexamined_last is not None:
        index, frame = unexamined_last
        detections[index] = choose_face(detect_faces(frame, detector), previous)
    if n_frames == 0:
        raise UnreadableVideo("unreadable video: no frame could be decoded")
    return interpolate_track(n_frames, detections, max_gap)


def align_face(
    frame: np.ndarray, box: Sequence[float], eyes: Sequence[float], margin: float = 0.2, size: int = FACE_SIZE
) -> np.ndarray:
    """The square around ``box`` (x, y, w, h) plus ``margin`` of its side on each side, rotated so
    that ``eyes`` (left x, y, right x, y) are level, as a ``size`` x ``size`` image (same channels as ``frame``)."""
    x, y, w, h = box
    center = (x + w / 2, y + h / 2)
    side = max(w, h) * (1 + 2 * margin)
    # Warp at no less than the face's own resolution, then shrink by area averaging: a direct
    # bilinear warp to a much smaller size would alias.
    working = max(size, int(round(side)))
    matrix = cv2.getRotationMatrix2D(center, roll_degrees(eyes), working / side)
    matrix[:, 2] += (working / 2 - center[0], working / 2 - center[1])
    crop = cv2.warpAffine(frame, matrix, (working, working), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    if working != size:
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return crop


def drop_reason(
    frames: int, face_frames: int, min_face_fraction: float = 0.5, min_face_frames: int = MIN_FACE_FRAMES
) -> str:
    """Why a segment with ``face_frames`` face frames out of ``frames`` is dropped; empty if it is kept."""
    if face_frames == 0:
        return f"no face in any of its {frames} frames"
    fraction = face_frames / frames
    if fraction < min_face_fraction:
        return (
            f"face in {face_frames} of {frames} frames ({fraction:.0%}), below min_face_fraction {min_face_fraction:g}"
        )
    if face_frames < min_face_frames:
        return f"face in {face_frames} frames, fewer than {min_face_frames}"
    return ""


def _write_clip(crops: Iterator[np.ndarray], target: Path, fps: Fraction, comment: str) -> int:
    """Encode RGB ``crops`` into the H.264 clip ``target`` (atomically); return how many frames were written."""
    with atomic_path(target) as tmp:
        return write_video(tmp, crops, fps, preset="medium", crf=18, threads=1, comment=comment)


def _mask_text(has_face: np.ndarray) -> str:
    return "".join("1" if face else "0" for face in has_face)


def crop_segment(video: str | Path, target: str | Path, options: CropOptions = CropOptions()) -> SegmentCoverage:
    """Track the face in ``video`` and write its crops to ``target``, unless the segment is dropped.

    Raises :class:`UnreadableVideo` when no frame decodes, and RuntimeError when encoding fails.
    """
    video, target = Path(video), Path(target)
    track = track_faces(video, options.detector, options.detect_every, options.max_gap)
    segment = video.stem
    reason = drop_reason(track.frames, track.face_frames, options.min_face_fraction, options.min_face_frames)
    if reason:
        return SegmentCoverage(segment, track.frames, track.face_frames, kept=False, reason=reason)

    def crops() -> Iterator[np.ndarray]:
        for index, frame in enumerate(_frames(video)):
            if index >= track.frames:
                break
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            yield align_face(rgb, track.boxes[index], track.eyes[index], options.margin)

    for stale in target.parent.glob(f".{target.name}.*.tmp"):  # left by a killed run
        stale.unlink(missing_ok=True)
    comment = json.dumps({"face": _mask_text(track.has_face), **asdict(options)})
    written = _write_clip(crops(), target, _frame_rate(video), comment)
    if written != track.frames:
        target.unlink(missing_ok=True)
        raise UnreadableVideo(f"unreadable video: {track.frames} frames decoded at first, {written} the second time")
    return SegmentCoverage(segment, track.frames, track.face_frames, kept=True, reason="")


def read_face_clip(path: str | Path) -> np.ndarray:
    """A face clip's frames as a (T, 224, 224, 3) uint8 RGB array."""
    frames = [cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) for frame in _frames(Path(path))]
    if not frames:
        raise UnreadableVideo(f"{path}: no frame could be decoded")
    return np.stack(frames)


def _clip_record(path: Path) -> dict[str, Any]:
    """The JSON a face clip carries in its ``comment`` tag: its face mask and the options that made it."""
    command = ["ffprobe", "-v", "error", "-show_entries", "format_tags=comment", "-of", "json", str(path)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise UnreadableVideo(f"{path}: {last_line(result.stderr)}")
    comment = json.loads(result.stdout or "{}").get("format", {}).get("tags", {}).get("comment")
    try:
        record = json.loads(comment)
        record["face"]
    except (TypeError, ValueError, KeyError):
        raise ValueError(f"{path} has no face mask: not written by liser.faces") from None
    return record


def read_face_mask(path: str | Path) -> np.ndarray:
    """Which frames of a face clip show a face, (T,) bool: False where the box was only held."""
    mask = _clip_record(Path(path))["face"]
    return np.frombuffer(mask.encode("ascii"), dtype=np.uint8) == ord("1")


def _failure_reason(error: Exception) -> str:
    return str(error) if isinstance(error, UnreadableVideo) else f"{type(error).__name__}: {error}"


def _crop_or_reuse(video: Path, out_dir: Path, options: CropOptions) -> SegmentCoverage:
    """One segment's row of the report; its clip is made unless it exists already.  Never raises."""
    segment = video.stem
    target = out_dir / f"{segment}.mp4"
    if target.is_file():
        try:
            record = _clip_record(target)
            if {name: record.get(name) for name in asdict(options)} == asdict(options):
                mask = read_face_mask(target)
                return SegmentCoverage(segment, len(mask), int(mask.sum()), kept=True, reason="", already_done=True)
            log.info("%s: redoing its clip, made with other options", segment)
        except (UnreadableVideo, ValueError) as error:
            log.warning("%s: redoing its clip, which cannot be used (%s)", segment, error)
    try:
        return crop_segment(video, target, options)
    except Exception as error:  # noqa: BLE001 - one bad segment must not stop the run
        log.warning("face crops of %s failed: %s", segment, _failure_reason(error))
        return SegmentCoverage(segment, 0, 0, kept=False, reason=_failure_reason(error))


def _one_thread() -> None:
    """Pool worker set-up: one OpenCV thread per worker process, so ``workers`` is the cores used."""
    cv2.setNumThreads(1)


def _report(rows: list[SegmentCoverage], options: CropOptions) -> dict[str, Any]:
    frames = sum(row.frames for row in rows)
    face_frames = sum(row.face_frames for row in rows)
    kept = [row for row in rows if row.kept]
    return {
        **asdict(options),
        "segments_total": len(rows),
        "segments_kept": len(kept),
        "segments_dropped": len(rows) - len(kept),
        "segments_already_done": sum(row.already_done for row in rows),
        "frames_total": frames,
        "frames_with_face": face_frames,
        "face_fraction": face_frames / frames if frames else 0.0,
        "kept_frames_total": sum(row.frames for row in kept),
        "kept_frames_with_face": sum(row.face_frames for row in kept),
        "dropped": [{"segment": row.segment, "reason": row.reason} for row in rows if not row.kept],
    }


def crop_segments(
    segment_videos: Sequence[str | Path],
    out_dir: str | Path,
    detector: str = "opencv",
    detect_every: int = 1,
    margin: float = 0.2,
    max_gap: int = 15,
    min_face_fraction: float = 0.5,
    min_face_frames: int = MIN_FACE_FRAMES,
    workers: int = 1,
) -> dict[str, Any]:
    """Write the face clip ``out_dir/<segment>.mp4`` of every segment video (``<segment>`` is its file stem).

    A segment whose clip exists, made with the same options, is not redone.  ``workers`` > 1
    processes segments in that many worker processes (one OpenCV thread each); ``workers`` = 1 works in this process.  A
    segment that cannot be read or fails is recorded with its reason and the run goes on; an
    unavailable ``detector`` stops it at once with :class:`DetectorUnavailable`.

    Returns the coverage report, also written to ``out_dir/coverage.json`` (segments total,
    kept, dropped with their reasons; frames total and with a face; the options), with one row
    per segment in ``out_dir/coverage.csv`` (segment, frames, face_frames, kept, reason).
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1 (got {workers})")
    options = CropOptions(detector, detect_every, margin, max_gap, min_face_fraction, min_face_frames)
    options.check()
    videos = [Path(video) for video in segment_videos]
    stems = pd.Series([video.stem for video in videos])
    if stems.duplicated().any():
        raise ValueError(f"two segment videos are named {stems[stems.duplicated()].iloc[0]!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    check_detector(detector)

    rows: list[SegmentCoverage] = []
    with tqdm(total=len(videos), desc="face crops", unit="segment") as progress:
        if workers == 1:
            for video in videos:
                rows.append(_crop_or_reuse(video, out_dir, options))
                progress.update(1)
        else:
            with worker_pool(workers, _one_thread) as pool:  # on Ctrl-C: the segments under way finish, no more
                futures = [pool.submit(_crop_or_reuse, video, out_dir, options) for video in videos]
                for future in as_completed(futures):
                    rows.append(future.result())
                    progress.update(1)

    rows.sort(key=lambda row: row.segment)
    table = pd.DataFrame([asdict(row) for row in rows], columns=[*COVERAGE_COLUMNS, "already_done"])
    write_csv(out_dir / COVERAGE_CSV, table[COVERAGE_COLUMNS])
    report = _report(rows, options)
    write_json(out_dir / COVERAGE_JSON, report)
    log.info(
        "face crops: %d of %d segments kept, %.1f%% of %d frames with a face; report in %s",
        report["segments_kept"],
        report["segments_total"],
        100 * report["face_fraction"],
        report["frames_total"],
        out_dir / COVERAGE_JSON,
    )
    return report
