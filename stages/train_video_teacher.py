"""Stage `video_teacher`: S2D from the published checkpoint (the files stage `video_weights` fetched for these
`video_weights` params), or trained on a FERV39k-layout corpus; its test scores.  On a CPU with the same
`video_teacher.threads`, the same bytes on every run and in any checkout (tests/test_teacher_reproducibility.py); on a
GPU the last bits of a trained teacher may differ."""

import argparse
from pathlib import Path

from liser.stage import run_stage
from liser.teachers.video_runs import video_teacher_run

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--weights", type=Path, required=True, help="S2D's published files, when it starts from them")
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--metrics", type=Path, required=True)
parser.add_argument("--live", type=Path, help="DVCLive folder of the training curves, written as they train")


def read_params(params, args):
    return params.video_teacher, params.video_weights  # the second, to check the published files against


def work(settings, args):
    teacher, weights = settings
    video_teacher_run(teacher, weights, args.weights, args.out, args.metrics, args.live)


if __name__ == "__main__":
    run_stage(parser, read_params, work)
