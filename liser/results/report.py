"""The paper's tables and figure from the cross-validation results: Table 2 (configurations, with the
matched-steps control), Table 3 (ablations, per teacher), Figure 2 (less labeled speech), each with the paper's
figures alongside; every row's relative change in UAR over no-dstl (as the paper prints it) and its optimiser
steps; a paired comparison of every configuration with no-dstl over the folds; plus the plot data DVC renders
(confusion per configuration, label efficiency).

Every standard deviation here is the sample standard deviation over folds (ddof 1), as in every metrics file."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on a server
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from liser.files import atomic_path, read_json, write_csv, write_json, write_text  # noqa: E402
from liser.metrics import paired_difference  # noqa: E402
from liser.students.configurations import CONTROLS, FIGURE_2, TABLE_2, TABLE_3  # noqa: E402

__all__ = ["PAPER_TABLE_2", "PAPER_TABLE_3", "PAPER_CORPORA", "collect", "report"]

TITLES = {"ravdess": "RAVDESS", "crema_d": "CREMA-D"}  # the paper's corpora, by their names in the paper
PAPER_CORPORA = tuple(TITLES)  # the paper's columns are shown for these; other corpora have none
# (UAR, WAR) as printed in the paper, for reference beside ours.
PAPER_TABLE_2 = {
    "no-dstl": {"ravdess": (0.517, 0.535), "crema_d": (0.551, 0.55)},
    "vid-dstl": {"ravdess": (0.534, 0.547), "crema_d": (0.576, 0.575)},
    "sp-dstl": {"ravdess": (0.545, 0.556), "crema_d": (0.576, 0.575)},
    "vid-sp-dstl": {"ravdess": (0.556, 0.57), "crema_d": (0.584, 0.583)},
    "conf-vid-sp-dstl": {"ravdess": (0.595, 0.611), "crema_d": (0.578, 0.576)},
}
PAPER_TABLE_3 = {  # RAVDESS only in the paper
    "video": {"vid-dstl / sp-dstl": (0.534, 0.547), "distill-ce": (0.523, 0.54), "two-stage-train": (0.464, 0.485)},
    "speech": {"vid-dstl / sp-dstl": (0.545, 0.556), "distill-ce": (0.54, 0.546), "two-stage-train": (0.511, 0.528)},
}


def corpus_title(name: str) -> str:
    """How reports name a corpus: the paper's name for RAVDESS and CREMA-D, else its name in params.yaml."""
    return TITLES.get(name, name)


def collect(corpora: list[str], runs: list[str], metrics: Path) -> dict:
    """``metrics/<corpus>/<run>.json`` of every corpus and run, as {corpus: {run: metrics}}."""
    missing = [metrics / c / f"{r}.json" for c in corpora for r in runs if not (metrics / c / f"{r}.json").is_file()]
    if missing:
        raise FileNotFoundError(f"missing student results: {', '.join(map(str, missing))}")
    return {corpus: {run: read_json(metrics / corpus / f"{run}.json") for run in runs} for corpus in corpora}


BASELINE = "no-dstl"


def _cell(result: dict, metric: str) -> str:
    return f"{result['test'][metric]:.3f} ± {result['test'][f'{metric}_std']:.3f}"


def relative_change(result: dict, baseline: dict) -> float:
    """The change in mean test UAR over the baseline's, in % of the baseline's (the paper's "+15.09 %")."""
    return 100 * (result["test"]["uar"] - baseline["test"]["uar"]) / baseline["test"]["uar"]


def _change(results: dict, corpus: str, run: str) -> str:
    return f"{relative_change(results[corpus][run], results[corpus][BASELINE]):+.2f} %"


def _steps(result: dict) -> str:
    """Optimiser steps of a fold's student, mean over folds."""
    return f"{result['steps']:,.0f}" if "steps" in result else "-"


def fold_scores(result: dict) -> dict[str, float]:
    """Test UAR per fold, keyed by fold."""
    return {fold: scores["test"]["uar"] for fold, scores in result["folds"].items()}


def paired_with_baseline(result: dict, baseline: dict) -> dict:
    """The run's test UAR minus the baseline's over the folds both have (same test speakers)."""
    ours, theirs = fold_scores(result), fold_scores(baseline)
    shared = sorted(set(ours) & set(theirs), key=int)
    if not shared:
        raise ValueError("no fold in common with the baseline")
    return paired_difference([ours[f] for f in shared], [theirs[f] for f in shared]).as_dict()


