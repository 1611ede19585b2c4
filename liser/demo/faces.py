"""Talking faces for the demo video corpora: a real photograph animated with facial expressions.

The face is scikit-image's astronaut photograph.  An expression is a mix of action units
(after FACS: inner brow raise, brow lower, lip corner pull, jaw drop and so on), each a
smooth displacement field around fixed points of the photograph (brows, eyes, nose, lips,
chin), and the frame is the photograph resampled through their weighted sum with
``cv2.remap``.  On top of the expression the jaw follows the loudness of the speech, the
eyes blink, and the head moves a little.  Speakers differ in framing, mirroring, aspect,
colour, lighting, backdrop tint, sharpness, face proportions, expressiveness and how
much they move.  Frames are BGR uint8 at :data:`FPS` frames per second.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from skimage import data as skimage_data

__all__ = [
    "EMOTIONS",
    "FPS",
    "LANDMARKS",
    "VOICE_EMOTIONS",
    "Expression",
    "Identity",
    "animate_face",
    "animate_sequence",
    "face_landmarks",
    "loudness_envelope",
    "random_identity",
]

FPS = 30
EMOTIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")  # FERV39k's classes
VOICE_EMOTIONS = {emotion: emotion for emotion in EMOTIONS} | {"fear": "fearful", "surprise": "surprised"}
_ALIASES = {voice: face for face, voice in VOICE_EMOTIONS.items()}

# Points of the astronaut photograph (x, y in its 512 x 512 pixels), found by inspecting it.
# "left" and "right" are as seen in the picture.
LANDMARKS: dict[str, tuple[float, float]] = {
    "brow_left_outer": (191, 90),
    "brow_left_mid": (202, 88),
    "brow_left_inner": (213, 91),
    "brow_right_inner": (237, 93),
    "brow_right_mid": (249, 90),
    "brow_right_outer": (260, 91),
    "eye_left": (203, 102),
    "eye_right": (245, 103),
    "cheek_left": (200, 122),
    "cheek_right": (248, 123),
    "nose_bridge": (225, 110),
    "nose_tip": (225, 125),
    "nostril_left": (216, 129),
    "nostril_right": (234, 130),
    "mouth_left": (204, 140),
    "mouth_right": (244, 141),
    "upper_lip": (224, 138),
    "lower_lip": (223, 153),
    "mouth": (224, 146),
    "chin": (222, 178),
}
FACE_CENTRE = (224.0, 120.0)
# The part of the photograph the action units move; outside it every frame equals the photograph.
_ROI = (140, 40, 310, 230)  # x0, y0, x1, y1
_HEAD = ((226, 108), (84, 100))  # centre and half-axes of an ellipse covering hair, face and neck
_SKIN = ((224, 122), (50, 64))  # the same for the face alone
# Where the mouth can open, in region coordinates (x0, y0, x1, y1), and the colour inside it.
_MOUTH_BOX = (190 - _ROI[0], 140 - _ROI[1], 258 - _ROI[0], 190 - _ROI[1])
_CAVITY_BGR = np.array([30, 25, 60], np.float32)


@dataclass(frozen=True)
class _Handle:
    """A Gaussian-weighted displacement around one point: a shift plus an expansion (> 0) or compression."""

    point: str | tuple[float, float]
    radius: tuple[float, float]
    shift: tuple[float, float] = (0.0, 0.0)
    expand: tuple[float, float] = (0.0, 0.0)


def _pair(left: str, right: str, radius: tuple[float, float], shift: tuple[float, float]) -> list[_Handle]:
    """The same movement on both sides of the face, mirrored horizontally."""
    return [_Handle(left, radius, shift), _Handle(right, radius, (-shift[0], shift[1]))]


# Each action unit at full activation, in photograph pixels (the face is about 95 pixels wide).
_ACTION_UNITS: dict[str, list[_Handle]] = {
    "inner_brow_raise": _pair("brow_left_inner", "brow_right_inner", (6, 5), (0.5, -5.0)),
    "outer_brow_raise": [
        *_pair("brow_left_mid", "brow_right_mid", (8, 6), (0.0, -3.5)),
        *_pair("brow_left_outer", "brow_right_outer", (6, 5), (-0.5, -2.5)),
    ],
    "brow_lower": [
        *_pair("brow_left_inner", "brow_right_inner", (7, 5), (3.0, 4.5)),
        *_pair("brow_left_mid", "brow_right_mid", (8, 5), (1.0, 3.0)),
    ],
    "upper_lid_raise": [_Handle(eye, (9, 5), (0.0, -0.5), (0.0, 0.6)) for eye in ("eye_left", "eye_right")],
    "lid_tighten": [_Handle(eye, (9, 5), (0.0, -0.4), (0.0, -0.4)) for eye in ("eye_left", "eye_right")],
    "blink": [_Handle(eye, (8, 4), (0.0, 2.5), (0.0, -0.6)) for eye in ("eye_left", "eye_right")],
    "cheek_raise": _pair("cheek_left", "cheek_right", (10, 8), (0.0, -2.5)),
    "nose_wrinkle": [
        *_pair("nostril_left", "nostril_right", (5, 5), (0.5, -2.5)),
        _Handle("nose_bridge", (6, 8), expand=(0.0, -0.25)),
    ],
    "upper_lip_raise": [
        _Handle("upper_lip", (10, 4), (0.0, -4.5)),
        *_pair("mouth_left", "mouth_right", (5, 4), (0.0, -1.0)),
    ],
    "lip_corner_pull": _pair("mouth_left", "mouth_right", (6, 6), (-2.5, -4.0)),
    "lip_corner_depress": [
        _Handle((205, 143), (6, 5), (1.5, 6.0)),
        _Handle((243, 144), (6, 5), (-1.5, 6.0)),
    ],
    "chin_raise": [_Handle("lower_lip", (12, 5), (0.0, -3.0)), _Handle("chin", (16, 10), (0.0, -1.5))],
    "lip_stretch": _pair("mouth_left", "mouth_right", (6, 7), (-4.0, 1.0)),
    "lip_funnel": _pair("mouth_left", "mouth_right", (6, 7), (3.5, 0.0)),
    "lip_press": [
        _Handle("mouth", (16, 8), expand=(0.0, -0.7)),
        *_pair("mouth_left", "mouth_right", (5, 5), (1.0, 0.0)),
    ],
}
# The jaw is not a Gaussian: it tears the face open along the line where the upper teeth
# meet the lower lip, moving everything below it down (see _jaw_field).
_LIP_LINE_Y = 149.0
_JAW_DROP_PX = 9.0
_UNIT_NAMES = (*_ACTION_UNITS, "jaw_drop")

# Each emotion's full expression as action-unit weights; an expression of strength s lies
# between neutral (s = 0) and this (s = 1).  The photograph itself smiles, so neutral
# relaxes the smile.
_EXPRESSIONS: dict[str, dict[str, float]] = {
    "neutral": {"lip_corner_depress": 0.6, "lip_press": 0.8, "lip_funnel": 0.3, "chin_raise": 0.4},
    "happy": {"lip_corner_pull": 1.0, "cheek_raise": 1.0, "lid_tighten": 0.3, "jaw_drop": 0.15},
    "sad": {
        "inner_brow_raise": 1.0,
        "brow_lower": 0.4,
        "lip_corner_depress": 1.6,
        "lip_press": 0.8,
        "chin_raise": 0.8,
        "upper_lid_raise": -0.4,
    },
    "surprise": {
        "inner_brow_raise": 0.9,
        "outer_brow_raise": 1.0,
        "upper_lid_raise": 1.0,
        "jaw_drop": 0.7,
        "lip_funnel": 0.5,
        "lip_corner_depress": 0.3,
    },
    "angry": {
        "brow_lower": 1.2,
        "lid_tighten": 0.6,
        "lip_press": 1.1,
        "nose_wrinkle": 0.3,
        "lip_corner_depress": 0.7,
        "lip_funnel": 0.4,
    },
    "disgust": {
        "upper_lip_raise": 1.0,
        "nose_wrinkle": 1.0,
        "brow_lower": 0.5,
        "lid_tighten": 0.5,
        "lip_corner_depress": 0.6,
        "cheek_raise": 0.3,
    },
    "fear": {
        "inner_brow_raise": 1.0,
        "outer_brow_raise": 0.6,
        "brow_lower": 0.3,
        "upper_lid_raise": 1.0,
        "lip_stretch": 1.0,
        "jaw_drop": 0.35,
        "lip_corner_depress": 0.3,
    },
}
# A slight head movement that goes with each emotion: (dx, dy) in frame fractions, scale change.
_HEAD_SET = {
    "neutral": (0.0, 0.0, 0.0),
    "happy": (0.0, -0.005, 0.01),
    "sad": (0.0, 0.02, -0.02),
    "surprise": (0.0, -0.02, -0.02),
    "angry": (0.0, 0.01, 0.04),
    "disgust": (0.01, 0.0, -0.03),
    "fear": (0.0, 0.005, -0.04),
}
_TALK_JAW = 0.8  # jaw drop at full loudness
_STRENGTH_LIMIT = 1.4  # beyond this the warps stop looking like a face
_VIEW_TOP_PX = 125.0  # at most this far above the face centre is in view (the photograph has 120 px)


@dataclass(frozen=True)
class Identity:
    """How one demo "speaker" looks and moves; every field is fixed for that speaker."""

    flip: bool  # mirrored picture
    zoom: float  # side of the square of the photograph in view, in its pixels (smaller: closer)
    offset: tuple[float, float]  # face position from the frame centre, in frame fractions
    roll_deg: float  # habitual head tilt
    aspect: float  # horizontal stretch of the face
    channel_gains: tuple[float, float, float]  # B, G, R
    brightness: float  # added to every channel
    contrast: float
    gamma: float
    backdrop_tint: tuple[float, float, float]  # B, G, R added to the backdrop
    blur_sigma: float  # camera sharpness
    monochrome: bool
    shape: tuple[tuple[str, float], ...]  # standing action-unit weights: brow height, eye size, mouth width
    expressiveness: float  # scales every expression
    motion: float  # scales head motion
    blink_rate_hz: float


def random_identity(rng: np.random.Generator) -> Identity:
    """A speaker's look, drawn from ``rng``."""
    zoom = float(rng.uniform(190, 290))
    # wide shots put the face higher, so that the view stays inside the photograph
    highest_offset = min(0.04, _VIEW_TOP_PX / zoom - 0.5)
    return Identity(
        flip=bool(rng.random() < 0.5),
        zoom=zoom,
        offset=(float(rng.uniform(-0.08, 0.08)), float(rng.uniform(highest_offset - 0.06, highest_offset))),
        roll_deg=float(rng.uniform(-5, 5)),
        aspect=float(rng.uniform(0.9, 1.1)),
        channel_gains=tuple(float(g) for g in rng.uniform(0.85, 1.15, 3)),
        brightness=float(rng.uniform(-25, 20)),
        contrast=float(rng.uniform(0.8, 1.15)),
        gamma=float(rng.uniform(0.8, 1.25)),
        backdrop_tint=tuple(float(t) for t in rng.uniform(-60, 40, 3)),
        blur_sigma=float(rng.choice([0.0, rng.uniform(0.4, 1.2)])),
        monochrome=bool(rng.random() < 0.1),
        shape=(
            ("outer_brow_raise", float(rng.uniform(-0.3, 0.3))),
            ("upper_lid_raise", float(rng.uniform(-0.3, 0.3))),
            ("lip_stretch", float(rng.uniform(-0.3, 0.3))),
        ),
        expressiveness=float(rng.uniform(0.75, 1.25)),
        motion=float(rng.uniform(0.5, 1.5)),
        blink_rate_hz=float(rng.uniform(0.15, 0.5)),
    )


