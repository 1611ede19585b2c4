"""Stage `demo`: write the embedded demo corpora in the RAVDESS, CREMA-D, MSP-Face and FERV39k layouts (profile
demo); in the paper profile only empty folders with a note, for the stages that depend on them."""

import argparse
import logging

from liser.demo import write_demo, write_demo_placeholders
from liser.stage import run_stage

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--out", required=True)


def read_params(params, args):
    return params.profile, params.demo if params.profile == "demo" else None


def work(settings, args):
    profile, demo = settings
    counts = write_demo(args.out, demo) if demo is not None else write_demo_placeholders(args.out, profile)
    logging.getLogger("liser").info("demo corpora written to %s: %s", args.out, counts)


if __name__ == "__main__":  # the face corpus is rendered in spawned processes, which import this file
    run_stage(parser, read_params, work)
