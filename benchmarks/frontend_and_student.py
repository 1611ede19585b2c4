"""Front end and student speed on one CPU core.

Prints and saves (benchmarks/results/frontend_and_student.json):
- log-Mel throughput in x real time, from a 16 kHz waveform and from a 48 kHz file (RAVDESS's rate),
- student latency per 3 s window at batch 1 and per window in a batch of 64 (one thread).

    python benchmarks/frontend_and_student.py [--repeats 20]
"""

import os

for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[variable] = "1"  # one core, before numpy and torch load

import argparse
import platform
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from timing import median_time

from liser.features import LogMel, load_audio
from liser.files import write_json
from liser.models.student import Student, StudentConfig
from liser.params import load_params
from liser.runtime import keep_freed_buffers

RESULTS = Path(__file__).parent / "results" / "frontend_and_student.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0, help="audio length for the front-end figures")
    args = parser.parse_args()
    torch.set_num_threads(1)
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml").features
    extractor = LogMel(params)
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.1, int(args.seconds * params.sample_rate)).astype(np.float32)

    logmel_s = median_time(args.repeats, lambda: extractor(audio))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "48k.wav"
        sf.write(path, rng.normal(0, 0.1, int(args.seconds * 48000)), 48000, subtype="PCM_16")
        file_s = median_time(max(3, args.repeats // 4), lambda: extractor(load_audio(path, params.sample_rate)))

    model = Student(StudentConfig(speech_classes=8)).eval()
    one = torch.randn(1, 1, params.n_mels, params.crop_frames)
    batch = torch.randn(64, 1, params.n_mels, params.crop_frames)

    def student_times() -> tuple[float, float]:
        with torch.inference_mode():
            return median_time(args.repeats * 5, lambda: model.classify(one)), median_time(
                args.repeats, lambda: model.classify(batch)
            )

    default_single_s, default_batch_s = student_times()  # glibc's default allocator behaviour
    keep_freed_buffers()  # what the pipeline runs with (liser/runtime.py)
    single_s, batch_s = student_times()

    figures = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; one thread used",
        "torch": torch.__version__,
        "logmel_x_realtime_16k_waveform": args.seconds / logmel_s,
        "logmel_x_realtime_48k_file_read_resample": args.seconds / file_s,
        "student_ms_per_window_batch_1": 1000 * single_s,
        "student_ms_per_window_batch_64": 1000 * batch_s / 64,
        "student_windows_per_s_batch_64": 64 / batch_s,
        "student_ms_per_window_batch_1_default_allocator": 1000 * default_single_s,
        "student_ms_per_window_batch_64_default_allocator": 1000 * default_batch_s / 64,
    }
    for name, value in figures.items():
        print(f"{name:50s} {value:.2f}" if isinstance(value, float) else f"{name:50s} {value}")
    write_json(RESULTS, figures)
    print(f"saved to {RESULTS}")


if __name__ == "__main__":
    main()
