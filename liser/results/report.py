"""The paper's tables and figure from the cross-validation results: Table 2 (configurations, with the
matched-steps control), Table 3 (ablations, per teacher), Figure 2 (less labeled speech), each with the paper's
figures alongside; every row's relative change in UAR over no-dstl (as the paper prints it), its candidates, their
mean test UAR beside the kept one's, and its optimiser steps; paired contrasts over folds
(:mod:`liser.results.statistics`); the protocol reading that produced it; plus the plot data DVC renders (confusion
per configuration, label efficiency).

UAR is given two ways: the mean ± sample standard deviation (ddof 1) of the per-fold UARs, the primary figure (as
the paper's tables), and the UAR over the pooled test predictions of every fold ("pooled UAR"), labelled as such.
A fold's score is the mean over its seeds; every inference is over folds.

A contrast between a configuration without teachers and one with is made at an equal selection budget: the
former's per-fold scores are re-chosen on validation from its first K candidates, K the other's (its candidates are
draws of the seed, which any K of can stand for; a λ grid cannot be cut)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on a server
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from liser.files import atomic_path, read_json, write_csv, write_json, write_text  # noqa: E402
from liser.results.statistics import fold_contrast, ratio_of_test_to_train  # noqa: E402
from liser.students.configurations import (  # noqa: E402
    CONTROLS,
    FIGURE_2,
    RESULTS_FILE,
    TABLE_2,
    TABLE_3,
    run_location,
)

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


def collect(corpora: list[str], runs: list[str], metrics: Path, outputs: Path) -> dict:
    """Every corpus's and run's figures (its stage's metrics file, ``metrics/<corpus>/<run>.json``; a Figure 2
    share's entry in its configuration's) with its folds, seeds and candidates (``results.json`` in its folder,
    :func:`liser.students.configurations.run_location`), as {corpus: {run: results}}."""
    located = {run: run_location(run) for run in runs}
    files = [
        path
        for c in corpora
        for folder, metrics_file, _ in located.values()
        for path in (metrics / c / metrics_file, outputs / c / folder / RESULTS_FILE)
        if not path.is_file()
    ]
    if files:
        raise FileNotFoundError(f"missing student results: {', '.join(map(str, sorted(set(files))))}")

    def figures(corpus: str, run: str) -> dict:
        folder, metrics_file, key = located[run]
        stage = read_json(metrics / corpus / metrics_file)
        if key is not None:
            if key not in stage:
                raise FileNotFoundError(
                    f"missing student results: {metrics / corpus / metrics_file} has no share {key}"
                )
            stage = stage[key]
        return {**read_json(outputs / corpus / folder / RESULTS_FILE), **stage}

    return {corpus: {run: figures(corpus, run) for run in runs} for corpus in corpora}


BASELINE = "no-dstl"
CONTROL = "no-dstl-matched-steps"
ABLATIONS = sorted({run for per_teacher in TABLE_3.values() for run in per_teacher.values()} - set(TABLE_2))


def _cell(result: dict, metric: str) -> str:
    return f"{result['test'][metric]:.3f} ± {result['test'][f'{metric}_std']:.3f}"


def relative_change(result: dict, baseline: dict) -> float:
    """The change in mean test UAR over the baseline's, in % of the baseline's (the paper's "+15.09 %")."""
    return 100 * (result["test"]["uar"] - baseline["test"]["uar"]) / baseline["test"]["uar"]


def _change(results: dict, corpus: str, run: str) -> str:
    return f"{relative_change(results[corpus][run], results[corpus][BASELINE]):+.2f} %"


def _steps(result: dict) -> str:
    """Optimiser steps of a fold's student (both stages of two-stage training), mean over folds."""
    return f"{result['steps']:,.0f}"


def _distils(result: dict) -> bool:
    """Whether a run's candidates are λ values (else draws of the seed, which a budget may cut)."""
    return any(c["lambda_sd"] > 0 or c["lambda_vd"] > 0 for c in result["trained_candidates"])


def fold_scores(result: dict, budget: int | None = None) -> dict[str, float]:
    """Test UAR per fold (the mean over its seeds); with ``budget``, each fold and seed re-chosen on validation from
    the first ``budget`` candidates only (ties: the earlier)."""
    scores = {}
    for fold, record in result["folds"].items():
        if budget is None:
            scores[fold] = record["test"]["uar"]
            continue
        kept = []
        for seed in record["seeds"].values():
            pool = seed["candidates"][:budget]
            best = max(range(len(pool)), key=lambda i: (pool[i]["validation_uar"], -i))
            kept.append(pool[best]["test_uar"])
        scores[fold] = sum(kept) / len(kept)
    return scores


def _budgets(result: dict, baseline: dict) -> tuple[int | None, int | None]:
    """Each side's candidate budget in a contrast: a side without teachers is cut to the other side's count (to the
    smaller when neither has teachers); a side with teachers keeps its λ grid."""
    mine, theirs = result["candidates"]["count"], baseline["candidates"]["count"]
    cut_mine = not _distils(result) and mine > theirs
    cut_theirs = not _distils(baseline) and theirs > mine
    return (theirs if cut_mine else None), (mine if cut_theirs else None)


def contrast(result: dict, baseline: dict) -> dict:
    """The run's test UAR minus the baseline's over the folds (same test speakers), at an equal selection budget:
    :func:`liser.results.statistics.fold_contrast`, with the candidates each side was chosen from."""
    budget, baseline_budget = _budgets(result, baseline)
    ours, theirs = fold_scores(result, budget), fold_scores(baseline, baseline_budget)
    shared = sorted(set(ours) & set(theirs), key=int)
    if not shared:
        raise ValueError("no fold in common with the baseline")
    ratio = ratio_of_test_to_train([baseline["folds"][f]["utterances"] for f in shared])
    compared = fold_contrast([ours[f] for f in shared], [theirs[f] for f in shared], ratio).as_dict()
    compared["candidates"] = budget or result["candidates"]["count"]
    compared["baseline_candidates"] = baseline_budget or baseline["candidates"]["count"]
    return compared


def _paper(pair: tuple[float, float] | None) -> list[str]:
    return [f"{pair[0]:.3f}", f"{pair[1]:.3f}"] if pair else ["-", "-"]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def _candidates(result: dict) -> list[str]:
    count = result["candidates"]["count"]
    return [f"{count}", f"{result['candidates']['test_uar']:.3f}"]


def _table_2(results: dict, corpora: list[str]) -> list[str]:
    lines = [
        "## Table 2: configurations",
        "",
        "UAR and WAR: mean ± sample std of the per-fold scores; pooled UAR: over every fold's test predictions "
        "together. UAR vs no-dstl: the change in mean UAR, in % of no-dstl's. candidates: the students trained per "
        "fold and seed, of which the best on validation is kept (λ values, or draws of the seed for a configuration "
        "without teachers); their mean test UAR beside the kept one's shows what the choice itself adds. steps: "
        "optimiser steps of a fold's student (mean over folds). no-dstl-matched-steps is no-dstl trained for "
        "vid-sp-dstl's steps: what the unlabeled items' extra steps alone would give.",
        "",
    ]
    for corpus in corpora:
        header = ["configuration", "UAR", "WAR", "pooled UAR", "UAR vs no-dstl", "candidates", "candidates' UAR"]
        header += ["steps", *(["paper UAR", "paper WAR"] if corpus in PAPER_CORPORA else [])]
        rows = []
        for name in [*TABLE_2, *CONTROLS]:
            result = results[corpus][name]
            row = [name, _cell(result, "uar"), _cell(result, "war"), f"{result['test']['pooled_uar']:.3f}"]
            row += [_change(results, corpus, name), *_candidates(result), _steps(result)]
            if corpus in PAPER_CORPORA:
                row += _paper(PAPER_TABLE_2.get(name, {}).get(corpus))
            rows.append(row)
        lines += [f"### {corpus_title(corpus)}", "", *_table(header, rows), ""]
    return lines


def _table_3(results: dict, corpora: list[str]) -> list[str]:
    lines = ["## Table 3: ablations of the distillation loss and of the training method", ""]
    for corpus in corpora:
        header = ["configuration"]
        header += [f"{t} {m}" for t in ("video", "speech") for m in ("UAR", "WAR", "UAR vs no-dstl", "steps")]
        if corpus == "ravdess":
            header += ["paper video UAR", "paper video WAR", "paper speech UAR", "paper speech WAR"]
        rows = []
        for label in TABLE_3["video"]:
            row = [label]
            for t in ("video", "speech"):
                run = TABLE_3[t][label]
                row += [_cell(results[corpus][run], "uar"), _cell(results[corpus][run], "war")]
                row += [_change(results, corpus, run), _steps(results[corpus][run])]
            if corpus == "ravdess":
                row += [cell for t in ("video", "speech") for cell in _paper(PAPER_TABLE_3[t][label])]
            rows.append(row)
        lines += [f"### {corpus_title(corpus)}", "", *_table(header, rows), ""]
    lines += [
        "two-stage-train counts the steps of both stages; its first stage runs once per fold and seed with λ = 1, "
        "since λ only scales its one loss term, which AdamW's step does not see (docs/paper-map.md).",
        "",
    ]
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
                    "pooled_uar": test["pooled_uar"],
                    "uar_vs_no_dstl_percent": relative_change(result, results[corpus][BASELINE]),
                    "steps": result["steps"],
                }
            )
    return pd.DataFrame(rows)


