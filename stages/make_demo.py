"""Stage `demo`: write the embedded demo corpora in the RAVDESS, CREMA-D, MSP-Face and FERV39k layouts."""

import argparse
import logging

from liser.demo import write_demo
from liser.logs import configure_logging
from liser.params import load_params

if __name__ == "__main__":  # the face corpus is rendered in spawned processes, which import this file
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    configure_logging()
    counts = write_demo(args.out, load_params().demo)
    logging.info("demo corpora written to %s: %s", args.out, counts)
