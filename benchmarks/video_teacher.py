"""Video teacher speed: 16-frame windows scored per second by ``window_softmaxes``.

For the demo's small S2D (``S2DConfig.small()``, 112 × 112 frames) and the published size (``S2DConfig.full()``,
ViT-B/16 at 224 × 224, ~95 M parameters), both with random weights and their MobileFaceNet landmark branch, it
prints and saves (benchmarks/results/video_teacher.json) the windows scored per second, reading and decoding the
224 × 224 face clips included, at batch 1 and batch 8:
- on the CPU with one thread and with all of the machine's threads,
- on the GPU (float16 autocast), when torch sees one.

    python benchmarks/video_teacher.py [--windows-small 48] [--windows-full 8]
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")  # the scoring bar would interleave with the figures

import argparse
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from liser.files import write_json
from liser.models.s2d import S2DConfig
from liser.runtime import keep_freed_buffers
from liser.teachers.video_model import build_video_teacher
from liser.teachers.video_windows import window_softmaxes
from liser.unlabeled.faces import FACE_SIZE
from liser.unlabeled.windows import segment_windows

RESULTS = Path(__file__).parent / "results" / "video_teacher.json"
FPS, FRAMES, WINDOWS_PER_SEGMENT = 30.0, 16, 4
MODELS = {"small": S2DConfig.small(), "full": S2DConfig.full()}
BATCH_SIZES = (1, 8)


def face_segments(folder: Path, windows: int, rng: np.random.Generator) -> pd.DataFrame:
    """Face clips of ``WINDOWS_PER_SEGMENT`` windows each (smooth random images, mp4), and their windows."""
    tables = []
    for index in range(-(-windows // WINDOWS_PER_SEGMENT)):
        segment = f"MSP-FACE_{index + 1:04d}_0001"
        count = min(WINDOWS_PER_SEGMENT, windows - WINDOWS_PER_SEGMENT * index) * FRAMES
        base = rng.integers(0, 256, (28, 28, 3)).astype(np.float32)
        writer = cv2.VideoWriter(
            str(folder / f"{segment}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (FACE_SIZE, FACE_SIZE)
        )
        for frame in range(count):
            image = np.clip(base + 40 * np.sin(frame / 5), 0, 255).astype(np.uint8)
            writer.write(cv2.resize(image, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_CUBIC))
        writer.release()
        tables.append(segment_windows(segment, "Speaker_1", np.ones(count, dtype=bool), FRAMES, FPS))
    return pd.concat(tables, ignore_index=True)


def windows_per_second(model, windows: pd.DataFrame, faces: Path, batch_size: int, device: str) -> float:
    window_softmaxes(model, windows.head(batch_size), faces, batch_size, device=device)  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    window_softmaxes(model, windows, faces, batch_size, device=device)  # copies the probabilities back: synchronised
    return len(windows) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows-small", type=int, default=48, help="windows per measurement, small model")
    parser.add_argument("--windows-full", type=int, default=8, help="windows per measurement, full-size model")
    parser.add_argument("--windows-gpu", type=int, default=64, help="windows per measurement on the GPU")
    args = parser.parse_args()
    keep_freed_buffers()
    all_threads = os.cpu_count() or 1
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    figures: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {all_threads} cores",
        "gpu": gpu,
        "torch": torch.__version__,
        "window_s": FRAMES / FPS,
        "includes": "reading and decoding the 224 x 224 face clips, preprocessing, landmark branch, S2D",
    }
    counts = {"small": args.windows_small, "full": args.windows_full}
    with tempfile.TemporaryDirectory() as folder:
        faces = Path(folder)
        windows = face_segments(faces, max(*counts.values(), args.windows_gpu if gpu else 0), np.random.default_rng(0))
        for name, config in MODELS.items():
            model = build_video_teacher(config, seed=0).eval()
            figures[f"{name}_parameters"] = sum(p.numel() for p in model.parameters())
            for threads in sorted({1, all_threads}):
                torch.set_num_threads(threads)
                for batch_size in BATCH_SIZES:
                    subset = windows.head(max(counts[name], batch_size))
                    rate = windows_per_second(model, subset, faces, batch_size, "cpu")
                    figures[f"{name}_cpu_{threads}_threads_windows_per_s_batch_{batch_size}"] = rate
                    print(f"{name} cpu {threads} thread(s) batch {batch_size}: {rate:.2f} windows/s", flush=True)
            if gpu:
                for batch_size in (*BATCH_SIZES, 32):
                    rate = windows_per_second(model, windows.head(args.windows_gpu), faces, batch_size, "cuda")
                    figures[f"{name}_gpu_windows_per_s_batch_{batch_size}"] = rate
                    print(f"{name} gpu batch {batch_size}: {rate:.2f} windows/s", flush=True)
                model.to("cpu")
    for name, value in figures.items():
        print(f"{name:48s} {value:.2f}" if isinstance(value, float) else f"{name:48s} {value}")
    write_json(RESULTS, figures)
    print(f"saved to {RESULTS}")


if __name__ == "__main__":
    main()
