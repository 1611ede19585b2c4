"""Stage `video_softmaxes`: the video teacher's seven class probabilities for every window of the window table.  On a
CPU with the same `video_teacher.threads`, the same bytes on every run and in any checkout
(tests/test_teacher_reproducibility.py); on a GPU (float16 autocast) the last bits may differ."""

import argparse
from pathlib import Path

from liser.files import write_json
from liser.stage import run_stage
from liser.teachers.video_windows import video_window_softmaxes

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--teacher", type=Path, required=True)
parser.add_argument("--windows", type=Path, required=True)
parser.add_argument("--faces", type=Path, required=True)
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--metrics", type=Path, required=True)


def read_params(params, args):
    return params.video_teacher.eval_batch_size, params.video_teacher.threads, params.runtime


def work(settings, args):
    batch_size, threads, runtime = settings
    counts = video_window_softmaxes(args.teacher, args.windows, args.faces, args.out, batch_size, threads, runtime)
    write_json(args.metrics, counts)


if __name__ == "__main__":  # Ray's workers import this file
    run_stage(parser, read_params, work)
