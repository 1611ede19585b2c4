"""Stage `video_weights`: S2D's published checkpoint and MobileFaceNet's landmark weights, fetched once at pinned
revisions and checked against their pinned checksums, when the video teacher starts from them."""

import argparse
from pathlib import Path

from liser.logs import configure_logging, errors_as_messages
from liser.params import ParamsError, load_params
from liser.teachers.fetching import ChecksumMismatch, WeightsUnavailable
from liser.teachers.video_weights import fetch_video_weights

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--out", type=Path, required=True)
args = parser.parse_args()
configure_logging()
with errors_as_messages(ParamsError, WeightsUnavailable, ChecksumMismatch):
    params = load_params()
    fetch_video_weights(params.video_weights, params.video_teacher, args.out)
