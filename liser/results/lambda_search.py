"""Choosing lambda_sd and lambda_vd the way the paper does, on validation UAR, from DVC experiments.

The grid runs as DVC experiments (README: `dvc exp run --queue -S 'loss.lambda_sd=...' -S 'loss.lambda_vd=...'`
then `dvc queue start`); :func:`candidates` reads `dvc exp show --json`, :func:`choose` picks the pair whose
students have the best validation UAR (never test), and :func:`write_choice` puts it back in params.yaml.

Each experiment's λ are its params.yaml's as its stages read them: a value written per profile or per reading
(``{demo: 1.0, paper: auto}``) is resolved by the experiment's own ``profile`` and ``protocol.reading``.  An
experiment whose λ is ``auto`` chose λ per fold inside its stages, so it is no candidate here; nor is one without
the configuration's results (a queued experiment).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from liser.files import write_text
from liser.logs import UserError
from liser.params import PROFILES, READINGS, ParamsError, resolve_switches

__all__ = ["Candidate", "candidates", "choose", "write_choice"]


@dataclass(frozen=True)
class Candidate:
    experiment: str
    lambda_sd: float
    lambda_vd: float
    validation_uar: float  # mean over corpora of the configuration's validation UAR (itself a mean over folds)
    test_uar: float  # reported beside, never used to choose


def shown_experiments(saved: str | Path | None) -> list:
    """``dvc exp show --json``'s output: read from the file ``saved``, or from running it here."""
    if saved:
        try:
            return json.loads(Path(saved).read_text())
        except (OSError, json.JSONDecodeError) as problem:
            raise UserError(f"{saved}: not a saved `dvc exp show --json` ({problem})") from None
    shown = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "show", "--json"], capture_output=True, text=True, check=False
    )
    if shown.returncode != 0:
        raise UserError(f"dvc exp show --json failed: {shown.stderr.strip()}")
    return json.loads(shown.stdout)


def experiment_entries(node: object) -> Iterator[dict]:
    """Every experiment or commit entry of `dvc exp show --json` (entries carrying params and metrics)."""
    if isinstance(node, dict):
        data = node.get("data")
        if isinstance(data, dict) and "params" in data and "metrics" in data:
            yield node
        for value in node.values():
            yield from experiment_entries(value)
    elif isinstance(node, list):
        for value in node:
            yield from experiment_entries(value)


def _lambdas(raw: dict, where: str) -> tuple[object, object]:
    """loss.lambda_sd and loss.lambda_vd as the experiment's stages read them."""
    profile = raw.get("profile", PROFILES[0])
    protocol = resolve_switches(raw.get("protocol") or {}, {PROFILES: profile}, "protocol", where)
    reading = protocol.get("reading", READINGS[0]) if isinstance(protocol, dict) else READINGS[0]
    loss = resolve_switches(raw.get("loss") or {}, {PROFILES: profile, READINGS: reading}, "loss", where)
    return loss.get("lambda_sd", 1.0), loss.get("lambda_vd", 1.0)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def candidates(shown: list, configuration: str = "vid-sp-dstl") -> tuple[list[Candidate], list[str]]:
    """One candidate per experiment that has results for ``configuration`` (its stages' metrics files,
    ``metrics/students/<corpus>/<configuration>.json``) and a number for each λ; duplicates of a rev are dropped.
    Also each experiment left out, with the reason."""
    found, skipped, seen = [], [], set()
    pattern = re.compile(rf"metrics/students/[^/]+/{re.escape(configuration)}\.json")
    for run in experiment_entries(shown):
        rev = run.get("rev") or run["data"].get("rev")
        if rev in seen:
            continue
        seen.add(rev)
        name = run.get("name") or rev
        raw = (run["data"]["params"].get("params.yaml") or {}).get("data") or {}
        per_corpus = [
            entry["data"]
            for path, entry in sorted(run["data"]["metrics"].items())
            if pattern.fullmatch(path) and isinstance((entry or {}).get("data"), dict)
        ]
        if not per_corpus:
            skipped.append(f"{name}: no results for {configuration} (queued, failed or not run)")
            continue
        try:
            lambda_sd, lambda_vd = _lambdas(raw, f"{name}'s params.yaml")
        except ParamsError as problem:
            skipped.append(f"{name}: {problem}")
            continue
        if _number(lambda_sd) is None or _number(lambda_vd) is None:
            skipped.append(
                f"{name}: lambda_sd = {lambda_sd}, lambda_vd = {lambda_vd}: auto chooses per fold inside the stage"
            )
            continue
        found.append(
            Candidate(
                experiment=name,
                lambda_sd=_number(lambda_sd),
                lambda_vd=_number(lambda_vd),
                validation_uar=sum(r["validation"]["uar"] for r in per_corpus) / len(per_corpus),
                test_uar=sum(r["test"]["uar"] for r in per_corpus) / len(per_corpus),
            )
        )
    return found, skipped


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
