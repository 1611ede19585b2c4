"""Student runs' test UAR in several DVC experiments side by side, e.g. the two readings of the paper.

dvc exp run -n strict
dvc exp run -n literal -S protocol.reading=literal
python scripts/compare_experiments.py strict literal [--out readings.md]

Names are experiment or branch names, `workspace`, or the start of a commit; none: every entry of `dvc exp show`
with student results.  `--experiments FILE` reads a saved `dvc exp show --json` instead of running it.
"""

import argparse
from pathlib import Path

from liser.files import write_text
from liser.logs import UserError, errors_as_messages
from liser.results.experiments import experiments, select, side_by_side
from liser.results.lambda_search import shown_experiments

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("names", nargs="*", help="the experiments to show, in this order")
parser.add_argument("--experiments", type=Path, help="saved `dvc exp show --json` output; default: run it")
parser.add_argument("--out", type=Path, help="also write the tables to this Markdown file")


def main(args: argparse.Namespace) -> None:
    try:
        lines = side_by_side(select(experiments(shown_experiments(args.experiments)), args.names))
    except ValueError as problem:
        raise UserError(str(problem)) from None
    print("\n".join(lines))
    if args.out:
        write_text(args.out, "\n".join(lines))


if __name__ == "__main__":
    with errors_as_messages(UserError):
        main(parser.parse_args())