@dataclass(frozen=True)
class Expression:
    """One stretch of a clip: an emotion held for ``seconds`` at ``strength`` (0 neutral, 1 full)."""

    emotion: str
    seconds: float
    strength: float = 1.0

    @property
    def frames(self) -> int:
        return max(1, round(self.seconds * FPS))


def _face_emotion(emotion: str) -> str:
    name = _ALIASES.get(emotion, emotion)
    if name not in _EXPRESSIONS:
        raise ValueError(f"unknown face emotion {emotion!r}; known: {', '.join(EMOTIONS)}")
    return name


def _point(point: str | tuple[float, float]) -> tuple[float, float]:
    return LANDMARKS[point] if isinstance(point, str) else point


def _mouth_width_profile(xs: np.ndarray) -> np.ndarray:
    """1 in the middle of the mouth, falling to 0 just past its corners."""
    return np.clip(1 - ((xs - LANDMARKS["mouth"][0]) / 21) ** 2, 0, 1) ** 0.5


def _jaw_field(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Downward displacement of a jaw drop: a sharp step at the lip line between the
    corners, blurring into a smooth pull over the cheeks, fading towards the neck."""
    across = np.exp(-0.5 * ((xs - LANDMARKS["mouth"][0]) / 13) ** 2)
    sharpness = 0.5 + 4.0 * (1 - _mouth_width_profile(xs))
    step = 1 / (1 + np.exp(-(ys - _LIP_LINE_Y) / sharpness))
    below_chin = np.clip(ys - LANDMARKS["chin"][1], 0, None)
    return _JAW_DROP_PX * across * step * np.exp(-0.5 * (below_chin / 25) ** 2)


@functools.cache
def _unit_fields() -> np.ndarray:
    """(units, 2, h, w) float32: each action unit's displacement over the region it moves."""
    x0, y0, x1, y1 = _ROI
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    # fade to nothing at the region's border, so the moved region joins the still photograph
    taper = np.outer(np.hanning(y1 - y0 + 2)[1:-1], np.hanning(x1 - x0 + 2)[1:-1]) ** 0.25
    fields = np.zeros((len(_UNIT_NAMES), 2, y1 - y0, x1 - x0))
    fields[_UNIT_NAMES.index("jaw_drop"), 1] = _jaw_field(xs, ys)
    for index, name in enumerate(_ACTION_UNITS):
        for handle in _ACTION_UNITS[name]:
            cx, cy = _point(handle.point)
            rx, ry = handle.radius
            weight = np.exp(-0.5 * (((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2))
            fields[index, 0] += weight * (handle.shift[0] + handle.expand[0] * (xs - cx))
            fields[index, 1] += weight * (handle.shift[1] + handle.expand[1] * (ys - cy))
    return (fields * taper).astype(np.float32)


def _unit_vector(weights: dict[str, float]) -> np.ndarray:
    vector = np.zeros(len(_UNIT_NAMES))
    for name, weight in weights.items():
        vector[_UNIT_NAMES.index(name)] += weight
    return vector


@functools.cache
def _photograph() -> np.ndarray:
    return np.ascontiguousarray(skimage_data.astronaut()[:, :, ::-1]).astype(np.float32)


def _ellipse_mask(shape: tuple[int, int], centre: tuple[float, float], axes: tuple[float, float]) -> np.ndarray:
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]]
    return ((xs - centre[0]) / axes[0]) ** 2 + ((ys - centre[1]) / axes[1]) ** 2 <= 1


def _backdrop_mask(image: np.ndarray) -> np.ndarray:
    """Soft 0..1 mask of the grey studio backdrop: unsaturated, bright, not the face."""
    hsv = cv2.cvtColor(image.astype(np.uint8), cv2.COLOR_BGR2HSV)
    mask = ((hsv[..., 1] < 45) & (hsv[..., 2] > 130)).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    mask[_ellipse_mask(mask.shape, *_SKIN)] = 0
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 4)


