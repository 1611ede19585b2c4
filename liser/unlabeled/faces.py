"""Face crops for the video teacher: the speaker's face in every frame of a segment, aligned, 224 x 224 RGB.

A segment is read from its video (a cut segment, or a corpus's own file between ``start_s`` and ``end_s``) at
``fps`` frames per second whatever the video's own rate: output frame i, at time i / fps from the segment's start,
shows the video frame on screen at that time (:func:`frame_plan`).  A 30 fps video at ``fps: 30`` is read frame for
frame; a 25 fps one (VoxCeleb2) repeats every fifth frame, so the teachers' 16-frame windows last the paper's
0.533 s whatever the source.

What one segment gives (:func:`crop_job`, run in a worker; the stage writes the files):

- its **face track** (``tracks/<segment>.npz``, :func:`read_track`): for each of the video's frames the face box,
  the two eye centres and whether a face was found there; for each output frame the video frame it shows; the
  options that made it and where the video is.  A few bytes a frame, always kept;
- its **crops** (``<segment>.mp4``), when kept: H.264 (quality ``crf``, or lossless RGB with ``crf: 0``), 224 x
  224, at ``fps``, with the face mask in its ``comment`` tag (:func:`read_face_mask`).  Without them, the video
  teacher aligns the same frames from the video and the track as it scores (:func:`aligned_frames`).

How a frame's crop is found (:func:`track_faces`):

- Detection.  DeepFace's detector (``opencv`` by default; any backend whose weights are present) runs on every
  ``detect_every``-th frame and on the last frame; the face box and the two eye centres of frames in between are
  interpolated linearly.  With ``boxes: listed``, a corpus's own face boxes (VoxCeleb2's tracks) replace detection
  where it lists them.
- Several faces in a frame: the dominant track is kept, that is the face overlapping most (IoU) with the
  previously kept face, or, for the first, the one at the corpus's listed face position (AVSpeech) or else the
  largest.
- Frames with no face: where the run of frames between two detected faces is at most ``max_gap`` frames long, box
  and eyes are interpolated and those frames count as face frames.  Frames of a longer gap, and frames before the
  first or after the last detected face, hold the nearest detected box but count as "no face".
- A segment is dropped (its crops not kept) when fewer than ``min_face_fraction`` of its output frames are face
  frames, or fewer than ``min_face_frames`` (16, the video teacher's clip length); an unreadable video is dropped
  too, with its reason.

Alignment (:func:`align_face`): the frame is rotated about the face box's centre so that the eyes are level, and a
square of side ``max(w, h) * (1 + 2 * margin)`` centred on the box is resized to 224 x 224.  An eye pair that
implies a roll beyond ``MAX_ROLL_DEGREES``, or does not put the person's left eye to the right of their right eye in
the image, is a mistake of the eye detector: the face is then kept upright, as it is when no eyes are known.
"""

from __future__ import annotations

import io
import json
import logging
import math
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from deepface import DeepFace
from deepface.modules.exceptions import FaceNotDetected

from liser.ffmpeg import last_line, write_video
from liser.logs import UserError
from liser.processes import run_tool

__all__ = [
    "FACE_SIZE",
    "MIN_FACE_FRAMES",
    "CropJob",
    "CropOptions",
    "CropResult",
    "DetectorUnavailable",
    "Face",
    "FaceTrack",
    "SegmentCoverage",
    "StoredTrack",
    "UnreadableVideo",
    "align_face",
    "aligned_frames",
    "box_iou",
    "check_detector",
    "choose_face",
    "crop_job",
    "detect_faces",
    "drop_reason",
    "frame_plan",
    "interpolate_track",
    "listed_track",
    "mask_text",
    "npz_bytes",
    "read_face_clip",
    "read_face_mask",
    "read_track",
    "roll_degrees",
    "track_faces",
    "track_without_crops",
]

log = logging.getLogger(__name__)

FACE_SIZE = 224
MIN_FACE_FRAMES = 16  # one clip of the S2D video teacher
MAX_ROLL_DEGREES = 30.0
# Where a level face's eyes sit in its box, as fractions of (w, h): the person's left eye is on the viewer's right.
# Used when no usable eyes are known, so that every face has eyes.
LEVEL_LEFT_EYE = (0.7, 0.4)
LEVEL_RIGHT_EYE = (0.3, 0.4)
FALLBACK_FPS = 30  # if a video does not state its rate
TRACK_FORMAT = 1


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
    examined: np.ndarray  # (T,) bool: frames the detector ran on (or the corpus listed a box for)

    @property
    def frames(self) -> int:
        return len(self.has_face)

    @property
    def face_frames(self) -> int:
        return int(self.has_face.sum())


