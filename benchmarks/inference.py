"""Inference speed on one CPU core, PyTorch and ONNX Runtime side by side.

Prints and saves (benchmarks/results/inference.json):
- student latency per 3 s window at batch 1, and per window in batches of 8 and 64 (64 is
  ``evaluate.eval_batch_size``, what file-level prediction uses);
- file-level prediction of a 60 s, 48 kHz file (``Predictor.predict``: read, resample, log-Mel,
  windows, logits) in x real time, at the paper's 0.1 s stride and at the longer strides that
  ``liser predict --stride`` offers;
- with the demo's trained students present (``outputs/students``), how much a longer stride changes
  file-level predictions: 60 s files made of each corpus's fold-0 test utterances, probabilities at
  each stride compared with those at 0.1 s;
- peak memory of a whole ``liser predict`` process (0.1 s stride) on 16 kHz files of 3 s, 10 min and 60 min
  (``--memory-minutes``): it must not grow with the file's length beyond its log-Mel (0.5 MB per minute);
- streaming (``liser stream``'s ``EmotionStream``, one distribution every 0.5 s) of a 60 s 16 kHz signal fed 0.1 s
  at a time, as from a microphone: real-time factor (processing time / audio time) of PyTorch, the float32 ONNX
  export and the int8 one; and the waveform graph (``liser export --waveform``, float32 and int8) on the whole 60 s
  at the evaluation stride (``--stream-only``: just these, saved to inference_stream.json).

    python benchmarks/inference.py [--student path/to/student.safetensors] [--repeats 20] [--memory-only]
    python benchmarks/inference.py --stream-only [--student ...]
"""

import os

for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[variable] = "1"  # one core, before numpy and torch load

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import pandas as pd
import soundfile as sf
import torch
from timing import median_time

from liser.deploy.int8 import quantize_student
from liser.deploy.stream import EmotionStream
from liser.deploy.waveform import WAVEFORM_INPUT, waveform_model
from liser.export import OnnxStudent, export_student, parity_inputs, to_onnx
from liser.features import load_audio
from liser.files import write_json
from liser.models.student import Student, StudentConfig
from liser.params import load_params
from liser.predict import Predictor
from liser.runtime import describe_machine, keep_freed_buffers
from liser.students.checkpoints import load_student, save_student
from liser.students.crops import window_starts

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "inference.json"
STRIDES_S = (0.1, 0.25, 0.5, 1.0, 3.0)
FILE_SECONDS = 60.0


def window_latency_ms(student: Student, runtime: OnnxStudent, n_mels: int, frames: int, repeats: int) -> dict:
    figures = {}
    for batch in (1, 8, 64):
        logmel = np.random.default_rng(0).normal(-6, 3, (batch, 1, n_mels, frames)).astype(np.float32)
        tensor = torch.from_numpy(logmel)
        runs = repeats * 5 if batch == 1 else repeats
        with torch.inference_mode():
            torch_s = median_time(runs, lambda: student.classify(tensor))
        onnx_s = median_time(runs, lambda: runtime.logits(logmel))
        figures[f"batch_{batch}"] = {"torch": 1000 * torch_s / batch, "onnxruntime": 1000 * onnx_s / batch}
    return figures


def file_speed(predictors: dict[str, dict[float, Predictor]], audio: Path, repeats: int) -> dict:
    """x real time of ``predict`` on ``audio`` per backend and stride, and of its front end alone."""
    front_end = predictors["torch"][STRIDES_S[0]]
    logmel, seconds, _ = front_end.read(audio)
    front_end_s = median_time(repeats, lambda: front_end.read(audio))
    figures = {"file_seconds": seconds, "read_and_logmel_x_realtime": seconds / front_end_s}
    for backend, by_stride in predictors.items():
        for stride, predictor in by_stride.items():
            wall = median_time(repeats, lambda: predictor.predict(audio))
            windowing = predictor.windows
            n_windows = len(window_starts(logmel.shape[1], windowing.window_frames, windowing.stride_frames))
            figures[f"{backend}_stride_{stride:g}s"] = {
                "windows": n_windows,
                "x_realtime": seconds / wall,
                "real_time_factor": wall / seconds,
                "ms_per_window": 1000 * (wall - front_end_s) / n_windows,
            }
    return figures


def concatenated_test_files(corpus: str, folder: Path, n_files: int, rng: np.random.Generator) -> list[np.ndarray]:
    """16 kHz waveforms of about ``FILE_SECONDS`` each, test utterances of fold 0 played one after another."""
    manifest = pd.read_parquet(REPO / "data" / "manifests" / f"{corpus}.parquet").set_index("utterance")
    test = pd.read_parquet(folder / "predictions.parquet")["utterance"].to_numpy()
    files = []
    for _ in range(n_files):
        pieces, total = [], 0
        while total < FILE_SECONDS * 16000:
            piece = load_audio(REPO / manifest.loc[rng.choice(test), "path"], 16000)
            pieces.append(piece)
            total += len(piece)
        files.append(np.concatenate(pieces)[: int(FILE_SECONDS * 16000)])
    return files


