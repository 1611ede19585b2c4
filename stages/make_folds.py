"""Stage `folds`: speaker-independent cross-validation folds of a corpus."""

import argparse

import pandas as pd

from liser.files import write_csv
from liser.folds import speaker_folds
from liser.logs import configure_logging
from liser.params import load_params

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--manifest", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()
configure_logging()
cv = load_params().cv
folds = speaker_folds(pd.read_parquet(args.manifest), cv.n_folds, cv.seed)
write_csv(args.out, folds)
