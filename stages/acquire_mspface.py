"""Stage `acquire`: obtain the unlabeled corpus's segments (download and cut MSP-Face or AVSpeech videos; check
VoxCeleb2's or a folder's files and take out their sound)."""

import argparse
from pathlib import Path

from liser.files import write_json
from liser.stage import run_stage
from liser.unlabeled.runs import obtain_segments

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--metrics", required=True)


def read_params(params, args):
    return params.unlabeled, params.mspface, params.runtime


def work(settings, args):
    write_json(args.metrics, obtain_segments(*settings, args.out))


if __name__ == "__main__":  # Ray's workers import this file
    run_stage(parser, read_params, work)
