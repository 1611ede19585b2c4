"""Stage `video_weights`: S2D's published checkpoint and MobileFaceNet's landmark weights, fetched once at pinned
revisions and checked against their SHA-256, when the video teacher starts from them."""

import argparse
from pathlib import Path

from liser.logs import errors_as_messages
from liser.stage import run_stage
from liser.teachers.weights import ChecksumMismatch, WeightsUnavailable, fetch_video_weights

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--out", type=Path, required=True)


def read_params(params, args):
    return params.video_weights, params.video_teacher.source == "published"


def work(settings, args):
    weights, published = settings
    with errors_as_messages(WeightsUnavailable, ChecksumMismatch):
        fetch_video_weights(weights, published, args.out)


if __name__ == "__main__":
    run_stage(parser, read_params, work)
