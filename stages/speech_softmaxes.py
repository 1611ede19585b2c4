"""Stage `speech_softmaxes`: each fold's speech teacher scores the audio of every window of the window table.  On a
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


def read_params(params, args):
    return params.cv.folds, params.speech_teacher.eval_batch_size, params.speech_teacher.threads, params.runtime


def work(settings, args):
    folds, batch_size, threads, runtime = settings
    counts = speech_window_softmaxes(
        args.teachers,
        folds,
        args.base,
        args.manifest,
        args.windows,
        args.out,
        batch_size,
        threads,
        args.reuse_from,
        runtime,
    )
    write_json(args.metrics, counts)


if __name__ == "__main__":  # Ray's workers import this file
    run_stage(parser, read_params, work)
