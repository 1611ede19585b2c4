"""Choosing lambda_sd and lambda_vd the way the paper does, on validation UAR, from DVC experiments.

The grid runs as DVC experiments (README: `dvc exp run --queue -S 'loss.lambda_sd=...' -S 'loss.lambda_vd=...'`
then `dvc queue start`); :func:`candidates` reads `dvc exp show --json`, :func:`choose` picks the pair whose
students have the best validation UAR (never test), and :func:`write_choice` puts it back in params.yaml.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from liser.files import write_text

__all__ = ["Candidate", "candidates", "choose", "write_choice"]


@dataclass(frozen=True)
class Candidate:
    experiment: str
    lambda_sd: float
    lambda_vd: float
    validation_uar: float  # mean over corpora of the configuration's validation UAR (itself a mean over folds)
    test_uar: float  # reported beside, never used to choose


def _runs(node: object) -> Iterator[dict]:
    """Every experiment or commit entry of `dvc exp show --json` (entries carrying params and metrics)."""
    if isinstance(node, dict):
        data = node.get("data")
        if isinstance(data, dict) and "params" in data and "metrics" in data:
            yield node
        for value in node.values():
            yield from _runs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _runs(value)


def candidates(
    shown: list, configuration: str = "vid-sp-dstl", summary: str = "metrics/summary.json"
) -> list[Candidate]:
    """One candidate per experiment that has results for ``configuration``; duplicates of a rev are dropped."""
    found, seen = [], set()
    for run in _runs(shown):
        rev = run.get("rev") or run["data"].get("rev")
        if rev in seen:
            continue
        seen.add(rev)
        loss = (run["data"]["params"].get("params.yaml", {}).get("data") or {}).get("loss")
        metrics = (run["data"]["metrics"].get(summary) or {}).get("data")
        if not loss or not metrics:
            continue
        per_corpus = [runs[configuration] for runs in metrics.values() if configuration in runs]
        if not per_corpus:
            continue
        found.append(
            Candidate(
                experiment=run.get("name") or rev,
                lambda_sd=float(loss["lambda_sd"]),
                lambda_vd=float(loss["lambda_vd"]),
                validation_uar=sum(r["validation_uar"] for r in per_corpus) / len(per_corpus),
                test_uar=sum(r["uar"] for r in per_corpus) / len(per_corpus),
            )
        )
    return found


def choose(found: list[Candidate], grid: list[float] | None = None) -> Candidate:
    """The best validation UAR; ties go to the smaller lambdas.  With ``grid``, only pairs on it count."""
    eligible = [c for c in found if grid is None or (c.lambda_sd in grid and c.lambda_vd in grid)]
    if not eligible:
        raise ValueError("no experiment with results for the configuration" + (" on the grid" if grid else ""))
    return max(eligible, key=lambda c: (c.validation_uar, -c.lambda_sd, -c.lambda_vd))


def write_choice(params_file: str | Path, chosen: Candidate) -> None:
    """Set loss.lambda_sd and loss.lambda_vd in params.yaml, keeping its comments and layout; a per-profile value
    (``{demo: 1.0, paper: auto}``) changes for the file's current profile only."""
    path = Path(params_file)
    text = path.read_text()
    profile = (yaml.safe_load(text) or {}).get("profile", "demo")
    section = re.search(r"^loss:.*?(?=^\S|\Z)", text, flags=re.M | re.S)
    if section is None:
        raise ValueError(f"{path}: no `loss:` section")
    body = section.group(0)
    for key, value in (("lambda_sd", chosen.lambda_sd), ("lambda_vd", chosen.lambda_vd)):
        line = re.search(rf"^(\s+{key}:\s*)(\{{[^}}]*\}}|[^\s#]+)", body, flags=re.M)
        if line is None:
            raise ValueError(f"{path}: no `{key}:` line in the loss section")
        current = line.group(2)
        if current.startswith("{"):
            replaced, count = re.subn(rf"(\b{profile}:\s*)[^,}}\s]+", rf"\g<1>{value:g}", current, count=1)
            if count != 1:
                raise ValueError(f"{path}: loss.{key} has no value for the profile {profile!r}")
        else:
            replaced = f"{value:g}"
        body = body[: line.start(2)] + replaced + body[line.end(2) :]
    write_text(path, text[: section.start()] + body + text[section.end() :])
