"""Student training at the paper's scale, on synthetic data of the paper's sizes (no corpus needed): training
crops per second, per core and per device, for

- the engine with one student (a population of 1, the Student module itself),
- populations of 5, 25 and 125 students trained as one batched model,

each in float32 and with ``precision: auto``; then the projected wall time of the paper's whole protocol (Table 2,
Table 3, Figure 2, every λ candidate of the grid, 5 folds, 50 epochs) on this machine.  Prints the figures and
saves benchmarks/results/paper_scale.json (with the machine they came from).

    python benchmarks/paper_scale.py [--device auto] [--threads N] [--steps 16] [--sizes 1 5 25 125]
"""

import argparse
import math
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

import numpy as np
import psutil
import torch

from liser.files import write_json
from liser.models.student import StudentConfig
from liser.params import load_params
from liser.runtime import describe_machine, resolve_device, resolve_precision
from liser.students.data import LabeledSet, UnlabeledSet
from liser.students.evaluate import Windowing
from liser.students.objective import Objective
from liser.students.population import Member, train_population

RESULTS = Path(__file__).resolve().parent / "results" / "paper_scale.json"
WINDOWING = Windowing(window_frames=94, stride_frames=3.125, pad_value=-13.8, batch_size=64)
CONFIG = StudentConfig(speech_classes=8, video_classes=7)
BATCH = 25

# The paper's data: RAVDESS 1,440 and CREMA-D 7,442 utterances (3-5 s), ~18,000 MSP-Face segments (~9 s);
# a fold trains on 3 of 5 speaker groups, validates on one.
CORPORA = {"ravdess": 1440, "crema_d": 7442}
UNLABELED = 18_000
TRAIN_SHARE, VALIDATION_SHARE = 0.6, 0.2
EPOCHS, FOLDS, GRID = 50, 5, 5
WINDOWS_PER_VALIDATION_UTTERANCE = 15  # 3-5 s at a 0.1 s stride, 3 s windows
FORWARD_SHARE = 1 / 3  # a scored window costs about a third of a trained crop (no backward, no optimiser)


def synthetic(n_labeled: int, n_unlabeled: int, seed: int = 0) -> tuple[LabeledSet, UnlabeledSet]:
    rng = np.random.default_rng(seed)
    labeled = LabeledSet(
        [f"u{i}" for i in range(n_labeled)],
        [rng.normal(-8, 2, (64, int(rng.integers(94, 157)))).astype(np.float32) for _ in range(n_labeled)],
        rng.integers(0, 8, n_labeled),
    )
    features = [rng.normal(-8, 2, (64, int(rng.integers(250, 313)))).astype(np.float32) for _ in range(n_unlabeled)]
    midpoints = [np.arange(8.3, f.shape[1], 16.67) for f in features]
    speech = [rng.dirichlet(np.ones(8), len(m)).astype(np.float32) for m in midpoints]
    video = [rng.dirichlet(np.ones(7), len(m)).astype(np.float32) for m in midpoints]
    return labeled, UnlabeledSet([f"s{i}" for i in range(n_unlabeled)], features, midpoints, speech, video)


def crops_per_second(run, crops: int) -> float:
    start = time.perf_counter()
    run()
    return crops / (time.perf_counter() - start)


def population(size, labeled, unlabeled, params) -> float:
    members = [
        Member(f"m{k}", labeled, None, Objective(lambda_sd=0.1 * (k + 1), lambda_vd=1.0), unlabeled, seed=k)
        for k in range(size)
    ]
    return crops_per_second(
        lambda: train_population(members, CONFIG, params, WINDOWING), size * (len(labeled.labels) + len(unlabeled))
    )


PHASES = ("data", "forward", "backward", "optimizer")
OPERATIONS = {  # the forward and backward operators, by the part of the student they belong to
    "convolutions": ("convolution", "conv2d", "mkldnn_conv"),
    "batch norm": ("batch_norm",),
    "ReLU and max-pool": ("relu", "threshold", "max_pool", "clamp_min"),
    "LSTM and heads": ("lstm", "bmm", "baddbmm", "sigmoid", "tanh", "linear", "addmm", "mm"),
}