@dataclass(frozen=True)
class CropOptions:
    """Everything that decides a segment's track and crops (see the module docstring)."""

    detector: str = "opencv"
    detect_every: int = 1
    margin: float = 0.2
    max_gap: int = 15
    min_face_fraction: float = 0.5
    min_face_frames: int = MIN_FACE_FRAMES
    fps: float = 30.0
    boxes: Literal["detect", "listed"] = "detect"
    crf: int = 18

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
        if not self.fps > 0:
            raise ValueError(f"fps must be positive (got {self.fps})")
        if self.boxes not in ("detect", "listed"):
            raise ValueError(f"boxes must be detect or listed (got {self.boxes!r})")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be in [0, 51] (got {self.crf})")

    def track_settings(self) -> dict[str, Any]:
        """The options a track depends on (the crops' quality does not change it)."""
        return {name: value for name, value in asdict(self).items() if name != "crf"}


@dataclass(frozen=True)
class SegmentCoverage:
    """One row of the coverage report: the segment's output frames, those with a face, whether it is kept."""

    segment: str
    frames: int
    face_frames: int
    kept: bool
    reason: str  # why the segment was dropped; empty when kept


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


def choose_face(faces: Sequence[Face], previous: Face | None, point: tuple[float, float] | None = None) -> Face | None:
    """The dominant face among ``faces``: the one overlapping ``previous`` most; else, with a listed ``point``
    (x, y pixels), the one whose box holds it (nearest centre first), or the nearest; else the largest."""
    if not faces:
        return None
    if previous is not None:
        overlaps = [box_iou(face.box, previous.box) for face in faces]
        best = int(np.argmax(overlaps))
        if overlaps[best] > 0:
            return faces[best]
    if point is not None:
        px, py = point

        def rank(face: Face) -> tuple[bool, float]:
            inside = face.x <= px <= face.x + face.w and face.y <= py <= face.y + face.h
            return (not inside, math.hypot(face.x + face.w / 2 - px, face.y + face.h / 2 - py))

        return min(faces, key=rank)
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


# --- reading a segment's video -----------------------------------------------------------------------------------


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


def _rate(value: float | Fraction) -> Fraction:
    return Fraction(value).limit_denominator(1001)


def _first_frame(start_s: float, source_fps: Fraction) -> int:
    """The first video frame at or after ``start_s``."""
    return max(0, math.ceil(Fraction(start_s).limit_denominator(10**6) * source_fps))


def _frames_in_range(path: Path, source_fps: Fraction, start_s: float, end_s: float | None) -> Iterator[np.ndarray]:
    """The video frames shown from ``start_s`` up to ``end_s`` (the end when None), BGR."""
    first = _first_frame(start_s, source_fps)
    last = None if end_s is None else math.ceil(Fraction(end_s).limit_denominator(10**6) * source_fps)
    for index, frame in enumerate(_frames(path)):
        if last is not None and index >= last:
            return
        if index >= first:
            yield frame


