"""The unlabeled corpus at VoxCeleb2's size: memory and time of the steps that see every window, and what a second
Ray worker brings to the steps that see every frame.

1. On synthetic metadata of 1 k, 10 k, 100 k and 1 M segments (3.4 to 11.7 s each, 15 windows on average, as
   VoxCeleb2's 1.09 M clips give 16.5 M windows), each step runs in a process of its own and its peak RSS and wall
   time are taken:
   - ``windows``: stage windows' work (the window table and the audio manifest from faces' face masks);
   - ``softmaxes``: both teachers' window-softmax tables written a part at a time (probabilities drawn at random:
     the table's cost, not the teachers') and read back whole, a batch at a time;
   - ``loader``: the students' unlabeled set built from a feature store of that many segments (its log-Mel file
     sparse: only the pages read take disk) and both tables, then 2,000 items drawn at random;
   - ``bank``: the training loop's unlabeled data: the set, its log-Mels streamed (``StreamedBank``, the
     population's bank beyond its in-memory limit) and 200 batches of 25 crops drawn as the loop draws them, then
     both teachers' window targets (held whole) for the same batches: time per batch, and peak RSS after the
     crops and at the end.
   Peak RSS should stay within 1.5x from 10 k up and time should grow linearly (seconds per million windows).
2. Faces (detect every 5th frame, crops kept) on a Ray cluster of this machine with 1 and then 2 worker CPUs, the
   same segments: the speed-up, and the disk each segment's outputs take per hour of video, with and without its
   crops.
3. The video teacher's window scoring through Ray Data (small S2D, CPU actors), with 1 and then 2 actors.
Both are timed at two sizes: the speed-up of whole runs, and of the work alone (the larger size's extra time,
without what every run pays to start).

    python benchmarks/unlabeled_scale.py [--sizes 1000 10000 100000 1000000] [--skip-ray]
    python benchmarks/unlabeled_scale.py --sizes          # the Ray parts only

Figures go to benchmarks/results/unlabeled_scale.json with the machine they were measured on.
"""

import os

