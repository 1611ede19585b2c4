"""Pick loss.lambda_sd / loss.lambda_vd on validation UAR from the DVC experiments of the lambda grid.

dvc exp show --json > experiments.json        (or let this script call it)
python scripts/choose_lambdas.py [--experiments experiments.json] [--configuration vid-sp-dstl] [--write]
"""

import argparse

from liser.logs import UserError, errors_as_messages
from liser.params import load_params
from liser.results.lambda_search import candidates, choose, shown_experiments, write_choice

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--experiments", help="saved `dvc exp show --json` output; default: run it")
parser.add_argument("--configuration", default="vid-sp-dstl", help="whose validation UAR decides")
parser.add_argument("--params", default="params.yaml", help="where the lambda grid is read and the choice written")
parser.add_argument("--write", action="store_true", help="write the choice into the params file")


def main(args: argparse.Namespace) -> None:
    found, skipped = candidates(shown_experiments(args.experiments), args.configuration)
    grid = [float(v) for v in load_params(args.params).loss.lambda_grid]
    print(f"{'experiment':<24} {'lambda_sd':>9} {'lambda_vd':>9} {'val UAR':>8} {'test UAR':>8}")
    for c in sorted(found, key=lambda c: (c.lambda_sd, c.lambda_vd, c.experiment)):
        print(f"{c.experiment:<24} {c.lambda_sd:>9g} {c.lambda_vd:>9g} {c.validation_uar:>8.3f} {c.test_uar:>8.3f}")
    for reason in skipped:
        print(f"left out: {reason}")
    try:
        chosen = choose(found, grid)
    except ValueError as problem:
        raise UserError(f"{problem} (grid {grid}, configuration {args.configuration})") from None
    print(
        f"chosen on validation UAR: lambda_sd = {chosen.lambda_sd:g}, "
        f"lambda_vd = {chosen.lambda_vd:g} ({chosen.experiment})"
    )
    if args.write:
        write_choice(args.params, chosen)
        print(f"written to {args.params}")


if __name__ == "__main__":
    with errors_as_messages(UserError):
        main(parser.parse_args())