def frame_plan(
    source_frames: int, source_fps: float | Fraction, fps: float | Fraction, start_s: float = 0.0
) -> np.ndarray:
    """For each output frame at ``fps``, the index (among the ``source_frames`` read from ``start_s``) of the video
    frame on screen at its time.  Output frame i is at ``start_s + i / fps``; there are as many as fit before the
    last read frame ends.  Equal rates and a start on a frame give 0, 1, 2, ...; 25 to 30 fps repeats every fifth.
    """
    source_fps, fps = _rate(source_fps), _rate(fps)
    start = Fraction(start_s).limit_denominator(10**6) * source_fps  # in source frames
    first = _first_frame(start_s, source_fps)
    # frame on screen at output i: floor(start + i * source_fps / fps) - first, computed in integers
    step = source_fps / fps
    denominator = start.denominator * step.denominator
    base = start.numerator * step.denominator
    per_frame = step.numerator * start.denominator
    end = (first + source_frames) * denominator  # output frames while start + i * step < first + source_frames
    count = max(0, -((base - end) // per_frame)) if source_frames else 0
    index = (base + np.arange(count, dtype=np.int64) * per_frame) // denominator - first
    return np.clip(index, 0, max(source_frames - 1, 0)).astype(np.int64)


def track_faces(
    video: str | Path,
    detector: str = "opencv",
    detect_every: int = 1,
    max_gap: int = 15,
    *,
    start_s: float = 0.0,
    end_s: float | None = None,
    face_point: tuple[float, float] | None = None,
) -> FaceTrack:
    """The face track of a video's frames from ``start_s`` to ``end_s``: detect on every ``detect_every``-th frame
    and the last, then interpolate.  ``face_point`` (x, y as fractions of the frame) picks the first face."""
    if detect_every < 1:
        raise ValueError(f"detect_every must be at least 1 (got {detect_every})")
    video = Path(video)
    detections: dict[int, Face | None] = {}
    previous: Face | None = None
    unexamined_last: tuple[int, np.ndarray] | None = None
    n_frames = 0

    def pick(frame: np.ndarray) -> Face | None:
        height, width = frame.shape[:2]
        point = None if face_point is None else (face_point[0] * width, face_point[1] * height)
        return choose_face(detect_faces(frame, detector), previous, point)

    for index, frame in enumerate(_frames_in_range(video, _frame_rate(video), start_s, end_s)):
        n_frames = index + 1
        if index % detect_every:
            unexamined_last = (index, frame)
            continue
        unexamined_last = None
        detections[index] = pick(frame)
        previous = detections[index] or previous
    if unexamined_last is not None:
        index, frame = unexamined_last
        detections[index] = pick(frame)
    if n_frames == 0:
        raise UnreadableVideo("unreadable video: no frame could be decoded")
    return interpolate_track(n_frames, detections, max_gap)


def listed_track(listed_boxes: np.ndarray, n_frames: int, width: int, height: int, max_gap: int) -> FaceTrack:
    """A track from a corpus's own boxes: row j (x, y, w, h as fractions of the frame, NaN where none) is frame j;
    frames past the listed ones hold the last box as no face.  Eyes are level (none are listed)."""
    scale = np.array([width, height, width, height], dtype=float)
    detections: dict[int, Face | None] = {}
    for index, box in enumerate(np.asarray(listed_boxes, dtype=float)[:n_frames]):
        x, y, w, h = box * scale
        detections[index] = Face(x, y, w, h) if np.isfinite(box).all() and w > 0 and h > 0 else None
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


# --- a segment's track file --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredTrack:
    """A segment's track file as read: its video's frames (box, eyes, face found) and the output frames' plan."""

    record: dict[str, Any]  # segment, video, start_s, end_s, source_fps, options, kept, reason
    boxes: np.ndarray  # (video frames, 4)
    eyes: np.ndarray  # (video frames, 4)
    has_face: np.ndarray  # (video frames,) bool
    plan: np.ndarray  # (output frames,) the video frame each output frame shows

    @property
    def segment(self) -> str:
        return self.record["segment"]

    @property
    def mask(self) -> np.ndarray:
        """Which output frames show a face."""
        return self.has_face[self.plan]

    def coverage(self) -> SegmentCoverage:
        mask = self.mask
        return SegmentCoverage(self.segment, len(mask), int(mask.sum()), self.record["kept"], self.record["reason"])


def _stored(track: FaceTrack) -> np.ndarray:
    """(frames, 9) float32: box, eyes, face found; what the track file holds and what the crops are aligned from."""
    face = track.has_face.astype(np.float32)[:, None]
    return np.concatenate([track.boxes, track.eyes, face], axis=1).astype(np.float32)


def _record_array(record: dict[str, Any]) -> np.ndarray:
    return np.frombuffer(json.dumps(record, sort_keys=True).encode(), dtype=np.uint8)


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """``np.savez_compressed`` of ``arrays``, the same bytes on every run (fixed member times)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.save(member, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def track_without_crops(path: str | Path) -> bytes:
    """A track file's bytes, its record saying that no crops are kept."""
    with np.load(path, allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    record = json.loads(arrays["record"].tobytes().decode())
    arrays["record"] = _record_array({**record, "crops": None})
    return npz_bytes(arrays)


def read_track(path: str | Path | bytes) -> StoredTrack:
    """A track file (``tracks/<segment>.npz``, or its bytes); ValueError when it is not one this version writes."""
    path = io.BytesIO(path) if isinstance(path, bytes) else Path(path)
    try:
        with np.load(path, allow_pickle=False) as stored:
            record = json.loads(stored["record"].tobytes().decode())
            values, plan = stored["track"].astype(np.float64), stored["plan"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: not a face track ({error})") from None
    if record.get("format") != TRACK_FORMAT:
        raise ValueError(f"{path}: face track format {record.get('format')}, this version reads {TRACK_FORMAT}")
    return StoredTrack(record, values[:, :4], values[:, 4:8], values[:, 8] > 0.5, plan.astype(np.int64))


# --- one segment's work ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CropJob:
    """One segment for :func:`crop_job`."""

    segment: str
    video: str | bytes  # a path this worker reads, or the file's bytes (sent with the task)
    video_path: str  # where the video is, as the stage records it
    options: CropOptions
    keep_crops: bool = True
    start_s: float = 0.0
    end_s: float | None = None
    listed_boxes: np.ndarray | None = None  # (frames, 4) x, y, w, h as fractions of the frame (boxes: listed)
    face_point: tuple[float, float] | None = None  # the listed face's x, y as fractions of the frame


@dataclass(frozen=True)
class CropResult:
    """What the stage writes for one segment: its coverage row, its track file and its crops (when kept)."""

    coverage: SegmentCoverage
    track: bytes | None = None  # None: the video could not be read
    clip: bytes | None = None
    detections: int = field(default=0, compare=False)  # frames the detector ran on


class _LocalVideo:
    """The job's video as a path: its own, or a private temporary copy of the bytes sent with it."""

    def __init__(self, video: str | bytes):
        self.video, self.folder = video, None

    def __enter__(self) -> Path:
        if isinstance(self.video, str):
            return Path(self.video)
        self.folder = tempfile.TemporaryDirectory(prefix="liser-video-")
        path = Path(self.folder.name) / "video.mp4"
        path.write_bytes(self.video)
        return path

    def __exit__(self, *exc: object) -> None:
        if self.folder is not None:
            self.folder.cleanup()


def _aligned(frames: Iterator[np.ndarray], values: np.ndarray, plan: np.ndarray, margin: float) -> Iterator[np.ndarray]:
    """RGB crops of the output frames: video frame ``plan[i]`` aligned with its stored box and eyes (``values``,
    float32 as stored), each video frame aligned once however many output frames show it."""
    needed = iter(plan)
    wanted = next(needed, None)
    for index, frame in enumerate(frames):
        if wanted is None:
            return
        if index < wanted:
            continue
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        crop = align_face(rgb, values[index, :4].astype(np.float64), values[index, 4:8].astype(np.float64), margin)
        while wanted == index:
            yield crop
            wanted = next(needed, None)


def crop_job(job: CropJob) -> CropResult:
    """Track the face of one segment and, when it is kept and crops are kept, encode its crops; never raises for a
    bad video (its reason is in the coverage row)."""
    try:
        with _LocalVideo(job.video) as video:
            return _crop(job, video)
    except Exception as error:  # noqa: BLE001 - one bad segment must not stop the run
        reason = str(error) if isinstance(error, UnreadableVideo) else f"{type(error).__name__}: {error}"
        log.warning("face crops of %s failed: %s", job.segment, reason)
        return CropResult(SegmentCoverage(job.segment, 0, 0, kept=False, reason=reason))


def _crop(job: CropJob, video: Path) -> CropResult:
    options = job.options
    source_fps = _frame_rate(video)
    if options.boxes == "listed" and job.listed_boxes is not None:
        n_frames, shape = 0, None
        for frame in _frames_in_range(video, source_fps, job.start_s, job.end_s):
            n_frames, shape = n_frames + 1, shape or frame.shape
        if n_frames == 0:
            raise UnreadableVideo("unreadable video: no frame could be decoded")
        track = listed_track(job.listed_boxes, n_frames, shape[1], shape[0], options.max_gap)
    else:
        track = track_faces(
            video,
            options.detector,
            options.detect_every,
            options.max_gap,
            start_s=job.start_s,
            end_s=job.end_s,
            face_point=job.face_point,
        )
    plan = frame_plan(track.frames, source_fps, options.fps, job.start_s)
    mask = track.has_face[plan]
    reason = drop_reason(len(mask), int(mask.sum()), options.min_face_fraction, options.min_face_frames)
    coverage = SegmentCoverage(job.segment, len(mask), int(mask.sum()), kept=not reason, reason=reason)
    values = _stored(track)
    clip = None
    if coverage.kept and job.keep_crops:
        frames = _frames_in_range(video, source_fps, job.start_s, job.end_s)
        clip = _encode(_aligned(frames, values, plan, options.margin), len(plan), mask, options)
    record = {
        "format": TRACK_FORMAT,
        "segment": job.segment,
        "video": job.video_path,
        "start_s": job.start_s,
        "end_s": job.end_s,
        "source_fps": str(source_fps),
        "options": options.track_settings(),
        "kept": coverage.kept,
        "reason": reason,
        "crops": None if clip is None else options.crf,  # the quality of the kept crops
    }
    track_file = npz_bytes({"track": values, "plan": plan.astype(np.int32), "record": _record_array(record)})
    return CropResult(coverage, track_file, clip, detections=int(track.examined.sum()))


def mask_text(mask: np.ndarray) -> str:
    """A face mask as text: ``1`` for a frame with a face, ``0`` for one without."""
    return (np.asarray(mask, dtype=np.uint8) + ord("0")).tobytes().decode("ascii")


def _encode(crops: Iterator[np.ndarray], frames: int, mask: np.ndarray, options: CropOptions) -> bytes:
    """The crops as an MP4 (H.264, one encoder thread), with the face mask and options in its comment tag."""
    comment = json.dumps({"face": mask_text(mask), **options.track_settings(), "crf": options.crf})
    with tempfile.TemporaryDirectory(prefix="liser-crops-") as folder:
        path = Path(folder) / "crops.mp4"
        written = write_video(
            path,
            crops,
            _rate(options.fps),
            preset="medium",
            crf=options.crf,
            lossless=options.crf == 0,
            threads=1,
            comment=comment,
        )
        if written != frames:
            raise UnreadableVideo(f"unreadable video: {frames} frames planned, {written} decoded the second time")
        return path.read_bytes()


# --- the aligned faces, read back --------------------------------------------------------------------------------


def aligned_frames(track: StoredTrack, video: str | Path | bytes | None = None) -> np.ndarray:
    """(output frames, 224, 224, 3) uint8 RGB: the crops of a segment aligned from its video (``video``: a path or
    the file's bytes; default the path its track records) with its stored track, the very frames its kept crops
    hold when they are lossless."""
    source = track.record["video"] if video is None else video
    with _LocalVideo(str(source) if isinstance(source, Path) else source) as path:
        source_fps = Fraction(track.record["source_fps"])
        frames = _frames_in_range(path, source_fps, track.record["start_s"], track.record["end_s"])
        values = np.concatenate([track.boxes, track.eyes, track.has_face[:, None]], axis=1).astype(np.float32)
        crops = list(_aligned(frames, values, track.plan, track.record["options"]["margin"]))
    if len(crops) != len(track.plan):
        raise UnreadableVideo(f"{track.segment}: {len(track.plan)} frames planned, {len(crops)} decoded")
    return np.stack(crops)


def read_face_clip(path: str | Path | bytes) -> np.ndarray:
    """A face clip's frames (the file, or its bytes) as a (T, 224, 224, 3) uint8 RGB array."""
    with _LocalVideo(str(path) if isinstance(path, Path) else path) as local:
        frames = [cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) for frame in _frames(local)]
    if not frames:
        raise UnreadableVideo(f"{'a face clip' if isinstance(path, bytes) else path}: no frame could be decoded")
    return np.stack(frames)


def read_face_mask(path: str | Path) -> np.ndarray:
    """Which frames of a face clip show a face, (T,) bool: False where the box was only held."""
    path = Path(path)
    command = ["ffprobe", "-v", "error", "-show_entries", "format_tags=comment", "-of", "json", str(path)]
    result = run_tool(command)
    if result.returncode != 0:
        raise UnreadableVideo(f"{path}: {last_line(result.stderr)}")
    comment = json.loads(result.stdout or "{}").get("format", {}).get("tags", {}).get("comment")
    try:
        mask = json.loads(comment)["face"]
    except (TypeError, ValueError, KeyError):
        raise ValueError(f"{path} has no face mask: not written by liser.unlabeled.faces") from None
    return np.frombuffer(mask.encode("ascii"), dtype=np.uint8) == ord("1")
