"""Stage `no-dstl`: train a student on one fold of a corpus and score it on the fold's test speakers."""

import argparse
from pathlib import Path

from liser.crossval import run_fold
from liser.logs import configure_logging
from liser.params import load_params

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--corpus", required=True)
parser.add_argument("--fold", type=int, required=True)
parser.add_argument("--data", type=Path, required=True, help="folder with manifests/, folds/ and features/")
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--metrics", type=Path, required=True)
args = parser.parse_args()
configure_logging()
run_fold(
    args.corpus,
    args.fold,
    load_params(),
    manifest=args.data / "manifests" / f"{args.corpus}.parquet",
    folds=args.data / "folds" / f"{args.corpus}.csv",
    features=args.data / "features" / args.corpus,
    out=args.out,
    metrics=args.metrics,
)
