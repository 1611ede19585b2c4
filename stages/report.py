"""Stage `report`: Tables 2 and 3 and Figure 2 of the paper from every student's cross-validation results."""

import argparse
from pathlib import Path

from liser.results.report import report
from liser.stage import run_stage

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--runs", type=Path, required=True)
parser.add_argument("--metrics", type=Path, required=True)
parser.add_argument("--summary", type=Path, required=True)
parser.add_argument("--plots", type=Path, required=True)
parser.add_argument("--reports", type=Path, required=True)


def read_params(params, args):
    return params.corpora.use, params.cv.folds, params.label_efficiency.percents


def work(settings, args):
    corpora, folds, percents = settings
    report(corpora, folds, percents, args.runs, args.metrics, args.summary, args.plots, args.reports)


if __name__ == "__main__":
    run_stage(parser, read_params, work)
