"""Face crop speed and agreement when the detector runs on every k-th frame only, on one CPU core.

The test clip is scikit-image's astronaut photograph moving in a 640 x 360, 30 fps frame (a face
of about 130 px, sliding, bobbing, zooming by +-8 % and rolling by +-6 degrees), H.264 like a cut
MSP-Face segment.  For k in {1, 3, 5, 10} it prints and saves (benchmarks/results/faces.json):
- the time to track the face (decode and detect) and to make the whole clip (track, decode again,
  align, encode), as frames per second on one core and as a speed-up over k = 1,
- the agreement of the interpolated boxes with per-frame detection: mean and minimum IoU over frames.

    python benchmarks/faces.py [--seconds 6] [--detector opencv]
"""

import os

for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[variable] = "1"  # one core, before numpy, OpenCV and torch load
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import math
import platform
import tempfile
import time
from pathlib import Path

import cv2
import deepface
from skimage import data

from liser.ffmpeg import write_video
from liser.files import write_json
from liser.unlabeled.faces import CropJob, CropOptions, box_iou, crop_job, track_faces

RESULTS = Path(__file__).parent / "results" / "faces.json"
EVERY = (1, 3, 5, 10)
WIDTH, HEIGHT, FPS = 640, 360, 30
PHOTO_FACE_CENTRE = (225.0, 113.0)  # in the 512 x 512 astronaut photograph
PHOTO_SCALE = 1.4  # its 95 px face becomes about 130 px


def moving_face_clip(path: Path, seconds: float) -> int:
    """Write the test clip to ``path``; return its number of frames."""
    photo = data.astronaut()

    def frames():
        for index in range(int(round(seconds * FPS))):
            t = index / FPS
            centre = (WIDTH / 2 + 80 * math.sin(2 * math.pi * t / 5), HEIGHT / 2 + 20 * math.sin(2 * math.pi * t / 2.5))
            roll_degrees = 6 * math.sin(2 * math.pi * t / 3)
            scale = PHOTO_SCALE * (1 + 0.08 * math.sin(2 * math.pi * t / 4))
            matrix = cv2.getRotationMatrix2D(PHOTO_FACE_CENTRE, roll_degrees, scale)
            matrix[:, 2] += (centre[0] - PHOTO_FACE_CENTRE[0], centre[1] - PHOTO_FACE_CENTRE[1])
            yield cv2.warpAffine(photo, matrix, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    return write_video(path, frames(), FPS)


def timed(work):
    start = time.perf_counter()
    result = work()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0, help="length of the test clip")
    parser.add_argument("--detector", default="opencv")
    args = parser.parse_args()
    cv2.setNumThreads(1)

    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "moving_face.mp4"
        frames = moving_face_clip(clip, args.seconds)
        track_faces(clip, args.detector, detect_every=10)  # warm-up: the detector is built once per process
        reference = None
        for every in EVERY:
            options = CropOptions(detector=args.detector, detect_every=every, max_gap=max(15, every - 1))
            track, track_s = timed(lambda: track_faces(clip, options.detector, options.detect_every, options.max_gap))
            job = CropJob(clip.stem, str(clip), str(clip), options)
            result, crop_s = timed(lambda: crop_job(job))
            coverage = result.coverage
            reference = track if reference is None else reference
            both = reference.has_face & track.has_face
            overlap = box_iou(reference.boxes[both], track.boxes[both])
            rows[every] = {
                "detector_calls": int(track.examined.sum()),
                "face_frames": coverage.face_frames,
                "track_s": track_s,
                "crop_s": crop_s,
                "track_frames_per_s": frames / track_s,
                "crop_frames_per_s": frames / crop_s,
                "iou_mean": float(overlap.mean()),
                "iou_min": float(overlap.min()),
            }
    for row in rows.values():
        row["track_speedup"] = rows[1]["track_s"] / row["track_s"]
        row["crop_speedup"] = rows[1]["crop_s"] / row["crop_s"]

    figures = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; one thread used",
        "opencv": cv2.__version__,
        "deepface": deepface.__version__,
        "detector": args.detector,
        "clip": f"{WIDTH}x{HEIGHT}, {FPS} fps, {frames} frames: astronaut photograph moving, zooming and rolling",
        "track": "decode + detect every k-th frame and the last + interpolate",
        "crop": "track + decode again + align + encode 224x224 H.264 (the whole per-segment work)",
        "by_detect_every": {str(every): row for every, row in rows.items()},
    }
    print(f"{figures['clip']}; detector {args.detector}; {figures['machine']}")
    header = ("k", 3), ("calls", 6), ("face", 5), ("track fps", 10), ("x", 6), ("crop fps", 9), ("x", 6)
    print(" ".join(f"{name:>{width}}" for name, width in (*header, ("IoU mean", 9), ("IoU min", 8))))
    for every, row in rows.items():
        print(
            f"{every:>3} {row['detector_calls']:>6} {row['face_frames']:>5} {row['track_frames_per_s']:>10.1f}"
            f" {row['track_speedup']:>6.2f} {row['crop_frames_per_s']:>9.1f} {row['crop_speedup']:>6.2f}"
            f" {row['iou_mean']:>9.3f} {row['iou_min']:>8.3f}"
        )
    write_json(RESULTS, figures)
    print(f"saved to {RESULTS}")


if __name__ == "__main__":
    main()
