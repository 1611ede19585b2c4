"""Stage `video_weights`: S2D's published checkpoint and MobileFaceNet's landmark weights, fetched once at pinned
revisions and checked against their pinned checksums (SHA-256, git blob id), when the video teacher starts from
them; fetched.json records what is there and the params it was fetched for."""

import argparse
from pathlib import Path

from liser.stage import run_stage
from liser.teachers.video_weights import fetch_video_weights

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--out", type=Path, required=True)


def read_params(params, args):
    return params.video_weights, params.video_teacher.source == "published"


def work(settings, args):
    weights, published = settings
    fetch_video_weights(weights, published, args.out)


if __name__ == "__main__":
    run_stage(parser, read_params, work)
