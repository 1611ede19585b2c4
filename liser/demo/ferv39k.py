"""Demo FERV39k: face clips of the seven expressions, in the layout :mod:`liser.corpora.ferv39k` reads.

:func:`write_ferv39k_demo` writes ``<out>/<split>/<Class>/<clip>/<00001..>.jpg``: for every class,
``clips_per_class`` clips of 16-24 frames (``frames``), each one identity showing that expression
(:func:`liser.demo.faces.animate_face`: it comes up from neutral in the first frames, then is held at a strength
drawn from :data:`STRENGTH`, with head motion and blinks).  The identities are the demo's own, drawn from keys
distinct from the MSP-Face demo's speakers, and split in two: ``test`` identities are held out, so no face of
the test split is seen in training.  Clip ids are ``<identity>_<class>_<nn>`` (:func:`demo_identity` gives the
identity back).

Crops use the real pipeline's geometry (:func:`liser.faces.align_face` with ``CropOptions``' margin: the face box
plus 0.2 of its side on each side, rotated so that the eyes are level, resized to ``size``), with a fixed box per
identity instead of running the detector on every frame, which takes about 70 ms a frame here.  The box is
placed from where the face sits at rest in the :data:`RENDER_SIZE` frame (:func:`liser.demo.faces.face_landmarks`),
as DeepFace's ``opencv`` detector places it on these faces: centred :data:`BOX_BELOW_EYES` eye distances below the
midpoint of the eyes, :data:`BOX_WIDTH` eye distances wide (measured on 30 demo identities: 0.30 ± 0.04 and
2.37 ± 0.10).  Head motion then moves the face within the crop a little, as a detector's jitter would.

Everything depends only on the seed; the folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import math
import shutil
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from liser.corpora.ferv39k import CLASSES, SPLITS
from liser.demo.faces import FPS, Identity, animate_face, face_landmarks, random_identity
from liser.processes import worker_pool
from liser.unlabeled.faces import FACE_SIZE, CropOptions, align_face

__all__ = ["BOX_BELOW_EYES", "BOX_WIDTH", "demo_identity", "write_ferv39k_demo"]

BOX_BELOW_EYES = 0.30  # face box centre below the eyes' midpoint, in eye distances
BOX_WIDTH = 2.37  # face box side, in eye distances
CROP_MARGIN = CropOptions().margin
RENDER_SIZE = 192  # side of the animated frame the face is cropped from
JPEG_QUALITY = 95
STRENGTH = (0.85, 1.25)  # of each clip's expression, before the identity's expressiveness (0.75-1.25) scales it


def _rng(seed: int, *keys: str | int) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(str(k).encode()) for k in keys)])


def demo_identity(clip: str) -> str:
    """The identity of a demo clip id (``<identity>_<class>_<nn>``)."""
    return clip.split("_", 1)[0]


def _identity_name(number: int) -> str:
    return f"face{number:03d}"


@dataclass(frozen=True)
class _ClipPlan:
    split: str
    label: int
    clip: str
    identity_number: int
    frames: int


def _crop_geometry(identity: Identity, render_size: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Face box (x, y, w, h) and eyes (the person's left x, y, right x, y) of ``identity`` at rest."""
    points = face_landmarks(identity, render_size)
    first, second = np.array(points["eye_left"]), np.array(points["eye_right"])
    left, right = (first, second) if first[0] > second[0] else (second, first)  # person's left: viewer's right
    across = left - right
    distance = float(np.linalg.norm(across))
    down = np.array([-across[1], across[0]]) / distance  # perpendicular to the eye line, pointing to the chin
    centre = (left + right) / 2 + BOX_BELOW_EYES * distance * down
    side = BOX_WIDTH * distance
    box = (float(centre[0] - side / 2), float(centre[1] - side / 2), side, side)
    return box, (float(left[0]), float(left[1]), float(right[0]), float(right[1]))


