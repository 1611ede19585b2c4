"""Stage `video_weights`: S2D's published checkpoint and MobileFaceNet's landmark weights, fetched once at pinned
revisions and checked against their SHA-256, when the video teacher starts from them."""

import argparse
from pathlib import Path

from liser.logs import configure_logging, errors_as_messages
from liser.params import load_params
from liser.teachers.weights import ChecksumMismatch, WeightsUnavailable, fetch_video_weights

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--out", type=Path, required=True)
args = parser.parse_args()
configure_logging()
params = load_params()
with errors_as_messages(WeightsUnavailable, ChecksumMismatch):
    fetch_video_weights(params.video_weights, params.video_teacher.source == "published", args.out)
