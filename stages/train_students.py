"""Student stages: one configuration of the paper on every fold of a corpus, scored on each fold's test speakers."""

import argparse
from pathlib import Path

from liser.stage import run_stage
from liser.students.configurations import configuration
from liser.students.crossval import StudentInputs, StudentSettings, run_configuration

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--corpus", required=True)
parser.add_argument("--configuration", required=True, help="e.g. no-dstl, vid-sp-dstl, distill-ce-vid")
parser.add_argument("--labeled-percent", type=int, default=100, help="share of each fold's labeled training utterances")
parser.add_argument("--manifest", type=Path, required=True, help="the corpus's utterance table")
parser.add_argument("--folds", type=Path, required=True, help="the corpus's speaker folds")
parser.add_argument("--features", type=Path, required=True, help="the corpus's log-Mel features")
parser.add_argument("--unlabeled-features", type=Path, help="log-Mels of the unlabeled segments (distillation)")
parser.add_argument("--speech-softmaxes", type=Path, help="folder of the speech teachers' fold<k>.parquet")
parser.add_argument("--video-softmaxes", type=Path, help="the video teacher's window softmaxes")
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--metrics", type=Path, required=True)
parser.add_argument("--live", type=Path, help="DVCLive folder of the kept students' training curves")


def read_params(params, args):
    return StudentSettings.read(params, configuration(args.configuration, args.labeled_percent))


def work(settings, args):
    inputs = StudentInputs(
        args.manifest, args.folds, args.features, args.unlabeled_features, args.speech_softmaxes, args.video_softmaxes
    )
    run = configuration(args.configuration, args.labeled_percent)
    run_configuration(args.corpus, run, settings, inputs, args.out, args.metrics, args.live)


if __name__ == "__main__":
    run_stage(parser, read_params, work)
