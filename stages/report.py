"""Stage `report`: Tables 2 and 3 and Figure 2 of the paper from every student's cross-validation results."""

import argparse
from pathlib import Path

from liser.logs import configure_logging
from liser.params import load_params
from liser.students.report import report

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--runs", type=Path, required=True)
parser.add_argument("--metrics", type=Path, required=True)
parser.add_argument("--summary", type=Path, required=True)
parser.add_argument("--plots", type=Path, required=True)
parser.add_argument("--reports", type=Path, required=True)
args = parser.parse_args()
configure_logging()
params = load_params()
report(
    params.corpora.use,
    params.cv.folds,
    params.label_efficiency.percents,
    args.runs,
    args.metrics,
    args.summary,
    args.plots,
    args.reports,
)
