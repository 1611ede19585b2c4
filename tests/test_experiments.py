"""Two readings of the paper side by side, from `dvc exp show --json` (entries as DVC 3 writes them)."""

import json
import subprocess
import sys

import pytest

from liser.results.experiments import experiments, select, side_by_side
from liser.students.configurations import run_location

from .helpers import REPO


def entry(rev, name, reading, uar, runs=("no-dstl", "vid-sp-dstl", "vid-sp-dstl-labeled50"), profile="demo"):
    metrics = {}
    for corpus in ("ravdess", "crema_d"):
        for i, run in enumerate(runs):
            _, metrics_file, share = run_location(run)  # a Figure 2 share: an entry of its stage's file
            figures = {"test": {"uar": uar + i / 100, "uar_std": 0.05}}
            data = metrics.setdefault(f"metrics/students/{corpus}/{metrics_file}", {"data": {}})["data"]
            data.update(figures if share is None else {share: figures})
    metrics["metrics/summary.json"] = {"data": {"ravdess": {"no-dstl": uar}}}
    params = {"profile": profile, "protocol": {"reading": reading}, "loss": {"lambda_sd": 1.0}}
    return {
        "rev": rev,
        "name": name,
        "data": {"rev": rev, "params": {"params.yaml": {"data": params}}, "metrics": metrics},
        "experiments": None,
    }


SHOWN = [
    entry("workspace", None, "literal", 0.50),
    {
        **entry("a1b2c3d4e5", "main", "strict", 0.40),
        "experiments": [
            {"revs": [entry("f00dfeed11", "literal", "literal", 0.50)], "name": "literal"},
            {"revs": [{**entry("0ddba11", "queued", "strict", 0.0), "data": {"params": {}, "metrics": {}}}]},
        ],
    },
]


def test_each_entry_with_student_results_is_an_experiment_with_its_reading():
    found = experiments(SHOWN)
    assert [(e.name, e.reading, e.profile) for e in found] == [
        ("workspace", "literal", "demo"),
        ("main", "strict", "demo"),
        ("literal", "literal", "demo"),
    ]
    assert set(found[1].results["crema_d"]) == {"no-dstl", "vid-sp-dstl", "vid-sp-dstl-labeled50"}
    assert [e.name for e in select(found, ["literal", "a1b2"])] == ["literal", "main"]
    with pytest.raises(ValueError, match="no experiment 'fixed'.*workspace, main, literal"):
        select(found, ["fixed"])


def test_two_readings_side_by_side_with_their_difference():
    lines = side_by_side(select(experiments(SHOWN), ["main", "literal"]))
    ravdess = lines[lines.index("## ravdess") :]
    assert ravdess[2] == "| run | main (strict, demo) | literal (literal, demo) | literal − main |"
    assert ravdess[4] == "| no-dstl | 0.400 ± 0.050 | 0.500 ± 0.050 | +10.00 |"
    assert ravdess[5] == "| vid-sp-dstl | 0.410 ± 0.050 | 0.510 ± 0.050 | +10.00 |"
    assert ravdess[6] == "| vid-sp-dstl-labeled50 | 0.420 ± 0.050 | 0.520 ± 0.050 | +10.00 |"


def test_a_run_missing_from_one_experiment_shows_a_dash():
    shown = [entry("a" * 10, "one", "strict", 0.4), entry("b" * 10, "two", "literal", 0.5, runs=("no-dstl",))]
    lines = side_by_side(experiments(shown))
    assert "| vid-sp-dstl | 0.410 ± 0.050 | - | - |" in lines


def test_the_script_prints_and_writes_the_tables(tmp_path):
    saved = tmp_path / "shown.json"
    saved.write_text(json.dumps(SHOWN))
    out = tmp_path / "readings.md"
    script = [sys.executable, str(REPO / "scripts" / "compare_experiments.py"), "main", "literal"]
    ran = subprocess.run([*script, "--experiments", str(saved), "--out", str(out)], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert "| no-dstl | 0.400 ± 0.050 | 0.500 ± 0.050 | +10.00 |" in ran.stdout
    assert out.read_text().rstrip("\n") == ran.stdout.rstrip("\n")
    missing = subprocess.run([*script[:2], "nothing", "--experiments", str(saved)], capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stderr.startswith("error: no experiment 'nothing'")