def contrasts(percents: list[int]) -> dict[str, list[tuple[str, str]]]:
    """The contrasts of the report, by group: (run, baseline) pairs."""
    runs = [*TABLE_2, *CONTROLS, *ABLATIONS]
    distilled = [run for run in [*TABLE_2, *ABLATIONS] if run != BASELINE]
    return {
        "against no-dstl": [(run, BASELINE) for run in [*runs, *_figure_2_runs(percents)] if run != BASELINE],
        "against no-dstl trained for vid-sp-dstl's steps": [(run, CONTROL) for run in distilled],
        "both teachers against one": [("vid-sp-dstl", "vid-dstl"), ("vid-sp-dstl", "sp-dstl")],
        "confidence weights (eq. 5 against eq. 4)": [("conf-vid-sp-dstl", "vid-sp-dstl")],
        "Figure 2 at the same labeled share": [
            (f"vid-sp-dstl-labeled{p}", f"no-dstl-labeled{p}") for p in sorted(percents)
        ],
    }


def _points(value: float) -> str:
    return f"{100 * value:+.2f}"


def _interval(low: float, high: float) -> str:
    return f"[{_points(low)}, {_points(high)}]"


def _contrast_section(results: dict, corpora: list[str], percents: list[int]) -> tuple[list[str], dict]:
    lines = [
        "## Paired contrasts over folds",
        "",
        "Each row is a run's test UAR minus its baseline's on the same folds (same test speakers), in UAR points, "
        "with k folds as the units (k - 1 degrees of freedom; a fold's score is the mean over its seeds): the mean "
        "difference, its 95 % interval by Student's t, the same corrected for the overlap of the folds' training "
        "sets (Nadeau and Bengio: the variance times 1/k + n_test/n_train, from each fold's utterance counts), and "
        "the folds won / lost / tied. candidates: how many each side was chosen from on validation; a run without "
        "teachers is re-chosen from its first candidates when the other side had fewer. An interval that excludes "
        "0 is a measured gain or loss; one that spans 0 is not. Read the corrected interval first.",
        "",
    ]
    found: dict = {}
    for corpus in corpora:
        lines += [f"### {corpus_title(corpus)}", ""]
        for group, pairs in contrasts(percents).items():
            rows = []
            for run, baseline in pairs:
                compared = contrast(results[corpus][run], results[corpus][baseline])
                found.setdefault(corpus, {})[f"{run} - {baseline}"] = compared
                rows.append(
                    [
                        f"{run} − {baseline}",
                        f"{compared['candidates']} vs {compared['baseline_candidates']}",
                        _points(compared["mean"]),
                        _interval(compared["t_low"], compared["t_high"]),
                        _interval(compared["corrected_low"], compared["corrected_high"]),
                        f"{compared['won']} / {compared['lost']} / {compared['tied']}",
                    ]
                )
            header = ["contrast", "candidates", "UAR difference", "95 % t", "95 % corrected", "won / lost / tied"]
            lines += [f"#### {group}", "", *_table(header, rows), ""]
    return lines, found