def _plans(
    seed: int, clips_per_class: int, n_identities: int, test_identities: int, frames: tuple[int, int]
) -> list[_ClipPlan]:
    rng = _rng(seed, "ferv39k-plan")
    numbers = [int(n) for n in rng.choice(np.arange(1, 10 * n_identities + 1), n_identities, replace=False)]
    held_out = set(rng.choice(numbers, test_identities, replace=False).tolist())
    plans = []
    for label, name in enumerate(CLASSES):
        # every identity shows every expression about equally often; which ones get the extra clips varies by class
        owners = [int(n) for n in np.resize(rng.permutation(numbers), clips_per_class)]
        counts: dict[int, int] = {}
        for number in owners:
            counts[number] = counts.get(number, 0) + 1
            split = SPLITS[1] if number in held_out else SPLITS[0]
            clip = f"{_identity_name(number)}_{name.lower()}_{counts[number]:02d}"
            plans.append(_ClipPlan(split, label, clip, number, int(rng.integers(frames[0], frames[1] + 1))))
    return plans


def _render(plan: _ClipPlan, seed: int, folder: Path, size: int) -> int:
    """Animate, crop and write one clip's frames; return how many were written."""
    cv2.setNumThreads(1)
    identity = random_identity(_rng(seed, "ferv39k-face", plan.identity_number))
    clip_rng = _rng(seed, "ferv39k-clip", plan.clip)
    strength = float(clip_rng.uniform(*STRENGTH))
    frames = animate_face(
        CLASSES[plan.label].lower(), plan.frames / FPS, clip_rng, identity, size=RENDER_SIZE, strength=strength
    )
    box, eyes = _crop_geometry(identity, RENDER_SIZE)
    target = folder / plan.split / CLASSES[plan.label] / plan.clip
    target.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(frames[: plan.frames], start=1):
        crop = align_face(frame, box, eyes, CROP_MARGIN, size)
        if not cv2.imwrite(str(target / f"{index:05d}.jpg"), crop, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
            raise OSError(f"could not write {target / f'{index:05d}.jpg'}")
    return min(len(frames), plan.frames)


def _rendered(plans: list[_ClipPlan], seed: int, folder: Path, size: int, workers: int) -> Iterator[int]:
    if workers == 1:
        for plan in plans:
            yield _render(plan, seed, folder, size)
        return
    with worker_pool(workers) as pool:
        chunk = max(1, math.ceil(len(plans) / (4 * workers)))
        yield from pool.map(
            _render, plans, [seed] * len(plans), [folder] * len(plans), [size] * len(plans), chunksize=chunk
        )


def write_ferv39k_demo(
    out: str | Path,
    seed: int = 0,
    clips_per_class: int = 80,
    n_identities: int = 24,
    frames: tuple[int, int] = (16, 24),
    size: int = FACE_SIZE,
    test_identities: int | None = None,
    workers: int = 1,
) -> dict:
    """Write the demo FERV39k-layout corpus to ``out`` (replacing it whole); return counts.

    ``test_identities`` (a quarter of ``n_identities`` by default, at least one) are held out for the test
    split; ``frames`` is the (shortest, longest) clip length; ``size`` the side of the written face crops.
    ``workers`` > 1 renders clips in that many processes.
    """
    if n_identities < 2:
        raise ValueError(f"n_identities must be at least 2 (train and test need their own), got {n_identities}")
    if test_identities is None:
        test_identities = max(1, round(n_identities / 4))
    if not 1 <= test_identities < n_identities:
        raise ValueError(f"test_identities must be between 1 and {n_identities - 1}, got {test_identities}")
    if clips_per_class < n_identities:
        raise ValueError(
            f"clips_per_class ({clips_per_class}) must be at least n_identities ({n_identities}), "
            "so that every identity shows every expression"
        )
    if not 1 <= frames[0] <= frames[1]:
        raise ValueError(f"frames must be (shortest, longest) with 1 <= shortest <= longest, got {frames}")
    if size < 16 or workers < 1:
        raise ValueError(f"size must be at least 16 and workers at least 1, got {size} and {workers}")
    out = Path(out)
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    plans = _plans(seed, clips_per_class, n_identities, test_identities, frames)
    written = list(
        tqdm(_rendered(plans, seed, staging, size, workers), total=len(plans), desc="demo FERV39k", unit="clip")
    )
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    identities = {
        split: sorted({_identity_name(p.identity_number) for p in plans if p.split == split}) for split in SPLITS
    }
    return {
        "clips": len(plans),
        "frames": int(sum(written)),
        **{f"clips_{split}": sum(p.split == split for p in plans) for split in SPLITS},
        **{f"identities_{split}": identities[split] for split in SPLITS},
    }
