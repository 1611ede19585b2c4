"""Stage `windows`: non-overlapping 16-frame windows of the segments with faces, and their audio manifest."""

import argparse
from pathlib import Path

from liser.files import write_json
from liser.logs import configure_logging
from liser.params import load_params
from liser.unlabeled.runs import cut_windows

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--acquired", type=Path, required=True)
parser.add_argument("--faces", type=Path, required=True)
parser.add_argument("--windows", type=Path, required=True)
parser.add_argument("--manifest", type=Path, required=True)
parser.add_argument("--metrics", required=True)
args = parser.parse_args()
configure_logging()
write_json(args.metrics, cut_windows(args.acquired, args.faces, load_params().windows, args.windows, args.manifest))
