"""Speech teacher speed on the CPU: windows scored per second and a training step.

For a HuBERT of the demo base's shape and for a base-size one (``HubertConfig()`` defaults, the
architecture of hubert-base-ls960), both with random weights saved as a base folder is (8 classes,
LoRA rank 8 and alpha 16, raw waveforms), it prints and saves
(benchmarks/results/speech_teacher.json):
- windows scored per second by ``window_softmaxes`` (reading the wavs included) at batch 1 and
  batch 32, for 16-frame windows (0.533 s at 30 fps) of 16 kHz audio,
- seconds per training step (forward and backward) on 8 crops of 3 s.

    python benchmarks/speech_teacher.py [--threads 1] [--windows 96]
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")  # the scoring bar would interleave with the figures

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch
from transformers import HubertConfig, HubertModel

from liser.demo.speech_base import SMALL_HUBERT
from liser.files import write_json
from liser.params import load_params
from liser.runtime import keep_freed_buffers
from liser.teachers.speech_model import build_speech_teacher, parameter_counts
from liser.teachers.speech_windows import window_softmaxes
from liser.unlabeled.windows import segment_windows

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "speech_teacher.json"
RATE, FPS, FRAMES = 16000, 30.0, 16
CLASSES = [f"class{k}" for k in range(8)]
MODELS = {"demo": SMALL_HUBERT, "base_size": {}}  # the demo base's shape; HubertConfig's defaults


def unlabeled_segments(folder: Path, windows: int, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Segments of 10 windows each (noise-like audio) written as 16 kHz wavs, and their windows."""
    manifest, tables = [], []
    for index in range(-(-windows // 10)):
        segment, count = f"MSP-FACE_{index:04d}_0001", min(10, windows - 10 * index) * FRAMES
        path = folder / f"{segment}.wav"
        sf.write(path, rng.normal(0, 0.1, int(count / FPS * RATE)).astype(np.float32), RATE, subtype="PCM_16")
        manifest.append({"utterance": segment, "path": str(path)})
        tables.append(segment_windows(segment, "Speaker_1", np.ones(count, dtype=bool), FRAMES, FPS))
    return pd.DataFrame(manifest), pd.concat(tables, ignore_index=True)


def windows_per_second(model, manifest: pd.DataFrame, windows: pd.DataFrame, batch_size: int) -> float:
    window_softmaxes(model, manifest, windows.head(batch_size), batch_size, classes=CLASSES, device="cpu")  # warm-up
    start = time.perf_counter()
    window_softmaxes(model, manifest, windows, batch_size, classes=CLASSES, device="cpu")
    return len(windows) / (time.perf_counter() - start)


def train_step_seconds(model, repeats: int) -> float:
    model.train()
    waveforms, labels = torch.randn(8, 3 * RATE) * 0.1, torch.arange(8) % model.config.num_labels
    times = []
    for _ in range(repeats + 1):  # the first is a warm-up
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(input_values=waveforms).logits, labels)
        loss.backward()
        times.append(time.perf_counter() - start)
    model.eval()
    return float(np.median(times[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--windows", type=int, default=96, help="windows scored per measurement")
    parser.add_argument("--train-repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_buffers()
    figures: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"{args.threads} thread(s) used",
        "torch": torch.__version__,
        "window_s": FRAMES / FPS,
    }
    params = load_params(REPO / "params.yaml").speech_teacher.model_copy(
        update={"lora_rank": 8, "lora_alpha": 16.0, "normalize": False}
    )
    with tempfile.TemporaryDirectory() as folder:
        manifest, windows = unlabeled_segments(Path(folder), args.windows, np.random.default_rng(0))
        for name, shape in MODELS.items():
            torch.manual_seed(0)
            HubertModel(HubertConfig(**shape)).save_pretrained(Path(folder) / name)
            model = build_speech_teacher(Path(folder) / name, len(CLASSES), params, seed=0).eval()
            counts = parameter_counts(model)
            figures[f"{name}_parameters_frozen"] = counts["frozen"]
            figures[f"{name}_parameters_trainable"] = counts["trainable"]
            for batch_size in (1, 32):
                figures[f"{name}_windows_per_s_batch_{batch_size}"] = windows_per_second(
                    model, manifest, windows, batch_size
                )
            figures[f"{name}_train_step_s_8x3s"] = train_step_seconds(model, args.train_repeats)
    for name, value in figures.items():
        print(f"{name:42s} {value:.2f}" if isinstance(value, float) else f"{name:42s} {value}")
    write_json(RESULTS, figures)
    print(f"saved to {RESULTS}")


if __name__ == "__main__":
    main()