def _hide_head(image: np.ndarray) -> np.ndarray:
    """The photograph with the head replaced by a featureless smear of the backdrop around it."""
    head = _ellipse_mask(image.shape[:2], *_HEAD).astype(np.uint8)
    small = cv2.resize(image.astype(np.uint8), (128, 128), interpolation=cv2.INTER_AREA)
    small_mask = cv2.resize(head, (128, 128), interpolation=cv2.INTER_NEAREST)
    small_mask = cv2.dilate(small_mask, np.ones((5, 5), np.uint8))
    filled = cv2.inpaint(small, small_mask, 9, cv2.INPAINT_TELEA)
    filled = cv2.GaussianBlur(cv2.resize(filled, image.shape[1::-1], interpolation=cv2.INTER_CUBIC), (0, 0), 6)
    alpha = cv2.GaussianBlur(cv2.dilate(head, np.ones((15, 15), np.uint8)).astype(np.float32), (0, 0), 6)[..., None]
    return image * (1 - alpha) + filled.astype(np.float32) * alpha


@functools.lru_cache(maxsize=64)
def _identity_source(identity: Identity, hide_face: bool) -> np.ndarray:
    """The photograph as this speaker's camera sees it, float32 BGR (before framing and motion)."""
    image = _photograph().copy()
    if hide_face:
        image = _hide_head(image)
    image = image + _backdrop_mask(_photograph())[..., None] * np.array(identity.backdrop_tint, np.float32)
    image = image * np.array(identity.channel_gains, np.float32)
    image = (image - 128) * identity.contrast + 128 + identity.brightness
    image = 255 * (np.clip(image, 0, 255) / 255) ** identity.gamma
    if identity.monochrome:
        gray = cv2.cvtColor(image.astype(np.float32), cv2.COLOR_BGR2GRAY)
        image = np.repeat(gray[..., None], 3, axis=2)
    if identity.blur_sigma > 0:
        image = cv2.GaussianBlur(image, (0, 0), identity.blur_sigma)
    return np.clip(image, 0, 255).astype(np.float32)


