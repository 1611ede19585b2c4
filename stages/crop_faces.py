"""Stage `faces`: detect, align and crop the face in every frame of every obtained segment."""

import argparse
from pathlib import Path

from liser.files import write_json
from liser.stage import run_stage
from liser.unlabeled.runs import crop_faces

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--acquired", type=Path, required=True)
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--metrics", required=True)


def read_params(params, args):
    return params.faces


def work(faces, args):
    write_json(args.metrics, crop_faces(args.acquired, faces, args.out))


if __name__ == "__main__":  # the face workers are spawned processes, which import this file
    run_stage(parser, read_params, work)
