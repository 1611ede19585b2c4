"""Choosing the lambdas from `dvc exp show --json`: on validation UAR, never test, written back to params.yaml."""

import pytest

from liser.params import load_params
from liser.results.lambda_search import candidates, choose, write_choice

from .helpers import REPO


def entry(rev, name, sd, vd, val, test):
    summary = {
        corpus: {"vid-sp-dstl": {"validation_uar": val, "uar": test}, "no-dstl": {"validation_uar": 0.9, "uar": 0.9}}
        for corpus in ("ravdess", "crema_d")
    }
    return {
        "rev": rev,
        "name": name,
        "data": {
            "rev": rev,
            "params": {"params.yaml": {"data": {"loss": {"lambda_sd": sd, "lambda_vd": vd}}}},
            "metrics": {"metrics/summary.json": {"data": summary}},
        },
    }


SHOWN = [
    {**entry("workspace", None, 1.0, 1.0, 0.40, 0.41), "experiments": None},
    {
        **entry("abc123", None, 1.0, 1.0, 0.40, 0.41),
        "experiments": [
            {
                "revs": [
                    entry("e1", "lambda-a", 0.1, 5.0, 0.55, 0.30),
                    entry("e2", "lambda-b", 5.0, 0.1, 0.50, 0.70),
                    entry("e3", "lambda-c", 0.5, 5.0, 0.55, 0.20),
                    entry("e4", "off-grid", 2.0, 2.0, 0.99, 0.99),
                ]
            }
        ],
    },
]


def test_chooses_on_validation_not_test_with_ties_to_smaller_lambdas():
    found = candidates(SHOWN)
    assert len(found) == 6
    chosen = choose(found, grid=[0.1, 0.5, 1.0, 5.0, 10.0])
    assert (chosen.experiment, chosen.lambda_sd, chosen.lambda_vd) == ("lambda-a", 0.1, 5.0)
    assert choose(found).experiment == "off-grid"
    with pytest.raises(ValueError, match="no experiment"):
        choose(candidates(SHOWN, configuration="conf-vid-sp-dstl"))


def test_choice_written_back_keeps_the_file(tmp_path):
    params = tmp_path / "params.yaml"
    original = (REPO / "params.yaml").read_text()
    params.write_text(original)
    write_choice(params, choose(candidates(SHOWN), grid=[0.1, 0.5, 1.0, 5.0, 10.0]))
    loaded = load_params(params)
    assert (loaded.loss.lambda_sd, loaded.loss.lambda_vd) == (0.1, 5.0)
    changed = [(a, b) for a, b in zip(original.splitlines(), params.read_text().splitlines()) if a != b]
    assert len(changed) == 2 and all(
        "lambda_" in a and "#" not in a or a.split("#")[1] == b.split("#")[1] for a, b in changed
    )