def _paper(pair: tuple[float, float] | None) -> list[str]:
    return [f"{pair[0]:.3f}", f"{pair[1]:.3f}"] if pair else ["-", "-"]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def _table_2(results: dict, corpora: list[str]) -> list[str]:
    header = ["configuration"]
    header += [f"{corpus_title(c)} {m}" for c in corpora for m in ("UAR", "WAR", "UAR vs no-dstl", "steps")]
    header += [f"paper {corpus_title(c)} {m}" for c in corpora if c in PAPER_CORPORA for m in ("UAR", "WAR")]
    rows = []
    for name in [*TABLE_2, *CONTROLS]:
        row = [name]
        for c in corpora:
            result = results[c][name]
            row += [_cell(result, "uar"), _cell(result, "war"), _change(results, c, name), _steps(result)]
        row += [cell for c in corpora if c in PAPER_CORPORA for cell in _paper(PAPER_TABLE_2.get(name, {}).get(c))]
        rows.append(row)
    return [
        "## Table 2: configurations",
        "",
        "UAR vs no-dstl: the change in mean UAR, in % of no-dstl's. steps: optimiser steps of a fold's student "
        "(mean over folds). no-dstl-matched-steps is no-dstl trained for vid-sp-dstl's steps: what the unlabeled "
        "items' extra steps alone would give.",
        "",
        *_table(header, rows),
        "",
    ]


def _table_3(results: dict, corpora: list[str]) -> list[str]:
    lines = ["## Table 3: ablations of the distillation loss and of the training method", ""]
    for corpus in corpora:
        header = ["configuration"]
        header += [f"{t} {m}" for t in ("video", "speech") for m in ("UAR", "WAR", "UAR vs no-dstl")]
        if corpus == "ravdess":
            header += ["paper video UAR", "paper video WAR", "paper speech UAR", "paper speech WAR"]
        rows = []
        for label in TABLE_3["video"]:
            row = [label]
            for t in ("video", "speech"):
                run = TABLE_3[t][label]
                row += [_cell(results[corpus][run], "uar"), _cell(results[corpus][run], "war")]
                row += [_change(results, corpus, run)]
            if corpus == "ravdess":
                row += [cell for t in ("video", "speech") for cell in _paper(PAPER_TABLE_3[t][label])]
            rows.append(row)
        lines += [f"### {corpus_title(corpus)}", "", *_table(header, rows), ""]
    return lines


def label_efficiency(results: dict, corpus: str, percents: list[int]) -> pd.DataFrame:
    """Test UAR/WAR (mean and std over folds) per configuration of Figure 2 and labeled share, the change in UAR
    over no-dstl on all labeled utterances (% of its UAR; the paper's comparison) and the optimiser steps."""
    rows = []
    for name in FIGURE_2:
        for percent in [*sorted(percents), 100]:
            run = name if percent == 100 else f"{name}-labeled{percent}"
            result = results[corpus][run]
            test = result["test"]
            rows.append(
                {
                    "configuration": name,
                    "labeled_percent": percent,
                    "uar": test["uar"],
                    "uar_std": test["uar_std"],
                    "war": test["war"],
                    "war_std": test["war_std"],
                    "uar_vs_no_dstl_percent": relative_change(result, results[corpus][BASELINE]),
                    "steps": result.get("steps", float("nan")),
                }
            )
    return pd.DataFrame(rows)


def _paired_section(results: dict, corpora: list[str], runs: list[str], folds: int) -> list[str]:
    lines = [
        "## Paired comparison with no-dstl",
        "",
        f"Each run's test UAR minus no-dstl's on the same fold (same test speakers), over the {folds} folds (one "
        "seed per fold): the mean difference in UAR points, its 95 % confidence interval (Student's t, n - 1 "
        "degrees of freedom) and the folds it wins. An interval that excludes 0 is a measured gain or loss; one "
        "that spans 0 is not.",
        "",
    ]
    for corpus in corpora:
        rows = []
        for run in runs:
            paired = paired_with_baseline(results[corpus][run], results[corpus][BASELINE])
            rows.append(
                [
                    run,
                    f"{100 * paired['mean']:+.2f}",
                    f"[{100 * paired['low']:+.2f}, {100 * paired['high']:+.2f}]",
                    f"{paired['wins']} of {paired['pairs']}",
                ]
            )
        header = ["run", "UAR difference (points)", "95 % interval", "folds won"]
        lines += [f"### {corpus_title(corpus)}", "", *_table(header, rows), ""]
    return lines


