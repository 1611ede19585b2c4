"""Stage `acquire`: download the MSP-Face videos in the lists and cut their segments."""

import argparse
from pathlib import Path

from liser.files import write_json
from liser.logs import configure_logging
from liser.params import load_params
from liser.unlabeled.runs import obtain_segments

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--metrics", required=True)
args = parser.parse_args()
configure_logging()
write_json(args.metrics, obtain_segments(load_params().mspface, args.out))