for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(variable, "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from liser.files import parquet_batches

RESULTS = Path(__file__).parent / "results" / "unlabeled_scale.json"
FPS, FRAMES, HOP_S, MELS = 30, 16, 0.032, 64
SPEECH = ("angry", "disgust", "fear", "happy", "neutral", "sad")
VIDEO = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
BATCH = 50_000


# --- synthetic inputs ---------------------------------------------------------------------------------------------


def make_face_masks(folder: Path, segments: int, seed: int = 0) -> None:
    """face_masks.parquet of ``segments`` kept segments: 102 to 351 frames (3.4 to 11.7 s), faces in most frames."""
    from liser.unlabeled.face_crops import FACE_MASK_BATCH
    from liser.unlabeled.windows import FACE_MASK_SCHEMA

    rng = np.random.default_rng(seed)
    with pq.ParquetWriter(folder / "face_masks.parquet", FACE_MASK_SCHEMA) as writer:
        for start in range(0, segments, FACE_MASK_BATCH):  # row groups as stage faces writes them
            count = min(FACE_MASK_BATCH, segments - start)
            frames = rng.integers(102, 352, count)
            names = [f"id{(start + k) // 180:05d}_{start + k:011d}_00001" for k in range(count)]
            found = np.where(rng.random(int(frames.sum())) < 0.9, ord("1"), ord("0")).astype(np.uint8).tobytes()
            ends = np.cumsum(frames)
            masks = [found[end - n : end].decode("ascii") for end, n in zip(ends, frames)]
            columns = {
                "segment": names,
                "frames": frames,
                "face": masks,
                "speaker": [name[:7] for name in names],
                "gender": ["female"] * count,
                "duration": frames / FPS,
                "audio_file": [f"data/acquired/segments/{name}.wav" for name in names],
            }
            writer.write_table(pa.table(columns, schema=FACE_MASK_SCHEMA))


def make_store(folder: Path) -> None:
    """A feature store for the manifest's segments: index.parquet, and a sparse logmel.npy of the right size."""
    from liser.features import _npy_header

    store = folder / "store"
    store.mkdir(exist_ok=True)
    offset = 0
    schema = pa.schema([("utterance", pa.string()), ("offset", pa.int64()), ("frames", pa.int64())])
    with pq.ParquetWriter(store / "index.parquet", schema) as writer:
        for batch in parquet_batches(folder / "manifest.parquet", BATCH):
            frames = (batch["duration"].to_numpy() / HOP_S).astype(np.int64) + 1
            offsets = offset + np.concatenate([[0], np.cumsum(frames)[:-1]])
            offset += int(frames.sum())
            writer.write_table(pa.table({"utterance": batch["utterance"], "offset": offsets, "frames": frames}, schema))
    with open(store / "logmel.npy", "wb") as handle:
        handle.write(_npy_header(offset, MELS))
        handle.truncate(128 + offset * MELS * 4)


# --- the steps, each in its own process -------------------------------------------------------------------------


def step_windows(folder: Path) -> dict:
    from liser.unlabeled.windows import cut_windows

    return cut_windows(
        folder / "face_masks.parquet", FRAMES, FPS, folder / "windows.parquet", folder / "manifest.parquet"
    )


def step_softmaxes(folder: Path) -> dict:
    from liser.window_tables import SoftmaxWriter, softmax_batches, softmax_frame

    rng = np.random.default_rng(1)
    with (
        SoftmaxWriter(folder / "speech.parquet", SPEECH, "speech", face_fraction=False) as speech,
        SoftmaxWriter(folder / "video.parquet", VIDEO, "video", face_fraction=True) as video,
    ):
        for windows in parquet_batches(folder / "windows.parquet", BATCH):
            for writer, classes in ((speech, SPEECH), (video, VIDEO)):
                raw = rng.random((len(windows), len(classes)), dtype=np.float32)
                probabilities = raw / raw.sum(axis=1, keepdims=True)
                fraction = windows["face_fraction"].to_numpy() if writer is video else None
                writer.write(softmax_frame(windows, probabilities, classes, fraction))
    read = {}
    for name in ("speech", "video"):
        _, _, batches = softmax_batches(folder / f"{name}.parquet")
        rows = p_max = 0
        for frame in batches:
            rows, p_max = rows + len(frame), p_max + float(frame["p_max"].sum())
        read[name] = {"windows": rows, "mean_p_max": p_max / rows}
    return read


def step_loader(folder: Path) -> dict:
    from liser.features import FeatureStore
    from liser.students.data import unlabeled_set

    unlabeled = unlabeled_set(
        FeatureStore(folder / "store"),
        HOP_S,
        folder / "speech.parquet",
        folder / "video.parquet",
        min_face_fraction=0.5,
    )
    rng = np.random.default_rng(2)
    checksum = 0.0
    for item in rng.integers(0, len(unlabeled), 2000):
        start = rng.integers(0, max(1, unlabeled.features[item].shape[1] - 94))
        checksum += float(unlabeled.features[item][:, start : start + 94].sum())
        checksum += float(unlabeled.video[item].mean() + unlabeled.speech[item].mean())
        checksum += float(unlabeled.window_midpoints[item][0]) + len(unlabeled.segments[item])
    return {"segments": len(unlabeled), "draws": 2000, "checksum": checksum}


def peak_rss_mb() -> float:
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")) / 1024


def step_bank(folder: Path, batches: int = 200, batch_size: int = 25) -> dict:
    """The training loop's unlabeled data at this size: the set, its log-Mels streamed (the bank the population
    uses beyond its in-memory limit) and both teachers' window targets, ``batches`` batches of crops drawn as the
    loop draws them; peak RSS after the bank's batches, then after the targets' (streamed too, as the population
    streams them with its log-Mels)."""
    import torch

    from liser.features import FeatureStore
    from liser.students.batching import StreamedBank, plan_batch, window_targets
    from liser.students.data import unlabeled_set

    unlabeled = unlabeled_set(
        FeatureStore(folder / "store"), HOP_S, folder / "speech.parquet", folder / "video.parquet", 0.5
    )
    start = time.perf_counter()
    bank = StreamedBank([unlabeled.features])
    build_s = time.perf_counter() - start
    rng = np.random.default_rng(2)
    plans = [
        plan_batch(rng.integers(0, len(bank), batch_size), 0, np.zeros(0, int), bank.lengths, 94, rng)
        for _ in range(batches)
    ]
    checksum = 0.0
    start = time.perf_counter()
    for plan in plans:
        checksum += float(bank.crops(torch.from_numpy(plan.items), torch.from_numpy(plan.starts), 94, -13.8).sum())
    crops_s = time.perf_counter() - start
    bank_rss = peak_rss_mb()
    start = time.perf_counter()
    targets = window_targets(unlabeled, "cpu", streamed=True)
    targets_build_s = time.perf_counter() - start
    start = time.perf_counter()
    for plan in plans:
        for table in targets.values():
            checksum += float(table.targets(torch.from_numpy(plan.items), torch.from_numpy(plan.starts), 94)[0].sum())
    targets_s = time.perf_counter() - start
    return {
        "segments": len(unlabeled),
        "batches": batches,
        "batch_size": batch_size,
        "bank_build_s": build_s,
        "crops_ms_per_batch": crops_s / batches * 1e3,
        "bank_peak_rss_mb": bank_rss,
        "targets_build_s": targets_build_s,
        "targets_ms_per_batch": targets_s / batches * 1e3,
        "checksum": checksum,
    }


STEPS = {"windows": step_windows, "softmaxes": step_softmaxes, "loader": step_loader, "bank": step_bank}


def measured(step: str, folder: Path) -> dict:
    """Run one step in a child process: its wall time (start-up included), its peak RSS (VmHWM, taken by the child
    itself) and what it returned."""
    command = [sys.executable, __file__, "--step", step, "--folder", str(folder)]
    start = time.perf_counter()
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, text=True, env={**os.environ, "LISER_LOG_LEVEL": "WARNING"}
    )
    output = child.stdout.read()
    if child.wait() != 0:
        raise RuntimeError(f"step {step} failed ({child.returncode})")
    seconds = time.perf_counter() - start
    return {"seconds": seconds, **json.loads(output.splitlines()[-1])}


