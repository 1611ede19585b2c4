"""The GPU check: one command, prepared for the short time a GPU machine is lent.  On a GPU machine, run this first.

    python benchmarks/gpu_check.py                 # the GPU (CUDA), full sizes: a few minutes on one GPU
    python benchmarks/gpu_check.py --device cpu    # a small smoke version (the test suite runs it)

It writes benchmarks/results/gpu_check.json (or ``--out``) with the machine it ran on and:

1. **Engine agreement**: a population of students of different folds, lambdas, losses and seeds trained on the
   CPU (float32) and on the device (float32), each member's training loss per epoch, validation UAR and held-out
   predictions compared; then the device in bfloat16 autocast against float32 (the bounds of
   tests/test_population.py).
2. **Student throughput**: training crops per second for populations of 1, 25 and 125 at the paper's sizes, in
   float32 and with ``train.precision: auto``.
3. **Teachers at full size** with stand-in weights (random, the published architectures): the speech teacher's
   LoRA training step on 8 crops of 3 s (hubert-base's shape, ``HubertConfig()``), and S2D's window scoring (ViT-B/16
   at 224 px with its landmark branch, 16-frame windows) in windows per second.
4. **Peak memory** of the device (or of the process on a CPU) for each part.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import torch
from paper_scale import BATCH, CONFIG, WINDOWING, population, synthetic
from transformers import AutoModel, HubertConfig

from liser.files import write_json
from liser.metrics import score
from liser.models.s2d import S2DConfig
from liser.params import load_params
from liser.runtime import describe_machine, resolve_device, resolve_precision
from liser.students.data import LabeledSet
from liser.students.evaluate import utterance_logits
from liser.students.objective import Objective
from liser.students.population import Member, train_population
from liser.teachers.speech_model import build_speech_teacher
from liser.teachers.video_model import build_video_teacher, logits

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "gpu_check.json"
# tests/test_population.py's bounds: float32 on another device agrees like two CPU runs of the engine with the
# reference loop; bfloat16 autocast against float32
LOSS_RTOL, BFLOAT16_LOSS_RTOL, BFLOAT16_UAR_ATOL = 1e-2, 0.15, 0.2
SIZES = {
    "cuda": {"epochs": 3, "populations": [1, 25, 125], "steps": 8, "s2d": "full", "hubert": {}, "windows": 64},
    "cpu": {"epochs": 2, "populations": [1, 2], "steps": 1, "s2d": "small", "windows": 2},
}
# the smoke version's speech teacher: the demo base's shape (hubert-base's layers at 1/900 of its size)
SIZES["cpu"]["hubert"] = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128}
SIZES["cpu"]["hubert"] |= {"conv_dim": (32,) * 7, "classifier_proj_size": 32}


def peak_memory(device: torch.device) -> float:
    """GiB: the device's peak allocation since the last reset, or the process's resident size on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return psutil.Process().memory_info().rss / 2**30


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def known_answer(n: int, seed: int) -> LabeledSet:
    """Two of the 8 classes told apart by a band of energy, so validation and test UAR mean something."""
    rng = np.random.default_rng(seed)
    features, labels = [], []
    for i in range(n):
        label = i % 2
        logmel = rng.normal(-8, 1.5, (64, int(rng.integers(80, 140)))).astype(np.float32)
        logmel[(10, 40)[label] : (10, 40)[label] + 8] += 2.0
        features.append(logmel)
        labels.append(label)
    return LabeledSet([f"u{seed}-{i}" for i in range(n)], features, np.array(labels))


def members() -> list[Member]:
    """Students as a stage holds them: different folds, lambdas, distillation losses and seeds."""
    _, both = synthetic(1, 24, seed=3)  # segments with both teachers' window targets
    return [
        Member("no-dstl", known_answer(30, 1), known_answer(12, 2), Objective(), None, seed=0),
        Member("sp-dstl", known_answer(26, 3), known_answer(12, 4), Objective(lambda_sd=1.0), both, seed=1),
        Member("conf ce", known_answer(28, 5), known_answer(12, 6), Objective(0.5, 5.0, True, "ce"), both, seed=2),
    ]


