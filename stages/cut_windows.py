"""Stage `windows`: non-overlapping 16-frame windows of the segments with faces, and their audio manifest."""

import argparse
from pathlib import Path

from liser.files import write_json
from liser.stage import run_stage
from liser.unlabeled.runs import cut_windows

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--acquired", type=Path, required=True)
parser.add_argument("--faces", type=Path, required=True)
parser.add_argument("--windows", type=Path, required=True)
parser.add_argument("--manifest", type=Path, required=True)
parser.add_argument("--metrics", required=True)


def read_params(params, args):
    return params.windows.frames, params.windows.fps


def work(settings, args):
    frames, fps = settings
    write_json(args.metrics, cut_windows(args.acquired, args.faces, frames, fps, args.windows, args.manifest))


if __name__ == "__main__":
    run_stage(parser, read_params, work)
