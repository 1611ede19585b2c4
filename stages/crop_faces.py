"""Stage `faces`: detect, align and crop the face in every frame of every obtained segment."""

import argparse
from pathlib import Path

from liser.files import write_json
from liser.logs import configure_logging
from liser.params import load_params
from liser.processes import exit_on_sigterm
from liser.unlabeled.runs import crop_faces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--acquired", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metrics", required=True)
    args = parser.parse_args()
    configure_logging()
    exit_on_sigterm()
    write_json(args.metrics, crop_faces(args.acquired, load_params().faces, args.out))


if __name__ == "__main__":  # the face workers are spawned processes, which import this file
    main()
