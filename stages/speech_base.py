"""Stage `speech_base`: the speech teacher's start point in one folder with its record (fetched.json):
hubert-base-ls960 (or another checkpoint) fetched at a pinned revision, or, in the demo (`source: pretrain`), a small
HuBERT pretrained here on unlabeled speech of its own speakers.  On a CPU with the same `speech_base.threads`, the
same bytes on every run and in any checkout (tests/test_teacher_reproducibility.py)."""

import argparse
from pathlib import Path

from liser.demo.speech_base import pretrain_demo_base
from liser.files import write_json, write_placeholders
from liser.stage import run_stage
from liser.teachers.speech_base import provide_speech_base

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--pool", type=Path, required=True, help="where the demo's unlabeled pretraining speech goes")
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--metrics", type=Path, required=True)


def read_params(params, args):
    return params.speech_base


def work(base, args):
    if base.source == "pretrain":
        figures = pretrain_demo_base(base, args.pool, args.out)
    else:
        write_placeholders(args.pool, f"speech_base.source is {base.source}: nothing is pretrained here")
        figures = provide_speech_base(base, args.out)
    write_json(args.metrics, figures)


if __name__ == "__main__":
    run_stage(parser, read_params, work)
