"""Stage `acquire`: download the MSP-Face videos in the lists and cut their segments."""

import argparse
from pathlib import Path

from liser.files import write_json
from liser.stage import run_stage
from liser.unlabeled.runs import obtain_segments

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--metrics", required=True)


def read_params(params, args):
    return params.mspface


def work(mspface, args):
    write_json(args.metrics, obtain_segments(mspface, args.out))


if __name__ == "__main__":
    run_stage(parser, read_params, work)
