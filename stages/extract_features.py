"""Stage `features`: log-Mel features of every utterance of a corpus, in two compact files."""

import argparse

import pandas as pd

from liser.features import extract_corpus_features
from liser.files import write_csv
from liser.logs import configure_logging
from liser.params import load_params

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--manifest", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()
configure_logging()
problems = extract_corpus_features(pd.read_parquet(args.manifest), load_params().features, args.out)
write_csv(f"{args.out}/problems.csv", problems)
