"""Stage `video_teacher`: S2D from the published checkpoint, or trained on a FERV39k-layout corpus; its test scores."""

import argparse
from pathlib import Path

from liser.logs import errors_as_messages
from liser.stage import run_stage
from liser.teachers.video_runs import video_teacher_run
from liser.teachers.weights import WeightsUnavailable

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--weights", type=Path, required=True, help="S2D's published files, when it starts from them")
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--metrics", type=Path, required=True)
parser.add_argument("--live", type=Path, help="DVCLive folder of the training curves, written as they train")


def read_params(params, args):
    return params.video_teacher


def work(teacher, args):
    with errors_as_messages(WeightsUnavailable):
        video_teacher_run(teacher, args.weights, args.out, args.metrics, args.live)


if __name__ == "__main__":
    run_stage(parser, read_params, work)
