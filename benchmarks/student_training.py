"""Student training throughput on the demo's data: training items (3 s crops) per second, with and without
distillation, in float32 and under bfloat16 autocast (`train.precision`), at 1 and 2 torch threads, and for two
folds trained at once in two processes (the demo's setting).

Needs the demo's features and softmaxes (`dvc repro` first).  Prints and saves
benchmarks/results/student_training.json.

    python benchmarks/student_training.py [--corpus crema_d] [--epochs 3]
"""

import os

os.environ.setdefault("TQDM_DISABLE", "1")

import argparse
import multiprocessing
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
import torch

from liser.features import FeatureStore
from liser.files import write_json
from liser.folds import fold_utterances
from liser.manifests import read_manifest
from liser.params import load_params
from liser.students.configurations import configuration, lambda_candidates
from liser.students.crossval import StudentInputs, fold_unlabeled_set, labeled_set, student_config
from liser.students.evaluate import windowing
from liser.students.population import Member, train_population

RESULTS = Path(__file__).parent / "results" / "student_training.json"
DATA = Path("data")


def inputs(corpus: str) -> StudentInputs:
    return StudentInputs(
        DATA / "manifests" / f"{corpus}.parquet",
        DATA / "folds" / f"{corpus}.csv",
        DATA / "features" / corpus,
        DATA / "features" / "mspface",
        DATA / "softmaxes" / "speech" / corpus,
        DATA / "softmaxes" / "video.parquet",
    )


def train_once(corpus: str, name: str, fold: int, epochs: int, threads: int, precision: str) -> tuple[float, int]:
    """Seconds for ``epochs`` epochs (validation included) and the training items each epoch draws."""
    params = load_params()
    settings = {"epochs": epochs, "threads": threads, "precision": precision}
    params = params.model_copy(update={"train": params.train.model_copy(update=settings)})
    run = configuration(name)
    where = inputs(corpus)
    utterances = pd.read_parquet(where.manifest)
    roles = pd.read_csv(where.folds, dtype={"speaker": str})
    store = FeatureStore(where.features)
    train, validation = (
        labeled_set(fold_utterances(utterances, roles, fold, r), store) for r in ("train", "validation")
    )
    objective = run.objective(*lambda_candidates(run, params.loss)[0], params.loss.class_reduction)
    unlabeled = fold_unlabeled_set(where, fold, run, params.features.hop_s) if objective.distils else None
    member = Member(f"{name} fold{fold}", train, validation, objective, unlabeled, seed=params.train.seeds[0])
    config = student_config(read_manifest(where.manifest).classes, params.student, params.features)
    start = time.perf_counter()
    train_population([member], config, params.train, windowing(params.features, params.evaluate))
    return time.perf_counter() - start, len(train.labels) + (0 if unlabeled is None else len(unlabeled))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="crema_d")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    figures: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "torch": torch.__version__,
        "corpus": args.corpus,
        "epochs": args.epochs,
    }
    train_once(args.corpus, "no-dstl", 0, 1, 1, "float32")  # warm-up: first-call set-up is not throughput
    for name in ("no-dstl", "vid-sp-dstl"):
        for precision in ("float32", "bfloat16"):
            for threads in (1, 2):
                seconds, items = train_once(args.corpus, name, 0, args.epochs, threads, precision)
                figures[f"{name}_{precision}_threads{threads}_items_per_s"] = items * args.epochs / seconds
                figures[f"{name}_items_per_epoch"] = items
            with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
                runs = list(
                    pool.map(
                        train_once, [args.corpus] * 2, [name] * 2, [0, 1], [args.epochs] * 2, [1, 1], [precision] * 2
                    )
                )
            # each process times its own training, so interpreter start-up and imports are not counted
            seconds = max(seconds for seconds, _ in runs)
            figures[f"{name}_{precision}_2_processes_x_1_thread_items_per_s"] = (
                sum(items for _, items in runs) * args.epochs / seconds
            )
    for key, value in figures.items():
        print(f"{key:48s} {value:.1f}" if isinstance(value, float) else f"{key:48s} {value}")
    write_json(RESULTS, figures)
    print(f"saved to {RESULTS}")


if __name__ == "__main__":
    main()