def _framing(identity: Identity, size: int, pose: np.ndarray | None = None) -> np.ndarray:
    """2 x 3 affine map from photograph to frame pixels; ``pose`` is (dx, dy, rotation deg, scale)."""
    dx, dy, rotation, scale = (0.0, 0.0, 0.0, 1.0) if pose is None else pose
    angle = np.deg2rad(identity.roll_deg + rotation)
    k = size / identity.zoom * scale
    linear = k * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    linear = linear @ np.diag([identity.aspect * (-1 if identity.flip else 1), 1.0])
    target = np.array([size / 2 + (identity.offset[0] + dx) * size, size / 2 + (identity.offset[1] + dy) * size])
    translation = target - linear @ np.array(FACE_CENTRE)
    return np.hstack([linear, translation[:, None]])


def face_landmarks(identity: Identity, size: int = 256) -> dict[str, tuple[float, float]]:
    """Where :data:`LANDMARKS` fall in a frame of ``identity`` at rest (no expression, no head motion)."""
    affine = _framing(identity, size)
    return {name: tuple(float(v) for v in affine @ np.array([x, y, 1.0])) for name, (x, y) in LANDMARKS.items()}


def loudness_envelope(
    waveform: np.ndarray, sample_rate: int, floor_db: float = -45.0, span_db: float = 30.0
) -> np.ndarray:
    """Per video frame, 0..1: the waveform's RMS level from ``floor_db`` (0) to ``floor_db + span_db`` (1)."""
    hop = sample_rate / FPS
    frames = max(1, int(np.ceil(len(waveform) / hop)))
    levels = np.empty(frames)
    for index in range(frames):
        window = waveform[int(index * hop) : int((index + 1) * hop)]
        rms = float(np.sqrt(np.mean(np.square(window, dtype=np.float64)))) if len(window) else 0.0
        levels[index] = 20 * np.log10(max(rms, 1e-9))
    return np.clip((levels - floor_db) / span_db, 0, 1)


