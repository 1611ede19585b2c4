"""Stage `features`: log-Mel features of every utterance of a corpus, in two compact files."""

import argparse

import pandas as pd

from liser.features import extract_corpus_features
from liser.stage import run_stage

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--manifest", required=True)
parser.add_argument("--out", required=True)


def read_params(params, args):
    return params.features


def work(features, args):
    extract_corpus_features(pd.read_parquet(args.manifest), features, args.out)


if __name__ == "__main__":
    run_stage(parser, read_params, work)