def engine_agreement(device: torch.device, epochs: int) -> dict:
    base = load_params(REPO / "params.yaml").train
    params = base.model_copy(update={"lr": 3e-3, "batch_size": 8, "epochs": epochs, "seeds": [0], "population": 1})
    test = known_answer(40, 11)
    runs = {}
    for name, where, precision in (("cpu", "cpu", "float32"), ("device", str(device), "float32")):
        runs[name] = train_population(
            members(), CONFIG, params.model_copy(update={"device": where, "precision": precision}), WINDOWING
        )
    runs["bfloat16"] = train_population(
        members(), CONFIG, params.model_copy(update={"device": str(device), "precision": "bfloat16"}), WINDOWING
    )
    rows = []
    for k, member in enumerate(members()):
        cpu, on_device, autocast = runs["cpu"][k], runs["device"][k], runs["bfloat16"][k]
        uar = {
            name: score(test.labels, utterance_logits(result.model, test.features, WINDOWING)).uar
            for name, result in (("cpu", cpu), ("device", on_device), ("bfloat16", autocast))
        }
        loss_difference = float(np.max(np.abs(on_device.history["train_loss"] / cpu.history["train_loss"] - 1)))
        bfloat16_difference = float(
            np.max(np.abs(autocast.history["train_loss"] / on_device.history["train_loss"] - 1))
        )
        rows.append(
            {
                "member": member.name,
                "float32_loss_relative_difference": loss_difference,
                "float32_same_best_epoch": cpu.best_epoch == on_device.best_epoch,
                "float32_test_uar": [uar["cpu"], uar["device"]],
                "float32_agrees": loss_difference <= LOSS_RTOL,
                "bfloat16_loss_relative_difference": bfloat16_difference,
                "bfloat16_test_uar": uar["bfloat16"],
                "bfloat16_agrees": bfloat16_difference <= BFLOAT16_LOSS_RTOL
                and abs(uar["bfloat16"] - uar["device"]) <= BFLOAT16_UAR_ATOL,
            }
        )
    return {"members": rows, "agrees": all(r["float32_agrees"] and r["bfloat16_agrees"] for r in rows)}


def student_throughput(device: torch.device, sizes: dict) -> list[dict]:
    base = load_params(REPO / "params.yaml").train
    n_labeled = max(1, sizes["steps"] * BATCH // 20)
    labeled, unlabeled = synthetic(n_labeled, sizes["steps"] * BATCH - n_labeled)
    rows = []
    for precision in ("float32", "auto"):
        chosen = resolve_precision(precision, device)
        params = base.model_copy(
            update={"lr": 1e-4, "epochs": 1, "batch_size": BATCH, "device": str(device), "precision": chosen}
        )
        warm = synthetic(2, 23)
        for size in sizes["populations"]:
            population(size, *warm, params)  # warm-up: kernels, allocator
            reset_peak(device)
            rate = population(size, labeled, unlabeled, params)
            rows.append(
                {
                    "members": size,
                    "precision": precision,
                    "chosen": chosen,
                    "crops_per_s": rate,
                    "peak_memory_gib": peak_memory(device),
                }
            )
            print(f"  population of {size:3d}, {precision:7s} ({chosen}): {rate:9.0f} crops/s", flush=True)
    return rows


def speech_teacher_step(device: torch.device, shape: dict, repeats: int = 3) -> dict:
    teacher_params = load_params(REPO / "params.yaml").speech_teacher
    with tempfile.TemporaryDirectory() as folder:
        torch.manual_seed(0)
        AutoModel.from_config(HubertConfig(**shape)).save_pretrained(folder)  # random weights, the base's layout
        model = build_speech_teacher(folder, 8, teacher_params, seed=0).to(device).train()
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=1e-4)
    waveforms = torch.randn(8, 3 * 16000, device=device) * 0.1
    labels = torch.arange(8, device=device) % 8
    reset_peak(device)
    times = []
    for _ in range(repeats + 1):  # the first is a warm-up
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            output = model(input_values=waveforms).logits
        loss = torch.nn.functional.cross_entropy(output.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "trained_parameters": sum(p.numel() for p in trained),
        "step_s": float(np.median(times[1:])),
        "peak_memory_gib": peak_memory(device),
    }


@torch.inference_mode()
def s2d_windows(device: torch.device, size: str, windows: int) -> dict:
    config = S2DConfig.full() if size == "full" else S2DConfig.small()
    model = build_video_teacher(config, seed=0).to(device).eval()
    batch = min(32, windows)
    clips = torch.rand(batch, 3, config.frames, config.image_size, config.image_size, device=device)
    logits(model, clips[:2])  # warm-up
    reset_peak(device)
    start = time.perf_counter()
    for _ in range(-(-windows // batch)):
        logits(model, clips)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    return {
        "size": size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "batch": batch,
        "windows_per_s": batch * -(-windows // batch) / seconds,
        "peak_memory_gib": peak_memory(device),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (the check) or cpu (a small smoke version)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    device = resolve_device(args.device)
    sizes = SIZES[device.type]
    started = time.perf_counter()
    figures: dict = {"machine": describe_machine(torch.get_num_threads()), "device": str(device)}
    print(f"GPU check on {figures['machine']}, device {device}", flush=True)
    figures["engine"] = engine_agreement(device, sizes["epochs"])
    print(f"  engine agrees with the CPU and bfloat16 within bounds: {figures['engine']['agrees']}", flush=True)
    figures["students"] = student_throughput(device, sizes)
    figures["speech_teacher"] = speech_teacher_step(device, sizes["hubert"])
    print(f"  speech teacher LoRA step: {figures['speech_teacher']['step_s']:.3f} s", flush=True)
    figures["video_teacher"] = s2d_windows(device, sizes["s2d"], sizes["windows"])
    print(f"  S2D ({sizes['s2d']}) window scoring: {figures['video_teacher']['windows_per_s']:.1f} windows/s")
    figures["seconds"] = time.perf_counter() - started
    write_json(args.out, figures)
    print(f"saved to {args.out} ({figures['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