def _figure_2(curves: dict[str, pd.DataFrame], target: Path) -> None:
    figure, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.4), squeeze=False)
    for axis, (corpus, table) in zip(axes[0], curves.items()):
        for name, members in table.groupby("configuration", sort=False):
            axis.errorbar(
                members["labeled_percent"], members["uar"], yerr=members["uar_std"], marker="o", capsize=3, label=name
            )
        axis.set_title(corpus_title(corpus))
        axis.set_xlabel("labeled training utterances (%)")
        axis.set_ylabel("test UAR (mean ± std over folds)")
        axis.set_xticks(sorted(table["labeled_percent"].unique()))
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    with atomic_path(target) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)


def _plot_data(corpus: str, run: str, runs: Path, folds: list[int], plots: Path) -> None:
    """The test confusion pooled over folds.  The validation curves are the student stages' own, through DVCLive
    (:mod:`liser.tracking`)."""
    folders = [runs / corpus / run / f"fold{k}" for k in folds]
    pooled = pd.concat([pd.read_parquet(f / "predictions.parquet") for f in folders], ignore_index=True)
    write_csv(
        plots / "confusion" / f"{corpus}_{run}.csv",
        pooled[["actual_emotion", "predicted_emotion"]].set_axis(["actual", "predicted"], axis=1),
    )


def report(
    corpora: list[str],
    folds: list[int],
    percents: list[int],
    runs: Path,
    metrics: Path,
    summary_out: Path,
    plots: Path,
    reports: Path,
) -> dict:
    """Write ``reports/results.md`` (Tables 2 and 3), ``reports/figure2.png``, the plot data and the summary."""
    ablations = sorted({run for per_teacher in TABLE_3.values() for run in per_teacher.values()} - set(TABLE_2))
    fractions = [f"{name}-labeled{p}" for name in FIGURE_2 for p in percents]
    runs_listed = [*TABLE_2, *CONTROLS, *ablations, *fractions]
    results = collect(corpora, runs_listed, metrics)
    for corpus in corpora:
        for run in runs_listed:
            _plot_data(corpus, run, runs, folds, plots)
    curves = {corpus: label_efficiency(results, corpus, percents) for corpus in corpora}
    for corpus, table in curves.items():
        write_csv(plots / "label_efficiency" / f"{corpus}.csv", table)
    _figure_2(curves, reports / "figure2.png")
    lines = [
        "# LiSER results: speaker-independent cross-validation",
        "",
        f"Test UAR and WAR, mean ± sample standard deviation (ddof 1) over {len(folds)} folds; the paper's "
        "figures alongside.",
        "",
        *_table_2(results, corpora),
        *_table_3(results, corpora),
        "## Figure 2: less labeled speech",
        "",
        "![Figure 2](figure2.png)",
        "",
    ]
    for corpus, table in curves.items():
        rows = [
            [
                r.configuration,
                f"{r.labeled_percent}",
                f"{r.uar:.3f} ± {r.uar_std:.3f}",
                f"{r.war:.3f} ± {r.war_std:.3f}",
                f"{r.uar_vs_no_dstl_percent:+.2f} %",
                f"{r.steps:,.0f}",
            ]
            for r in table.itertuples()
        ]
        header = ["configuration", "labeled %", "UAR", "WAR", "UAR vs no-dstl (100 %)", "steps"]
        lines += [f"### {corpus_title(corpus)}", "", *_table(header, rows), ""]
    lines += _paired_section(results, corpora, [r for r in runs_listed if r != BASELINE], len(folds))
    write_text(reports / "results.md", "\n".join(lines))
    summary = {
        corpus: {
            run: {
                "uar": r["test"]["uar"],
                "uar_std": r["test"]["uar_std"],
                "war": r["test"]["war"],
                "war_std": r["test"]["war_std"],
                "validation_uar": r["validation"]["uar"],
                "uar_vs_no_dstl_percent": relative_change(r, per_run[BASELINE]),
                "steps": r.get("steps"),
            }
            for run, r in per_run.items()
        }
        for corpus, per_run in results.items()
    }
    write_json(summary_out, summary)
    return summary
