"""Student stages: one configuration of the paper on every fold of a corpus, scored on each fold's test speakers."""

import argparse
from pathlib import Path

from liser.students.configurations import configuration
from liser.students.crossval import StudentInputs, run_configuration
from liser.logs import configure_logging
from liser.params import load_params

if __name__ == "__main__":  # folds train in spawned processes, which import this file
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--configuration", required=True, help="e.g. no-dstl, vid-sp-dstl, distill-ce-vid")
    parser.add_argument("--labeled-percent", type=int, default=100, help="share of each fold's labeled training utterances")
    parser.add_argument("--data", type=Path, required=True, help="folder with manifests/, folds/, features/, softmaxes/")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    args = parser.parse_args()
    configure_logging()
    inputs = StudentInputs(
        manifest=args.data / "manifests" / f"{args.corpus}.parquet",
        folds=args.data / "folds" / f"{args.corpus}.csv",
        features=args.data / "features" / args.corpus,
        unlabeled_features=args.data / "features" / "mspface",
        speech_softmaxes=args.data / "softmaxes" / "speech" / args.corpus,
        video_softmaxes=args.data / "softmaxes" / "video.parquet",
    )
    run_configuration(args.corpus, configuration(args.configuration, args.labeled_percent), load_params(), inputs,
                      args.out, args.metrics)
