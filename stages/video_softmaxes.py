"""Stage `video_softmaxes`: the video teacher's seven class probabilities for every window of the window table.  On a
CPU with the same `video_teacher.threads`, the same bytes on every run and in any checkout
(tests/test_teacher_reproducibility.py); on a GPU (float16 autocast) the last bits may differ."""

import argparse
from pathlib import Path

from liser.files import write_json
from liser.logs import configure_logging, errors_as_messages
from liser.params import ParamsError, load_params
from liser.teachers.video_windows import video_window_softmaxes

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--teacher", type=Path, required=True)
parser.add_argument("--windows", type=Path, required=True)
parser.add_argument("--faces", type=Path, required=True)
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--metrics", type=Path, required=True)
args = parser.parse_args()
configure_logging()
with errors_as_messages(ParamsError):
    teacher = load_params().video_teacher
counts = video_window_softmaxes(teacher, args.teacher, args.windows, args.faces, args.out)
write_json(args.metrics, counts)
