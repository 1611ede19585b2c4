"""Experiments side by side: each student run's test UAR in several DVC experiments (two readings of the paper, two
profiles, any two settings), from `dvc exp show --json`.

Every entry of `dvc exp show --json` that has student results (the student stages' metrics files,
``metrics/students/<corpus>/<run>.json``; a Figure 2 stage's holds a run per share) is an :class:`Experiment`,
named by its experiment or branch name (``workspace``, ``main``, ``literal``) and labelled with its
``protocol.reading`` and ``profile``.
:func:`side_by_side` writes one Markdown table per corpus: a row per run (Table 2, the control, Table 3, Figure 2),
a column per experiment with UAR as mean ± sample std of the per-fold scores, and with two experiments the
difference of their means.  Per-fold contrasts within one experiment are the report's
(:mod:`liser.results.report`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from liser.params import PROFILES, READINGS, resolve_switches
from liser.results.lambda_search import experiment_entries
from liser.students.configurations import CONTROLS, FIGURE_2, SHARES, TABLE_2, TABLE_3

__all__ = ["Experiment", "experiments", "select", "side_by_side"]

_STUDENT_METRICS = re.compile(r"metrics/students/(?P<corpus>[^/]+)/(?P<run>[^/]+)\.json")
_ORDER = [*TABLE_2, *CONTROLS, *(run for per_teacher in TABLE_3.values() for run in per_teacher.values())]


@dataclass(frozen=True)
class Experiment:
    name: str  # the experiment's name, its branch's, or its commit's first 7 characters; "workspace"
    rev: str
    reading: str  # protocol.reading, as resolved for its profile
    profile: str
    results: dict[str, dict[str, dict]]  # corpus -> run -> the run's figures (its stage's metrics file)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.reading}, {self.profile})"


def experiments(shown: list) -> list[Experiment]:
    """Every entry of `dvc exp show --json` with student results, in the order shown."""
    found = []
    for entry in experiment_entries(shown):
        rev = entry.get("rev") or entry["data"].get("rev") or ""
        results: dict[str, dict[str, dict]] = {}
        for path, metrics in entry["data"]["metrics"].items():
            matched = _STUDENT_METRICS.fullmatch(path)
            figures = (metrics or {}).get("data")
            if matched and isinstance(figures, dict):
                results.setdefault(matched["corpus"], {}).update(_runs_of(matched["run"], figures))
        results = {corpus: runs for corpus, runs in results.items() if runs}
        if not results:
            continue
        raw = (entry["data"]["params"].get("params.yaml") or {}).get("data") or {}
        profile = raw.get("profile", PROFILES[0])
        protocol = resolve_switches(raw.get("protocol") or {}, {PROFILES: profile}, "protocol")
        reading = protocol.get("reading", READINGS[0]) if isinstance(protocol, dict) else READINGS[0]
        name = entry.get("name") or (rev if rev == "workspace" else rev[:7])
        found.append(Experiment(name, rev, str(reading), str(profile), results))
    return found


def _runs_of(stage: str, figures: dict) -> dict[str, dict]:
    """A student stage's metrics file as {run: figures}: one run, or for a Figure 2 stage (``no-dstl-labeled``) a
    run per share, ``no-dstl-labeled25`` for its entry ``25``."""
    if isinstance(figures.get("test"), dict):
        return {stage: figures}
    if not stage.endswith(SHARES):
        return {}
    return {
        f"{stage}{percent}": share
        for percent, share in figures.items()
        if percent.isdigit() and isinstance(share, dict) and isinstance(share.get("test"), dict)
    }


def select(found: list[Experiment], names: list[str]) -> list[Experiment]:
    """The experiments called ``names`` (a name, or the start of a commit), in that order; all when none is given."""
    if not names:
        return found
    chosen = []
    for name in names:
        matches = [e for e in found if e.name == name or (len(name) >= 4 and e.rev.startswith(name))]
        if not matches:
            known = ", ".join(e.name for e in found) or "none"
            raise ValueError(f"no experiment {name!r} with student results (those with results: {known})")
        chosen.append(matches[0])
    return chosen


def _runs(found: list[Experiment], corpus: str) -> list[str]:
    present = {run for e in found for run in e.results.get(corpus, {})}
    ordered = [run for run in _ORDER if run in present]
    shares = sorted(
        (run for run in present if run not in ordered), key=lambda r: (FIGURE_2.index(r.split(SHARES)[0]), r)
    )
    return ordered + shares


def _cell(figures: dict | None) -> str:
    if figures is None:
        return "-"
    return f"{figures['test']['uar']:.3f} ± {figures['test']['uar_std']:.3f}"


def side_by_side(found: list[Experiment]) -> list[str]:
    """Markdown: per corpus, each run's test UAR (mean ± std over folds) in each experiment; with two, the second
    minus the first in UAR points."""
    if not found:
        raise ValueError("no experiment with student results to show")
    corpora = sorted({corpus for e in found for corpus in e.results})
    two = len(found) == 2
    lines = [
        "# Test UAR side by side",
        "",
        "Mean ± sample std (ddof 1) of the per-fold UARs of each run, per experiment (`dvc exp show --json`)"
        + (f"; the last column: {found[1].name} − {found[0].name}, in UAR points." if two else "."),
        "",
    ]
    for corpus in corpora:
        header = ["run", *(e.label for e in found), *([f"{found[1].name} − {found[0].name}"] if two else [])]
        lines += [f"## {corpus}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for run in _runs(found, corpus):
            cells = [_cell(e.results.get(corpus, {}).get(run)) for e in found]
            if two:
                pair = [e.results.get(corpus, {}).get(run) for e in found]
                cells.append("-" if None in pair else f"{100 * (pair[1]['test']['uar'] - pair[0]['test']['uar']):+.2f}")
            lines.append("| " + " | ".join([run, *cells]) + " |")
        lines.append("")
    return lines
