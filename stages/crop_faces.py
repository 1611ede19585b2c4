"""Stage `faces`: track the face in every frame of every obtained segment (and keep its aligned crops)."""

import argparse
from pathlib import Path

from liser.files import write_json
from liser.stage import run_stage
from liser.unlabeled.face_crops import crop_faces

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--segments", type=Path, required=True, help="the obtained segments' table (stage acquire)")
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--metrics", required=True)


def read_params(params, args):
    return params.faces, params.windows.fps, params.runtime


def work(settings, args):
    faces, fps, runtime = settings
    write_json(args.metrics, crop_faces(args.segments, faces, fps, runtime, args.out))


if __name__ == "__main__":  # the face workers are spawned processes, which import this file
    run_stage(parser, read_params, work)
