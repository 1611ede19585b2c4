"""Stage `report`: Tables 2 and 3 and Figure 2 of the paper from every student's cross-validation results."""

import argparse
from pathlib import Path

from liser.results.report import report
from liser.stage import run_stage

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--runs", type=Path, required=True)
parser.add_argument("--metrics", type=Path, required=True)
parser.add_argument("--summary", type=Path, required=True)
parser.add_argument("--plots", type=Path, required=True)
parser.add_argument("--reports", type=Path, required=True)


def read_params(params, args):
    protocol = {  # the reading, and the settings whose value it chooses, as the report states them
        "protocol.reading": params.protocol.reading,
        "speech_teacher.split": params.speech_teacher.split,
        "label_efficiency.teacher": params.label_efficiency.teacher,
        "windows.min_face_fraction": params.windows.min_face_fraction,
        "train.batch_composition": params.train.batch_composition,
    }
    return params.corpora.use, params.cv.folds, params.label_efficiency.percents, protocol


def work(settings, args):
    corpora, folds, percents, protocol = settings
    report(corpora, folds, percents, protocol, args.runs, args.metrics, args.summary, args.plots, args.reports)


if __name__ == "__main__":
    run_stage(parser, read_params, work)