def _smooth_noise(rng: np.random.Generator, frames: int, amplitude: float, hertz: tuple[float, float]) -> np.ndarray:
    """A sum of three slow sinusoids with random frequencies and phases."""
    t = np.arange(frames) / FPS
    signal = np.zeros(frames)
    for _ in range(3):
        signal += np.sin(2 * np.pi * rng.uniform(*hertz) * t + rng.uniform(0, 2 * np.pi))
    return amplitude * signal / 3


def _blinks(rng: np.random.Generator, frames: int, rate_hz: float) -> np.ndarray:
    """0..1 lid closure per frame: blinks of about 0.2 s at random times."""
    closure = np.zeros(frames)
    shape = np.array([0.35, 0.8, 1.0, 0.8, 0.4, 0.15])
    time = rng.exponential(1 / rate_hz) * FPS * 0.5
    while time < frames:
        start = int(time)
        stop = min(frames, start + len(shape))
        closure[start:stop] = np.maximum(closure[start:stop], shape[: stop - start])
        time += max(0.6 * FPS, rng.exponential(1 / rate_hz) * FPS)
    return closure


def _ramp(values: np.ndarray, frames: int) -> np.ndarray:
    """``values`` (frames, ...) smoothed along time with a Hann window of ``frames``, ends held."""
    if frames < 2 or len(values) < 2:
        return values
    window = np.hanning(frames + 2)[1:-1]
    window /= window.sum()
    padded = np.concatenate([np.repeat(values[:1], frames, 0), values, np.repeat(values[-1:], frames, 0)])
    smoothed = np.apply_along_axis(lambda column: np.convolve(column, window, mode="same"), 0, padded)
    return smoothed[frames:-frames]


