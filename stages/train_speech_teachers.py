"""Stages `speech_teacher` and `speech_teacher_labeled`: HuBERT + LoRA for each fold of a corpus (for Figure 2 on
each share of its labeled training utterances), scored on the fold's test speakers, on the base `speech_base` names.
On a CPU with the same `speech_teacher.threads`, the same bytes on every run and in any checkout
(tests/test_teacher_reproducibility.py); on a GPU, whose training and float16 kernels are not all deterministic, the
teachers may differ in the last bits."""

import argparse
from pathlib import Path

from liser.manifests import read_manifest
from liser.stage import run_stage
from liser.teachers.speech_base import SpeechBaseChoice
from liser.teachers.speech_runs import TeacherStage, shares_teacher_runs, speech_teacher_runs

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--corpus", required=True)
parser.add_argument("--base", type=Path, required=True, help="the pretrained model (stage speech_base)")
parser.add_argument("--manifest", type=Path, required=True, help="the corpus's utterance table")
parser.add_argument("--folds", type=Path, required=True, help="the corpus's speaker folds")
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--metrics", type=Path, required=True)
parser.add_argument("--live", type=Path, help="DVCLive folder of the training curves, written as they train")
parser.add_argument(
    "--labeled-shares", action="store_true", help="Figure 2: the teachers of each share's students, in <out>/<percent>"
)
parser.add_argument("--full-teachers", type=Path, help="with --labeled-shares: the full run's teachers")


def read_params(params, args):
    shares = None
    if args.labeled_shares:  # Figure 2's teachers: share or all, which utterances a share keeps, and the shares
        shares = params.label_efficiency.teacher, params.label_efficiency.seed, params.label_efficiency.percents
    return params.cv.folds, params.speech_teacher, SpeechBaseChoice.of(params.speech_base), shares


def work(settings, args):
    folds, teacher, base_choice, shares = settings
    classes = read_manifest(args.manifest).classes
    stage = TeacherStage(args.corpus, classes, args.base, args.manifest, args.folds, args.out, args.metrics, args.live)
    if shares is None:
        speech_teacher_runs(stage, folds, teacher, base_choice)
    else:
        shares_teacher_runs(stage, folds, teacher, base_choice, *shares, args.full_teachers)


if __name__ == "__main__":
    run_stage(parser, read_params, work)
