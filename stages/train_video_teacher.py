"""Stage `video_teacher`: S2D from the published checkpoint, or trained on a FERV39k-layout corpus; its test scores."""

import argparse
from pathlib import Path

from liser.logs import configure_logging
from liser.params import load_params
from liser.teachers.video_runs import video_teacher_run

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--metrics", type=Path, required=True)
args = parser.parse_args()
configure_logging()
video_teacher_run(load_params().video_teacher, args.out, args.metrics)
