"""Pick loss.lambda_sd / loss.lambda_vd on validation UAR from the DVC experiments of the lambda grid.

dvc exp show --json > experiments.json        (or let this script call it)
python scripts/choose_lambdas.py [--experiments experiments.json] [--configuration vid-sp-dstl] [--write]
"""

import argparse
import json
import subprocess
import sys

from liser.params import load_params
from liser.results.lambda_search import candidates, choose, write_choice

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--experiments", help="saved `dvc exp show --json` output; default: run it")
parser.add_argument("--configuration", default="vid-sp-dstl", help="whose validation UAR decides")
parser.add_argument("--write", action="store_true", help="write the choice into params.yaml")
args = parser.parse_args()
if args.experiments:
    with open(args.experiments) as handle:
        shown = json.load(handle)
else:
    shown = json.loads(
        subprocess.run(
            [sys.executable, "-m", "dvc", "exp", "show", "--json"], check=True, capture_output=True, text=True
        ).stdout
    )
found = candidates(shown, args.configuration)
grid = [float(v) for v in load_params().loss.lambda_grid]
print(f"{'experiment':<24} {'lambda_sd':>9} {'lambda_vd':>9} {'val UAR':>8} {'test UAR':>8}")
for c in sorted(found, key=lambda c: (c.lambda_sd, c.lambda_vd)):
    print(f"{c.experiment:<24} {c.lambda_sd:>9g} {c.lambda_vd:>9g} {c.validation_uar:>8.3f} {c.test_uar:>8.3f}")
chosen = choose(found, grid)
print(
    f"chosen on validation UAR: lambda_sd = {chosen.lambda_sd:g}, "
    f"lambda_vd = {chosen.lambda_vd:g} ({chosen.experiment})"
)
if args.write:
    write_choice("params.yaml", chosen)
    print("written to params.yaml")
