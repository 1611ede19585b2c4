"""Stage `demo`: write the embedded demo corpora in the RAVDESS, CREMA-D, MSP-Face and FERV39k layouts (profile
demo); in the paper profile only empty folders with a note, for the stages that depend on them."""

import argparse
import logging

from liser.demo import write_demo, write_demo_placeholders
from liser.logs import configure_logging
from liser.params import load_params
from liser.processes import exit_on_sigterm

if __name__ == "__main__":  # the face corpus is rendered in spawned processes, which import this file
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    configure_logging()
    exit_on_sigterm()
    params = load_params()
    if params.profile == "demo":
        counts = write_demo(args.out, params.demo)
    else:
        counts = write_demo_placeholders(args.out, params.profile)
    logging.getLogger("liser").info("demo corpora written to %s: %s", args.out, counts)
