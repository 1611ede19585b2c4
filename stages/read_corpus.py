"""Stage `corpus`: read a labeled corpus as distributed into one table; report what was skipped."""

import argparse

from liser.corpora import read_corpus
from liser.logs import configure_logging
from liser.params import load_params

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--corpus", required=True)
parser.add_argument("--manifest", required=True)
parser.add_argument("--rejected", required=True)
parser.add_argument("--metrics", required=True)
args = parser.parse_args()
configure_logging()
params = load_params()
table = read_corpus(args.corpus, params.corpora.corpus(args.corpus))
table.write(args.manifest, args.rejected, args.metrics)
