"""Stage `corpus`: read a labeled corpus as distributed into one table; report what was skipped."""

import argparse

from liser.corpora.labeled import read_corpus
from liser.stage import run_stage

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--corpus", required=True)
parser.add_argument("--manifest", required=True)
parser.add_argument("--rejected", required=True)
parser.add_argument("--metrics", required=True)


def read_params(params, args):
    return params.corpora.corpus(args.corpus)


def work(corpus, args):
    read_corpus(args.corpus, corpus).write(args.manifest, args.rejected, args.metrics)


if __name__ == "__main__":
    run_stage(parser, read_params, work)