def _per_frame(envelope: np.ndarray, frames: int) -> np.ndarray:
    envelope = np.asarray(envelope, dtype=np.float64).ravel()
    if len(envelope) == frames:
        return envelope
    if len(envelope) == 0:
        return np.zeros(frames)
    return np.interp(np.linspace(0, len(envelope) - 1, frames), np.arange(len(envelope)), envelope)


@functools.cache
def _region_grid() -> tuple[np.ndarray, np.ndarray]:
    x0, y0, x1, y1 = _ROI
    local_y, local_x = np.mgrid[0 : y1 - y0, 0 : x1 - x0].astype(np.float32)
    return local_y, local_x


def _displacement(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (2, h, w) displacement of the region for one frame's unit weights, and the jaw's
    (h, w) share of its vertical part.  The jaw's tear follows the lip line wherever the
    other units have moved it, so the mouth opens between the teeth and the lower lip."""
    fields = _unit_fields()
    others = np.tensordot(weights[:-1].astype(np.float32), fields[:-1], axes=1)  # the jaw is the last unit
    line_shift = others[1, int(_LIP_LINE_Y) - _ROI[1]]
    local_y, local_x = _region_grid()
    jaw_y = float(weights[-1]) * cv2.remap(
        fields[-1, 1], local_x, local_y - line_shift[None, :], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    others[1] += jaw_y
    return others, jaw_y


def _mouth_cavity(region: np.ndarray, displacement: np.ndarray, jaw_y: np.ndarray) -> None:
    """Darken, in place, the gap the jaw tore open: pixels that sample above the lip line
    only because of the jaw, between the corners wherever the other units moved them.
    ``displacement`` (2, h, w) is the whole displacement of the mouth box and ``jaw_y``
    the jaw's share of its vertical part."""
    x0, y0, x1, y1 = _MOUTH_BOX
    ys, xs = np.mgrid[y0 + _ROI[1] : y1 + _ROI[1], x0 + _ROI[0] : x1 + _ROI[0]].astype(np.float32)
    with_jaw = ys - displacement[1]
    without_jaw = with_jaw + jaw_y
    alpha = (
        np.clip((_LIP_LINE_Y - with_jaw) / 1.5, 0, 1)
        * np.clip((without_jaw - _LIP_LINE_Y + 1) / 1.5, 0, 1)
        * _mouth_width_profile(xs - displacement[0])
    )[..., None] * 0.9
    patch = region[y0:y1, x0:x1]
    patch[:] = patch * (1 - alpha) + _CAVITY_BGR * alpha


def animate_sequence(
    parts: Sequence[Expression],
    rng: np.random.Generator,
    identity: Identity,
    loudness_envelope: np.ndarray | None = None,
    size: int = 256,
    hide_face: bool = False,
) -> np.ndarray:
    """One continuous clip going through ``parts`` in order: (frames, size, size, 3) BGR uint8.

    Expressions blend into each other over about a quarter of a second; the head moves and
    the eyes blink throughout.  ``loudness_envelope`` (0..1, one value per frame, or any
    length, which is resampled) opens the jaw as the speaker talks.  With ``hide_face`` the
    head is replaced by a smear of the backdrop, so no face can be found in the clip.
    """
    if not parts:
        raise ValueError("a clip needs at least one part")
    emotions = [_face_emotion(part.emotion) for part in parts]
    frames = sum(part.frames for part in parts)
    neutral = _unit_vector(_EXPRESSIONS["neutral"])
    standing = _unit_vector(dict(identity.shape))

    targets, head_set = [], []
    for part, emotion in zip(parts, emotions):
        strength = float(np.clip(part.strength * identity.expressiveness, 0, _STRENGTH_LIMIT))
        full = _unit_vector(_EXPRESSIONS[emotion])
        targets.append(np.repeat([neutral + strength * (full - neutral)], part.frames, 0))
        head_set.append(np.repeat([np.array(_HEAD_SET[emotion]) * strength], part.frames, 0))
    weights = _ramp(np.concatenate(targets), 8)
    weights *= 1 + _smooth_noise(rng, frames, 0.12, (0.2, 0.9))[:, None]  # expressions are never quite still
    weights += standing

    talking = np.zeros(frames) if loudness_envelope is None else _per_frame(loudness_envelope, frames)
    talking = _ramp(talking[:, None], 3)[:, 0]
    weights[:, _UNIT_NAMES.index("jaw_drop")] += _TALK_JAW * talking
    weights[:, _UNIT_NAMES.index("blink")] += _blinks(rng, frames, identity.blink_rate_hz)

    motion = identity.motion  # scales every head movement, the emotions' own included
    head = _ramp(np.concatenate(head_set), 12) * motion
    poses = np.stack(
        [
            head[:, 0] + _smooth_noise(rng, frames, 0.015 * motion, (0.1, 0.6)),
            head[:, 1] + _smooth_noise(rng, frames, 0.012 * motion, (0.1, 0.6)) + 0.006 * motion * talking,
            _smooth_noise(rng, frames, 2.5 * motion, (0.1, 0.5)),
            1 + head[:, 2] + _smooth_noise(rng, frames, 0.02 * motion, (0.05, 0.3)),
        ],
        axis=1,
    )

    source = _identity_source(identity, hide_face)
    canvas = source.copy()
    x0, y0, x1, y1 = _ROI
    grid_y, grid_x = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    mx0, my0, mx1, my1 = _MOUTH_BOX
    clip = np.empty((frames, size, size, 3), np.uint8)
    for index in range(frames):
        displacement, jaw_y = _displacement(weights[index])
        # sampling where each pixel came from: the inverse of a small smooth displacement is nearly its negation
        region = cv2.remap(source, grid_x - displacement[0], grid_y - displacement[1], cv2.INTER_LINEAR)
        if not hide_face:
            _mouth_cavity(region, displacement[:, my0:my1, mx0:mx1], jaw_y[my0:my1, mx0:mx1])
        canvas[y0:y1, x0:x1] = region
        frame = cv2.warpAffine(
            canvas,
            _framing(identity, size, poses[index]),
            (size, size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        clip[index] = np.clip(frame + 0.5, 0, 255).astype(np.uint8)
    return clip


def animate_face(
    emotion: str,
    seconds: float,
    rng: np.random.Generator,
    identity: Identity,
    loudness_envelope: np.ndarray | None = None,
    size: int = 256,
    strength: float | None = None,
) -> np.ndarray:
    """A clip of ``identity`` showing ``emotion`` for ``seconds``: (frames, size, size, 3) BGR uint8.

    ``emotion`` is one of :data:`EMOTIONS` (or the voice's "fearful" / "surprised").  The
    expression comes up from neutral in the first few frames and is then held at
    ``strength`` (drawn from ``rng`` when not given), never quite still.
    ``loudness_envelope`` opens the jaw as in :func:`animate_sequence`.
    """
    if strength is None:
        strength = float(rng.uniform(0.55, 1.05))
    lead, expression = Expression("neutral", 0.2), Expression(emotion, seconds, strength)
    envelope = None
    if loudness_envelope is not None:
        envelope = np.concatenate([np.zeros(lead.frames), _per_frame(loudness_envelope, expression.frames)])
    return animate_sequence([lead, expression], rng, identity, envelope, size)[lead.frames :]