def where_time_goes(size, labeled, unlabeled, params) -> dict[str, float]:
    """Share of a population's CPU time per training phase, and per part of the network in forward + backward."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as recorded:
        population(size, labeled, unlabeled, params)
    events = recorded.key_averages()
    phases = {p: sum(e.cpu_time_total for e in events if e.key == f"population.{p}") for p in PHASES}
    total = sum(phases.values()) or 1.0
    shares = {f"phase {p}": v / total for p, v in phases.items()}
    operators = {
        part: sum(
            e.self_cpu_time_total for e in events if e.key.startswith("aten::") and any(n in e.key for n in names)
        )
        for part, names in OPERATIONS.items()
    }
    network = phases["forward"] + phases["backward"] or 1.0
    shares.update({f"network {part}": v / network for part, v in operators.items()})
    return shares


def protocol_crops() -> dict[str, float]:
    """Training crops and validation windows of the paper's whole protocol, with λ chosen from the grid."""
    runs = []  # (corpus, labeled share, distils, candidates, extra distillation-only epochs)
    for corpus in CORPORA:
        runs += [(corpus, 1.0, False, 1, 0)]  # no-dstl
        runs += [(corpus, 1.0, True, GRID, 0)] * 2  # vid-dstl, sp-dstl
        runs += [(corpus, 1.0, True, GRID * GRID, 0)] * 2  # vid-sp-dstl, conf-vid-sp-dstl
        runs += [(corpus, 1.0, True, GRID, 0)] * 2  # distill-ce per teacher
        runs += [(corpus, 1.0, False, GRID, EPOCHS)] * 2  # two-stage per teacher: distillation alone, then labels
        for share in (0.25, 0.5, 0.75):
            runs += [(corpus, share, False, 1, 0), (corpus, share, True, GRID * GRID, 0)]
    students, crops, windows = 0, 0.0, 0.0
    for corpus, share, distils, candidates, distillation_epochs in runs:
        labeled = CORPORA[corpus] * TRAIN_SHARE * share
        per_epoch = labeled + (UNLABELED if distils else 0)
        students += candidates * FOLDS
        crops += candidates * FOLDS * (EPOCHS * per_epoch + distillation_epochs * UNLABELED)
        windows += candidates * FOLDS * EPOCHS * CORPORA[corpus] * VALIDATION_SHARE * WINDOWS_PER_VALIDATION_UTTERANCE
    return {"students": students, "training_crops": crops, "validation_windows": windows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--steps", type=int, default=16, help="optimiser steps timed per member")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 5, 25, 125])
    parser.add_argument("--repeats", type=int, default=2, help="timings per figure; the best is kept")
    parser.add_argument(
        "--profile",
        type=int,
        metavar="MEMBERS",
        help="where a population of MEMBERS spends its time (the profiler's "
        "own record of a population of 25 outgrew 24 GiB)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    per_device = device.type == "cuda"
    # each member trains `steps` batches of the paper's items (3-5 s utterances, ~9 s segments with 16-frame
    # window targets), a twentieth labeled as in a distilled RAVDESS run (864 + 18,000 items an epoch)
    n_labeled = max(1, args.steps * BATCH // 20)
    labeled, unlabeled = synthetic(n_labeled, args.steps * BATCH - n_labeled)
    figures: dict = {"machine": describe_machine(args.threads), "device": str(device), "rows": []}
    memory = psutil.virtual_memory().available if not per_device else torch.cuda.mem_get_info(device)[0]
    for precision in ("float32", "auto"):
        chosen = resolve_precision(precision, device)
        params = load_params(REPO / "params.yaml").train.model_copy(
            update=dict(
                lr=1e-4,
                epochs=1,
                batch_size=BATCH,
                seeds=[0],
                threads=args.threads,
                device=str(device),
                precision=chosen,
                population=1,
            )
        )
        small_labeled = LabeledSet(labeled.utterances[:2], labeled.features[:2], labeled.labels[:2])
        small = UnlabeledSet(
            *(
                part[:23]
                for part in (
                    unlabeled.segments,
                    unlabeled.features,
                    unlabeled.window_midpoints,
                    unlabeled.speech,
                    unlabeled.video,
                )
            )
        )
        rows = []
        for size in args.sizes:
            needed = size * BATCH * 64 * 64 * 94 * 4 * 6  # the first block's activations, kept for backward
            if needed > 0.6 * memory:
                print(f"population {size}: skipped, needs ~{needed / 2**30:.0f} GiB of {memory / 2**30:.0f} free")
                continue
            population(size, small_labeled, small, params)  # warm-up
            rows.append(
                (
                    f"population of {size}" if size > 1 else "one student",
                    size,
                    population(size, labeled, unlabeled, params),
                )
            )
        for name, size, rate in rows:
            row = {
                "engine": name,
                "members": size,
                "precision": precision,
                "chosen": chosen,
                "crops_per_s": rate,
                "crops_per_s_per_core": None if per_device else rate / args.threads,
            }
            figures["rows"].append(row)
            per = f"{rate:9.0f} crops/s" + ("" if per_device else f" ({rate / args.threads:6.0f} per core)")
            print(f"{precision:8s} ({chosen:8s}) {name:28s} {per}", flush=True)
        if args.profile:
            largest = args.profile
            shares = where_time_goes(largest, labeled, unlabeled, params)
            figures.setdefault("where_time_goes", {})[f"population of {largest}, {precision}"] = shares
            print(
                f"  where a population of {largest} spends its time ({precision}): "
                + ", ".join(f"{k} {v:.0%}" for k, v in shares.items())
            )
    protocol = protocol_crops()
    best = max(figures["rows"], key=lambda r: r["crops_per_s"])
    work = protocol["training_crops"] + FORWARD_SHARE * protocol["validation_windows"]
    figures["protocol"] = {**protocol, "best": best, "projected_hours": work / best["crops_per_s"] / 3600}
    print(
        f"paper protocol: {protocol['students']:,} students, {protocol['training_crops'] / 1e9:.2f} billion training "
        f"crops, {protocol['validation_windows'] / 1e9:.2f} billion validation windows\n"
        f"projected on this machine: {figures['protocol']['projected_hours']:,.0f} h with {best['engine']} "
        f"({best['precision']}); {math.ceil(figures['protocol']['projected_hours'] / 24):,} days"
    )
    write_json(RESULTS, figures)
    print(f"saved to {RESULTS} ({figures['machine']})")


if __name__ == "__main__":
    main()
