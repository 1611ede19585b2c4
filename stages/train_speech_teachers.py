"""Stage `speech_teacher`: HuBERT + LoRA for each fold of a corpus, scored on the fold's test speakers."""

import argparse
from pathlib import Path

from liser.logs import configure_logging
from liser.params import load_params
from liser.teachers.speech_runs import speech_teacher_runs

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--corpus", required=True)
parser.add_argument("--base", type=Path, required=True, help="the pretrained model (stage speech_base)")
parser.add_argument("--manifest", type=Path, required=True, help="the corpus's utterance table")
parser.add_argument("--folds", type=Path, required=True, help="the corpus's speaker folds")
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--metrics", type=Path, required=True)
args = parser.parse_args()
configure_logging()
params = load_params()
speech_teacher_runs(
    args.corpus,
    params.cv.folds,
    params.speech_teacher,
    base=args.base,
    manifest=args.manifest,
    folds=args.folds,
    out=args.out,
    metrics=args.metrics,
)