def _figure_2_runs(percents: list[int]) -> list[str]:
    return [f"{name}-labeled{p}" for name in FIGURE_2 for p in sorted(percents)]


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
    """The test confusion pooled over folds and seeds.  The validation curves are the student stages' own, through
    DVCLive (:mod:`liser.tracking`)."""
    folders = [runs / corpus / run_location(run)[0] / f"fold{k}" for k in folds]
    files = [f / "predictions.parquet" for f in folders] + sorted(
        p for f in folders for p in f.glob("seed*/predictions.parquet")
    )
    pooled = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    write_csv(
        plots / "confusion" / f"{corpus}_{run}.csv",
        pooled[["actual_emotion", "predicted_emotion"]].set_axis(["actual", "predicted"], axis=1),
    )


def _protocol_lines(protocol: dict[str, object], results: dict) -> list[str]:
    settings = ", ".join(f"`{key}: {value}`" for key, value in protocol.items() if key != "protocol.reading")
    seeds = sorted({tuple(r["seeds"]) for per_run in results.values() for r in per_run.values()})
    return [
        f"Protocol: the **{protocol['protocol.reading']}** reading of the paper (`protocol.reading`; "
        f"docs/paper-map.md): {settings}. Seeds per fold: {', '.join(str(list(s)) for s in seeds)}; a fold's "
        "score is the mean over its seeds.",
        "",
    ]


