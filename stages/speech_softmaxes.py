"""Stages `speech_softmaxes` and `speech_softmaxes_labeled`: each fold's speech teacher (for Figure 2, each share's)
scores the audio of every window of the window table.  On a
CPU with the same `speech_teacher.threads`, the same bytes on every run and in any checkout
(tests/test_teacher_reproducibility.py); on a GPU (float16 autocast) the last bits may differ."""

import argparse
from pathlib import Path

from liser.files import write_json
from liser.stage import run_stage
from liser.teachers.speech_windows import speech_window_softmaxes

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--teachers", type=Path, required=True, help="folder with fold<k>/ teachers")
parser.add_argument("--base", type=Path, required=True, help="the pretrained model the teachers adapt")
parser.add_argument("--manifest", type=Path, required=True, help="audio of the unlabeled segments")
parser.add_argument("--windows", type=Path, required=True)
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--metrics", type=Path, required=True)
parser.add_argument("--reuse-from", type=Path, help="earlier softmaxes, taken over where the same teacher wrote them")
parser.add_argument(
    "--labeled-shares", action="store_true", help="Figure 2: <teachers>/<percent> of each share, into <out>/<percent>"
)


def read_params(params, args):
    shares = params.label_efficiency.percents if args.labeled_shares else None
    return params.cv.folds, params.speech_teacher.eval_batch_size, params.speech_teacher.threads, params.runtime, shares


def work(settings, args):
    folds, batch_size, threads, runtime, shares = settings

    def scored(teachers, out):
        return speech_window_softmaxes(
            teachers, folds, args.base, args.manifest, args.windows, out, batch_size, threads, args.reuse_from, runtime
        )

    if shares is None:
        write_json(args.metrics, scored(args.teachers, args.out))
    else:
        write_json(args.metrics, {str(p): scored(args.teachers / str(p), args.out / str(p)) for p in shares})


if __name__ == "__main__":  # Ray's workers import this file
    run_stage(parser, read_params, work)
