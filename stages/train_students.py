"""Student stages: one configuration of the paper on every fold of a corpus, scored on each fold's test speakers."""

import argparse
from pathlib import Path

from liser.stage import run_stage
from liser.students.configurations import configuration
from liser.students.crossval import StudentInputs, StudentSettings, run_configuration, run_shares

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--corpus", required=True)
parser.add_argument("--configuration", required=True, help="e.g. no-dstl, vid-sp-dstl, distill-ce-vid")
parser.add_argument(
    "--labeled-shares",
    action="store_true",
    help="Figure 2: on each share of label_efficiency.percents, in <out>/<percent>",
)
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
    if args.labeled_shares:
        percents = params.label_efficiency.percents
        return {p: StudentSettings.read(params, configuration(args.configuration, p)) for p in percents}
    return StudentSettings.read(params, configuration(args.configuration))


def work(settings, args):
    inputs = StudentInputs(
        args.manifest, args.folds, args.features, args.unlabeled_features, args.speech_softmaxes, args.video_softmaxes
    )
    if args.labeled_shares:
        run_shares(args.corpus, args.configuration, settings, inputs, args.out, args.metrics, args.live)
    else:
        run_configuration(
            args.corpus, configuration(args.configuration), settings, inputs, args.out, args.metrics, args.live
        )


if __name__ == "__main__":
    run_stage(parser, read_params, work)
