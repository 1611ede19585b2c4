"""Stages `speech_teacher` and `speech_teacher_labeled`: HuBERT + LoRA for each fold of a corpus (for Figure 2 on
a share of its labeled training utterances), scored on the fold's test speakers.  On a CPU with the same
`speech_teacher.threads`, the same bytes on every run and in any checkout (tests/test_teacher_reproducibility.py); on a
GPU, whose training and float16 kernels are not all deterministic, the teachers may differ in the last bits."""

import argparse
from pathlib import Path

from liser.corpora import corpus_classes
from liser.logs import configure_logging, errors_as_messages
from liser.params import ParamsError, load_params
from liser.teachers.fetching import UnsafeWeights, WeightsUnavailable
from liser.teachers.speech_model import SpeechTeacherUnavailable
from liser.teachers.speech_runs import TeacherStage, share_teacher_runs, speech_teacher_runs

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--corpus", required=True)
parser.add_argument("--base", type=Path, required=True, help="the pretrained model (stage speech_base)")
parser.add_argument("--manifest", type=Path, required=True, help="the corpus's utterance table")
parser.add_argument("--folds", type=Path, required=True, help="the corpus's speaker folds")
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--metrics", type=Path, required=True)
parser.add_argument("--live", type=Path, help="DVCLive folder of the training curves, written as they train")
parser.add_argument("--labeled-percent", type=int, help="Figure 2: the teachers of the students on this share")
parser.add_argument("--full-teachers", type=Path, help="with --labeled-percent: the full run's teachers")
args = parser.parse_args()
configure_logging()
with errors_as_messages(ParamsError, WeightsUnavailable, SpeechTeacherUnavailable, UnsafeWeights):
    params = load_params()
    stage = TeacherStage(
        args.corpus,
        corpus_classes(params.corpora, args.corpus),
        args.base,
        args.manifest,
        args.folds,
        args.out,
        args.metrics,
        args.live,
    )
    teachers = (params.speech_teacher, params.speech_base)
    if args.labeled_percent is None:
        speech_teacher_runs(stage, params.cv.folds, *teachers)
    else:
        share_teacher_runs(
            stage, params.cv.folds, *teachers, params.label_efficiency, args.labeled_percent, args.full_teachers
        )
