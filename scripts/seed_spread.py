"""Does distillation beat no-dstl beyond the noise of one seed?  Trains both configurations (5 folds each) with
more training seeds than the pipeline's one and prints test UAR per corpus: mean ± std over folds for each seed,
and over seeds, and each configuration's paired comparison with no-dstl over folds x seeds (mean difference, its
95 % interval, pairs won; `liser.metrics.paired_difference`).  Needs the demo's `dvc repro` outputs (the
pipeline's own seed is read from its metrics, not retrained); writes under outputs/seed_spread/ (not a DVC output)
and benchmarks/results/seed_spread.json.

    python scripts/seed_spread.py [--seeds 0 1 2] [--configurations no-dstl vid-sp-dstl]
"""

import argparse
import logging
from pathlib import Path

import numpy as np

from liser.files import read_json, write_json
from liser.logs import configure_logging
from liser.metrics import paired_difference
from liser.params import load_params
from liser.students.configurations import configuration
from liser.students.crossval import StudentInputs, run_configuration

DATA = Path("data")

if __name__ == "__main__":  # folds train in spawned processes, which import this file
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--configurations", nargs="+", default=["no-dstl", "vid-sp-dstl"])
    args = parser.parse_args()
    configure_logging()
    params = load_params()
    results: dict = {}
    per_fold: dict = {}  # test UAR per corpus, configuration and (seed, fold)
    for corpus in params.corpora.use:
        inputs = StudentInputs(
            DATA / "manifests" / f"{corpus}.parquet",
            DATA / "folds" / f"{corpus}.csv",
            DATA / "features" / corpus,
            DATA / "features" / "mspface",
            DATA / "softmaxes" / "speech" / corpus,
            DATA / "softmaxes" / "video.parquet",
        )
        for name in args.configurations:
            for seed in args.seeds:
                pipeline = Path("metrics/students") / corpus / f"{name}.json"
                if seed == params.train.seed and pipeline.is_file():  # the pipeline's own run
                    summary = read_json(pipeline)
                else:
                    seeded = params.model_copy(update={"train": params.train.model_copy(update={"seed": seed})})
                    out = Path("outputs/seed_spread") / corpus / name / f"seed{seed}"
                    summary = run_configuration(corpus, configuration(name), seeded, inputs, out, out / "metrics.json")
                results.setdefault(corpus, {}).setdefault(name, {})[seed] = summary["test"]
                per_fold.setdefault(corpus, {}).setdefault(name, {}).update(
                    {(seed, fold): scores["test"]["uar"] for fold, scores in summary["folds"].items()}
                )
    lines, comparisons = [], {}
    for corpus, by_name in per_fold.items():
        for name, scores in by_name.items():
            if name == "no-dstl" or "no-dstl" not in by_name:
                continue
            pairs = sorted(set(scores) & set(by_name["no-dstl"]))
            paired = paired_difference([scores[p] for p in pairs], [by_name["no-dstl"][p] for p in pairs])
            lines.append(
                f"{corpus:8s} {name} - no-dstl over {paired.pairs} fold x seed pairs: {100 * paired.mean:+.2f} UAR "
                f"points, 95 % interval [{100 * paired.low:+.2f}, {100 * paired.high:+.2f}], won {paired.wins}"
            )
            comparisons.setdefault(corpus, {})[f"{name} vs no-dstl"] = paired.as_dict()
    for corpus, by_name in results.items():
        for name, by_seed in by_name.items():
            means = [t["uar"] for t in by_seed.values()]
            per_seed = ", ".join(f"seed {s}: {t['uar']:.3f} ± {t['uar_std']:.3f}" for s, t in by_seed.items())
            lines.append(
                f"{corpus:8s} {name:12s} UAR over seeds {np.mean(means):.3f} ± {np.std(means, ddof=1):.3f} ({per_seed})"
            )
            by_name[name] = {
                "per_seed": by_seed,
                "uar_mean_over_seeds": float(np.mean(means)),
                "uar_std_over_seeds": float(np.std(means, ddof=1)),
            }
    for corpus, compared in comparisons.items():
        results[corpus].update(compared)
    logging.info("\n%s", "\n".join(lines))
    print("\n".join(lines))
    write_json(Path("benchmarks/results/seed_spread.json"), results)
