"""Stage `aggregate`: UAR/WAR mean ± std over folds per corpus and configuration, confusion
and training-curve plot data, and a results table."""

import argparse
from pathlib import Path

from liser.logs import configure_logging
from liser.params import load_params
from liser.report import aggregate

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--configs", nargs="+", required=True)
parser.add_argument("--runs", type=Path, required=True)
parser.add_argument("--metrics", type=Path, required=True)
parser.add_argument("--summary", type=Path, required=True)
parser.add_argument("--plots", type=Path, required=True)
parser.add_argument("--results", type=Path, required=True)
args = parser.parse_args()
configure_logging()
params = load_params()
aggregate(params.corpora.use, args.configs, params.cv.folds, args.runs, args.metrics, args.summary, args.plots, args.results)
