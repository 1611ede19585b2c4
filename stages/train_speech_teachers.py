"""Stages `speech_teacher` and `speech_teacher_labeled`: HuBERT + LoRA for each fold of a corpus (for Figure 2 on
a share of its labeled training utterances), scored on the fold's test speakers."""

import argparse
from pathlib import Path

from liser.manifests import read_manifest
from liser.stage import run_stage
from liser.teachers.speech_runs import share_teacher_runs, speech_teacher_runs

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


def read_params(params, args):
    share = None
    if args.labeled_percent is not None:  # Figure 2's teachers: share or all, and which utterances the share keeps
        share = params.label_efficiency.teacher, params.label_efficiency.seed
    return params.cv.folds, params.speech_teacher, share


def work(settings, args):
    folds, teacher, share = settings
    classes = read_manifest(args.manifest).classes
    where = dict(base=args.base, manifest=args.manifest, folds=args.folds, out=args.out, metrics=args.metrics)
    if share is None:
        speech_teacher_runs(args.corpus, folds, teacher, classes, **where, live=args.live)
    else:
        share_teacher_runs(
            args.corpus,
            folds,
            teacher,
            *share,  # label_efficiency.teacher, label_efficiency.seed
            args.labeled_percent,
            args.full_teachers,
            classes,
            **where,
            live=args.live,
        )


if __name__ == "__main__":
    run_stage(parser, read_params, work)