def stride_effect(params, n_files: int, scratch: Path) -> dict:
    """Per corpus: largest probability change and label agreement of each stride against 0.1 s."""
    figures = {}
    rng = np.random.default_rng(0)
    for corpus in ("ravdess", "crema_d"):
        folder = REPO / "outputs" / "students" / corpus / "no-dstl" / "fold0"
        if not (folder / "student.safetensors").is_file():
            continue
        onnx_path = scratch / f"{corpus}.onnx"
        export_student(folder / "student.safetensors", onnx_path, params.features, params.evaluate)
        by_stride = {
            s: Predictor.load(onnx_path, params.features, params.evaluate, stride_s=s, threads=1) for s in STRIDES_S
        }
        paths = []
        for i, waveform in enumerate(concatenated_test_files(corpus, folder, n_files, rng)):
            paths.append(scratch / f"{corpus}-{i}.wav")
            sf.write(paths[-1], waveform, 16000, subtype="FLOAT")
        probabilities = {
            stride: np.stack([predictor.predict(path).probabilities for path in paths])
            for stride, predictor in by_stride.items()
        }
        reference = probabilities[STRIDES_S[0]]
        figures[corpus] = {
            f"stride_{s:g}s": {
                "max_abs_probability_change": float(np.abs(probabilities[s] - reference).max()),
                "labels_agreeing": f"{int((probabilities[s].argmax(1) == reference.argmax(1)).sum())}/{len(paths)}",
            }
            for s in STRIDES_S[1:]
        }
    return figures


def peak_memory_mb(checkpoint: Path, minutes: list[float], scratch: Path) -> dict:
    """Peak resident memory of one `liser predict` process per file length, in MB (the process's own maximum)."""
    figures = {}
    for length in minutes:
        audio = scratch / f"{length:g}min.wav"
        rng = np.random.default_rng(0)
        total = int(length * 60 * 16000)
        with sf.SoundFile(audio, "w", 16000, 1, subtype="PCM_16") as handle:  # written a minute at a time
            for start in range(0, total, 60 * 16000):
                handle.write((0.1 * rng.standard_normal(min(60 * 16000, total - start))).astype(np.float32))
        liser = Path(sys.executable).parent / "liser"
        command = [str(liser), "predict", str(audio), "--student", str(checkpoint)]
        command += ["--params", str(REPO / "params.yaml")]
        probe = "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
        probe += "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", probe, *command], capture_output=True, text=True, check=True)
        figures[f"{length:g}_min"] = {
            "peak_mb": int(result.stdout.strip()) / 1024,
            "seconds": time.perf_counter() - started,
        }
        audio.unlink()
    return figures


def stream_speed(checkpoint: Path, params, repeats: int) -> dict:
    """Real-time factor (lower is faster) of streaming a 60 s signal, and of the waveform graph on it, on one core."""
    features = params.features
    student, _, _ = load_student(checkpoint)
    float32 = to_onnx(student, features)
    # the int8 graph's speed does not depend on where its calibration crops come from
    int8 = quantize_student(float32, parity_inputs(features, windows=64, seed=1))
    students = {
        "torch": student,
        "onnx_float32": OnnxStudent(float32.SerializeToString(), threads=1),
        "onnx_int8": OnnxStudent(int8.SerializeToString(), threads=1),
    }
    signal = np.random.default_rng(0).normal(0, 0.1, int(FILE_SECONDS * features.sample_rate)).astype(np.float32)
    block = int(0.1 * features.sample_rate)

    def stream(model) -> None:
        emotions = EmotionStream([model], features, hop_s=0.5)
        for first in range(0, len(signal), block):
            emotions.push(signal[first : first + block])
        emotions.finish()

    figures = {"seconds": FILE_SECONDS, "hop_s": 0.5, "block_s": 0.1}
    for name, model in students.items():
        figures[f"stream_{name}"] = {"real_time_factor": median_time(repeats, lambda: stream(model)) / FILE_SECONDS}
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    for name, graph in (("float32", float32), ("int8", int8)):
        model = waveform_model(graph, features, params.evaluate).SerializeToString()
        session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        wall = median_time(repeats, lambda: session.run(["probabilities"], {WAVEFORM_INPUT: signal}))
        figures[f"waveform_graph_{name}"] = {
            "real_time_factor": wall / FILE_SECONDS,
            "stride_s": params.evaluate.stride_s,
            "graph_bytes": len(model),
        }
    return figures