STEP_NAMES = ("windows_step", "softmaxes_step", "loader_step", "bank_step")


def scale(sizes: list[int], work: Path) -> dict:
    rows = {}
    for size in sizes:
        folder = work / f"n{size}"
        folder.mkdir(parents=True)
        make_face_masks(folder, size)
        row = {"windows_step": measured("windows", folder)}
        windows = row["windows_step"]["result"]["windows"]
        row["softmaxes_step"] = measured("softmaxes", folder)
        make_store(folder)
        row["loader_step"] = measured("loader", folder)
        row["bank_step"] = measured("bank", folder)
        row["windows"] = windows
        for step in STEP_NAMES:
            row[step]["seconds_per_million_windows"] = row[step]["seconds"] / windows * 1e6
        rows[size] = row
        print(
            f"{size:>9} segments {windows:>10} windows | "
            + " | ".join(
                f"{step[:-5]} {row[step]['seconds']:7.1f} s {row[step]['peak_rss_mb']:6.0f} MB" for step in STEP_NAMES
            )
            + f" | streamed crops {row['bank_step']['result']['crops_ms_per_batch']:.1f} ms/batch, bank"
            f" {row['bank_step']['result']['bank_peak_rss_mb']:.0f} MB",
            flush=True,
        )
        shutil.rmtree(folder)
    base = min((size for size in rows if size >= 10_000), default=None)
    if base is not None:
        for row in rows.values():
            for step in STEP_NAMES:
                row[step]["rss_over_10k"] = row[step]["peak_rss_mb"] / rows[base][step]["peak_rss_mb"]
    return {str(size): row for size, row in rows.items()}


# --- faces and the video teacher on 1 and 2 Ray workers ---------------------------------------------------------