def report(
    corpora: list[str],
    folds: list[int],
    percents: list[int],
    protocol: dict[str, object],
    runs: Path,
    metrics: Path,
    summary_out: Path,
    plots: Path,
    reports: Path,
) -> dict:
    """Write ``reports/results.md`` (Tables 2 and 3, Figure 2's table, the paired contrasts), ``reports/figure2.png``,
    everything in ``reports/results.json``, the plot data, and ``summary_out``: Table 2's UAR per corpus and
    configuration, the few figures DVC shows per experiment.  ``protocol``: the reading and the settings it sets,
    stated at the top."""
    fractions = _figure_2_runs(percents)
    runs_listed = [*TABLE_2, *CONTROLS, *ABLATIONS, *fractions]
    results = collect(corpora, runs_listed, metrics, runs)
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
        *_protocol_lines(protocol, results),
        f"Test UAR and WAR over {len(folds)} folds: the mean ± sample standard deviation (ddof 1) of the per-fold "
        "scores, the primary figures (as the paper's tables); pooled UAR: UAR over the test predictions of every fold "
        "together. The paper's figures alongside.",
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
                f"{r.pooled_uar:.3f}",
                f"{r.uar_vs_no_dstl_percent:+.2f} %",
                f"{r.steps:,.0f}",
            ]
            for r in table.itertuples()
        ]
        header = ["configuration", "labeled %", "UAR", "WAR", "pooled UAR", "UAR vs no-dstl (100 %)", "steps"]
        lines += [f"### {corpus_title(corpus)}", "", *_table(header, rows), ""]
    contrast_lines, compared = _contrast_section(results, corpora, percents)
    lines += contrast_lines
    write_text(reports / "results.md", "\n".join(lines))
    write_json(
        reports / "results.json",
        {
            "protocol": protocol,
            "runs": {
                corpus: {
                    run: {key: r[key] for key in ("test", "validation", "candidates", "steps")}
                    for run, r in per_run.items()
                }
                for corpus, per_run in results.items()
            },
            "contrasts": compared,
        },
    )
    summary = {
        corpus: {run: results[corpus][run]["test"]["uar"] for run in [*TABLE_2, *CONTROLS]} for corpus in corpora
    }
    write_json(summary_out, summary)
    return summary