def print_stream_speed(figures: dict) -> None:
    print(
        f"\nstreaming {figures['seconds']:g} s fed {figures['block_s']:g} s at a time, a distribution every "
        f"{figures['hop_s']:g} s; real-time factor (processing / audio time, one core):"
    )
    for name in ("torch", "onnx_float32", "onnx_int8"):
        print(f"  stream, {name:24s} {figures[f'stream_{name}']['real_time_factor']:.4f}")
    for name in ("float32", "int8"):
        figure = figures[f"waveform_graph_{name}"]
        print(
            f"  waveform graph, {name:15s} {figure['real_time_factor']:.4f}  (whole file, windows every "
            f"{figure['stride_s']:g} s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--student",
        type=Path,
        help="a student.safetensors (default: a random 8-class one, as speed does not depend on the weights)",
    )
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument(
        "--agreement-files", type=int, default=10, help="60 s files per corpus for the stride comparison (0: skip it)"
    )
    parser.add_argument("--memory-minutes", type=float, nargs="+", default=[0.05, 10, 60])
    parser.add_argument("--memory-only", action="store_true", help="measure only the peak memory")
    parser.add_argument("--stream-only", action="store_true", help="measure only streaming and the waveform graph")
    args = parser.parse_args()
    torch.set_num_threads(1)
    keep_freed_buffers()  # what the pipeline and `liser predict` run with
    params = load_params(REPO / "params.yaml")
    features = params.features

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        checkpoint = args.student
        if checkpoint is None:
            checkpoint = scratch / "student.safetensors"
            save_student(checkpoint, Student(StudentConfig(speech_classes=8)), [f"class{i}" for i in range(8)])
        if args.stream_only:
            streaming = stream_speed(checkpoint, params, max(3, args.repeats // 5))
            print(describe_machine(threads=1) + f"; onnxruntime {onnxruntime.__version__}")
            print_stream_speed(streaming)
            figures = {"machine": describe_machine(threads=1), "onnxruntime": onnxruntime.__version__, **streaming}
            write_json(RESULTS.with_name("inference_stream.json"), figures)
            return
        memory = peak_memory_mb(checkpoint, args.memory_minutes, scratch)
        print("peak memory of liser predict (0.1 s stride, 16 kHz):")
        for length, figure in memory.items():
            print(f"  {length:10s} {figure['peak_mb']:7.0f} MB  ({figure['seconds']:.0f} s)")
        if args.memory_only:
            write_json(RESULTS.with_name("inference_memory.json"), {"machine": describe_machine(), "peak": memory})
            return
        export_student(checkpoint, scratch / "student.onnx", params.features, params.evaluate)
        predictors = {
            "torch": {s: Predictor.load(checkpoint, params.features, params.evaluate, stride_s=s) for s in STRIDES_S},
            "onnxruntime": {
                s: Predictor.load(scratch / "student.onnx", params.features, params.evaluate, stride_s=s, threads=1)
                for s in STRIDES_S
            },
        }
        student = predictors["torch"][0.1].students[0]
        runtime = predictors["onnxruntime"][0.1].students[0]
        latency = window_latency_ms(student, runtime, features.n_mels, features.crop_frames, args.repeats)

        audio = scratch / "60s-48k.wav"
        rng = np.random.default_rng(0)
        sf.write(audio, rng.normal(0, 0.1, int(FILE_SECONDS * 48000)).astype(np.float32), 48000, subtype="PCM_16")
        file_level = file_speed(predictors, audio, max(3, args.repeats // 5))
        effect = stride_effect(params, args.agreement_files, scratch) if args.agreement_files else {}
        streaming = stream_speed(checkpoint, params, max(3, args.repeats // 5))

    figures = {
        "machine": describe_machine(threads=1),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "ms_per_window": latency,
        "file_level": file_level,
        "stride_effect_vs_0.1s": effect,
        "peak_memory_mb": memory,
        "streaming": streaming,
    }
    print(f"{figures['machine']}; onnxruntime {figures['onnxruntime']}")
    print("\nms per 3 s window          torch   onnxruntime")
    for batch, ms in latency.items():
        print(f"  {batch:24s} {ms['torch']:6.2f}   {ms['onnxruntime']:6.2f}")
    front_end = file_level["read_and_logmel_x_realtime"]
    print(f"\n{FILE_SECONDS:g} s file at 48 kHz: read + resample + log-Mel alone {front_end:.0f}x real time")
    print("  stride   windows   torch x real time   onnxruntime x real time")
    for stride in STRIDES_S:
        by_torch, by_onnx = file_level[f"torch_stride_{stride:g}s"], file_level[f"onnxruntime_stride_{stride:g}s"]
        print(
            f"  {stride:5.2f} s  {by_torch['windows']:7d}   {by_torch['x_realtime']:17.0f}   "
            f"{by_onnx['x_realtime']:23.0f}"
        )
    for corpus, by_stride in effect.items():
        print(
            f"\nstride vs 0.1 s, {corpus} fold-0 student, {args.agreement_files} files of {FILE_SECONDS:g} s "
            "of its test speech:"
        )
        for stride, change in by_stride.items():
            print(
                f"  {stride:12s} max |probability change| {change['max_abs_probability_change']:.3f}, "
                f"same label {change['labels_agreeing']}"
            )
    print_stream_speed(streaming)
    write_json(RESULTS, figures)
    print(f"\nsaved to {RESULTS}")


if __name__ == "__main__":
    main()
