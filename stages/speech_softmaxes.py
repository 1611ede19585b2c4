"""Stage `speech_softmaxes`: each fold's speech teacher scores the audio of every window of the window table."""

import argparse
from pathlib import Path

from liser.files import write_json
from liser.logs import configure_logging
from liser.params import load_params
from liser.teachers.speech_runs import speech_window_softmaxes

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--teachers", type=Path, required=True, help="folder with fold<k>/ teachers")
parser.add_argument("--base", type=Path, required=True, help="the pretrained model the teachers adapt")
parser.add_argument("--manifest", type=Path, required=True, help="audio of the unlabeled segments")
parser.add_argument("--windows", type=Path, required=True)
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--metrics", type=Path, required=True)
parser.add_argument("--reuse-from", type=Path, help="earlier softmaxes, taken over where the same teacher wrote them")
args = parser.parse_args()
configure_logging()
params = load_params()
teacher = params.speech_teacher
counts = speech_window_softmaxes(
    args.teachers,
    params.cv.folds,
    args.manifest,
    args.windows,
    args.out,
    base=args.base,
    batch_size=teacher.eval_batch_size,
    threads=teacher.threads,
    reuse_from=args.reuse_from,
)
write_json(args.metrics, counts)