def moving_face(path: Path, frames: int) -> None:
    from skimage import data

    from liser.ffmpeg import write_video

    photo = data.astronaut()
    write_video(path, [photo[t // 3 : t // 3 + 256, 60 + t : 60 + t + 256] for t in range(frames)], FPS, crf=18)


def ray_workers(cpus: int, work, sizes: tuple[int, int]) -> dict[int, float]:
    """Wall time of ``work(runtime, size)`` at each of ``sizes`` on a one-node Ray cluster of this machine with
    ``cpus`` worker CPUs, after a warm-up run at the smaller size (workers started, libraries imported)."""
    from liser.cluster import LOOPBACK_ONLY
    from liser.params import RuntimeParams

    os.environ.update(LOOPBACK_ONLY)
    import ray
    from ray.cluster_utils import Cluster

    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": cpus, "include_dashboard": False})
    ray.init(address=nodes.address, logging_level="WARNING", log_to_driver=False)
    try:
        runtime = RuntimeParams(cluster="ray", ray_address=nodes.address, shared_root=None)
        work(runtime, sizes[0])
        times = {}
        for size in sizes:
            start = time.perf_counter()
            work(runtime, size)
            times[size] = time.perf_counter() - start
            print(f"{cpus} worker CPU(s), {size}: {times[size]:.1f} s (load average {os.getloadavg()[0]:.1f})")
        return times
    finally:
        ray.shutdown()
        nodes.shutdown()


def speedups(times: dict[int, dict[int, float]], sizes: tuple[int, int]) -> dict[str, float]:
    """2 workers over 1: whole runs at the larger size, and on the work alone, the added size's extra time (what
    each run pays to start, its actors' model loading included, cancels out)."""
    small, large = sizes
    return {
        "whole_run": times[1][large] / times[2][large],
        "work_alone": (times[1][large] - times[1][small]) / (times[2][large] - times[2][small]),
    }


def faces_on_ray(work_dir: Path, sizes: tuple[int, int] = (8, 16), frames: int = 150) -> dict:
    from liser.unlabeled.face_crops import crop_segments
    from liser.unlabeled.faces import CropOptions

    videos = work_dir / "videos"
    videos.mkdir()
    moving_face(videos / "seg_000.mp4", frames)
    for k in range(1, max(sizes)):
        shutil.copyfile(videos / "seg_000.mp4", videos / f"seg_{k:03d}.mp4")
    table = pd.DataFrame({"segment": [f"seg_{k:03d}" for k in range(max(sizes))], "speaker": "s"})
    table["video_file"] = [str(videos / f"{name}.mp4") for name in table["segment"]]
    options = CropOptions(detect_every=5)
    out = work_dir / "faces"

    def run(runtime, segments):
        shutil.rmtree(out, ignore_errors=True)
        crop_segments(table.head(segments), out, options, runtime=runtime)

    times = {cpus: ray_workers(cpus, run, sizes) for cpus in (1, 2)}
    segments = max(sizes)
    hours = segments * frames / FPS / 3600
    crops = sum(path.stat().st_size for path in out.glob("*.mp4"))
    tracks = sum(path.stat().st_size for path in (out / "tracks").glob("*.npz"))
    return {
        "segments": list(sizes),
        "seconds_of_video": [size * frames / FPS for size in sizes],
        "wall_s": {str(cpus): {str(size): t for size, t in by_size.items()} for cpus, by_size in times.items()},
        "speedup_2_over_1": speedups(times, sizes),
        "frames_per_s": {str(cpus): segments * frames / by_size[segments] for cpus, by_size in times.items()},
        "disk_mb_per_hour": {
            "keep_crops_true": (crops + tracks) / hours / 1e6,
            "keep_crops_false": tracks / hours / 1e6,
            "crops_alone": crops / hours / 1e6,
            "tracks_alone": tracks / hours / 1e6,
        },
        "video": f"copies of a 256 x 256, {FPS} fps, {frames}-frame H.264 clip of a moving face",
    }


def video_scoring_on_ray(work_dir: Path, sizes: tuple[int, int] = (48, 96)) -> dict:
    """The small S2D (random weights) scoring copies of a face clip of faces_on_ray's (9 windows each) through Ray
    Data, one thread per actor, on 1 and 2 worker CPUs."""
    import numpy as np
    import torch

    from liser.models.s2d import S2DConfig
    from liser.teachers.video_model import build_video_teacher
    from liser.teachers.video_windows import window_softmaxes
    from liser.unlabeled.windows import segment_windows

    faces = work_dir / "scoring_faces"
    faces.mkdir()
    clip = next((work_dir / "faces").glob("*.mp4"))
    names = [f"seg_{k:03d}" for k in range(max(sizes))]
    for name in names:
        shutil.copyfile(clip, faces / f"{name}.mp4")
    by_segment = [segment_windows(name, "s", np.ones(150, bool), FRAMES, FPS) for name in names]
    torch.set_num_threads(1)
    model = build_video_teacher(S2DConfig.small(), seed=0).eval()

    def windows(segments: int) -> pd.DataFrame:
        return pd.concat(by_segment[:segments]).reset_index(drop=True)

    def run(runtime, segments):
        window_softmaxes(model, windows(segments), faces, 8, device="cpu", runtime=runtime, threads=1)

    times = {cpus: ray_workers(cpus, run, sizes) for cpus in (1, 2)}
    counts = {size: len(windows(size)) for size in sizes}
    return {
        "model": "S2DConfig.small() (the demo's), random weights, batch 8, one thread per actor",
        "windows": [counts[size] for size in sizes],
        "wall_s": {str(cpus): {str(size): t for size, t in by_size.items()} for cpus, by_size in times.items()},
        "speedup_2_over_1": speedups(times, sizes),
        "windows_per_s": {str(cpus): counts[max(sizes)] / by_size[max(sizes)] for cpus, by_size in times.items()},
        "note": "a run starts its actors and loads the model in them; work_alone leaves that out",
    }


def vox_like_clip(path: Path, seconds: float = 10.0, fps: int = 25) -> tuple[int, Path]:
    """A VoxCeleb2-like clip (224 x 224, 25 fps, the face filling much of it, moving) and its listed face boxes."""
    import math

    import cv2
    from skimage import data

    from liser.ffmpeg import write_video

    photo = cv2.resize(data.astronaut()[:300, 80:380], (300, 300))
    count = int(seconds * fps)
    frames, boxes = [], []
    for i in range(count):
        dx, dy = 30 + 20 * math.sin(i / 20), 30 + 10 * math.cos(i / 15)
        frames.append(photo[int(dy) : int(dy) + 224, int(dx) : int(dx) + 224])
        boxes.append((0.25, 0.15, 0.45, 0.55))
    write_video(path, frames, fps, crf=23)
    table = path.with_suffix(".txt")
    rows = "".join(f"{k:06d} \t{x} \t{y} \t{w} \t{h} \n" for k, (x, y, w, h) in enumerate(boxes))
    table.write_text(f"Identity  : \tid00001\nReference : \taaaaaaaaaaa\n\nFRAME \tX \tY \tW \tH \n{rows}")
    return count, table


def faces_cost(work_dir: Path, seconds: float = 10.0) -> dict:
    """CPU seconds per second of a VoxCeleb2-like clip for the faces stage's per-segment work, on one core: detect
    on every frame, on every 5th, or none (listed boxes); crops kept or not (the encoder, a child, counted)."""
    import resource

    import cv2

    from liser.corpora.voxceleb2 import read_face_boxes
    from liser.unlabeled.faces import CropJob, CropOptions, crop_job

    cv2.setNumThreads(1)
    clip = work_dir / "vox_like.mp4"
    _, boxes = vox_like_clip(clip, seconds)
    listed = read_face_boxes(boxes)
    crop_job(CropJob("warm", str(clip), str(clip), CropOptions(detect_every=25), keep_crops=False))  # detector built
    rows = {}
    for name, options, keep in (
        ("detect_every_1", CropOptions(detect_every=1), True),
        ("detect_every_5", CropOptions(detect_every=5), True),
        ("listed_boxes", CropOptions(boxes="listed"), True),
        ("listed_boxes_no_crops", CropOptions(boxes="listed"), False),
        ("detect_every_5_no_crops", CropOptions(detect_every=5), False),
    ):
        before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        result = crop_job(CropJob("clip", str(clip), str(clip), options, keep_crops=keep, listed_boxes=listed))
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = sum(a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime for a, b in zip(after, before))
        rows[name] = {
            "cpu_s_per_video_s": cpu / seconds,
            "wall_s_per_video_s": wall / seconds,
            "kept": result.coverage.kept,
            "crops_kb_per_video_s": (len(result.clip) if result.clip else 0) / seconds / 1e3,
            "track_kb_per_video_s": len(result.track) / seconds / 1e3,
        }
        print(name, json.dumps(rows[name]), flush=True)
    return {"clip": f"224 x 224, 25 fps, {seconds:g} s, a moving face (VoxCeleb2-like)", "modes": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--skip-cost", action="store_true", help="skip the faces' CPU cost per second of video")
    parser.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        result = STEPS[args.step](args.folder)
        print(json.dumps({"result": result, "peak_rss_mb": peak_rss_mb()}))
        return

    from liser.files import write_json
    from liser.runtime import describe_machine

    # parts not run this time keep their earlier figures
    figures = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    figures["synthetic"] = __doc__.split("\n\n")[1]
    with tempfile.TemporaryDirectory(prefix="liser-scale-") as work:
        if args.sizes:
            figures["scale"] = {"machine": describe_machine(), "sizes": scale(args.sizes, Path(work))}
        if not args.skip_cost:
            figures["faces_cost"] = {"machine": describe_machine(), **faces_cost(Path(work))}
        if not args.skip_ray:
            figures["faces_on_ray"] = {"machine": describe_machine(), **faces_on_ray(Path(work))}
            print(json.dumps(figures["faces_on_ray"], indent=1))
            figures["video_scoring_on_ray"] = {"machine": describe_machine(), **video_scoring_on_ray(Path(work))}
            print(json.dumps(figures["video_scoring_on_ray"], indent=1))
    write_json(RESULTS, figures)
    print(f"saved to {RESULTS}")


if __name__ == "__main__":
    main()
