"""Stage `folds`: speaker-independent cross-validation folds of a corpus."""

import argparse

from liser.files import write_csv
from liser.folds import speaker_folds
from liser.manifests import read_manifest
from liser.stage import run_stage

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--corpus", required=True, help="its name under corpora in params.yaml (for folds_by)")
parser.add_argument("--manifest", required=True)
parser.add_argument("--out", required=True)


def read_params(params, args):
    return params.cv, params.corpora.corpus(args.corpus)  # the entry's folds_by, which a user entry may leave out


def work(settings, args):
    cv, corpus = settings
    utterances = read_manifest(args.manifest).utterances
    write_csv(args.out, speaker_folds(utterances, cv.n_folds, cv.seed, corpus.folds_by == "session"))


if __name__ == "__main__":
    run_stage(parser, read_params, work)
