"""Stage `folds`: speaker-independent cross-validation folds of a corpus."""

import argparse

import pandas as pd

from liser.files import write_csv
from liser.folds import speaker_folds
from liser.logs import configure_logging
from liser.params import load_params

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--corpus", required=True, help="its name under corpora in params.yaml (for folds_by)")
parser.add_argument("--manifest", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()
configure_logging()
params = load_params()
cv = params.cv
by_session = params.corpora.corpus(args.corpus).folds_by == "session"
folds = speaker_folds(pd.read_parquet(args.manifest), cv.n_folds, cv.seed, by_session)
write_csv(args.out, folds)
