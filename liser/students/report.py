"""The paper's tables and figure from the cross-validation results: Table 2 (configurations), Table 3
(ablations, per teacher), Figure 2 (less labeled speech), each with the paper's figures alongside, plus
the plot data DVC renders (confusion per configuration, validation curves, label efficiency)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on a server
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from liser.files import atomic_path, read_json, write_csv, write_json, write_text  # noqa: E402
from liser.students.configurations import FIGURE_2, TABLE_2, TABLE_3  # noqa: E402

__all__ = ["PAPER_TABLE_2", "PAPER_TABLE_3", "CORPUS_NAMES", "collect", "report"]

CORPUS_NAMES = {"ravdess": "RAVDESS", "crema_d": "CREMA-D"}
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


def collect(corpora: list[str], runs: list[str], metrics: Path) -> dict:
    """``metrics/<corpus>/<run>.json`` of every corpus and run, as {corpus: {run: metrics}}."""
    missing = [metrics / c / f"{r}.json" for c in corpora for r in runs if not (metrics / c / f"{r}.json").is_file()]
    if missing:
        raise FileNotFoundError(f"missing student results: {', '.join(map(str, missing))}")
    return {corpus: {run: read_json(metrics / corpus / f"{run}.json") for run in runs} for corpus in corpora}


def _cell(result: dict, metric: str) -> str:
    return f"{result['test'][metric]:.3f} ± {result['test'][f'{metric}_std']:.3f}"


def _paper(pair: tuple[float, float] | None) -> list[str]:
    return [f"{pair[0]:.3f}", f"{pair[1]:.3f}"] if pair else ["-", "-"]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def _table_2(results: dict, corpora: list[str]) -> list[str]:
    header = ["configuration"] + [f"{CORPUS_NAMES[c]} {m}" for c in corpora for m in ("UAR", "WAR")]
    header += [f"paper {CORPUS_NAMES[c]} {m}" for c in corpora for m in ("UAR", "WAR")]
    rows = []
    for name in TABLE_2:
        row = [name] + [_cell(results[c][name], m) for c in corpora for m in ("uar", "war")]
        row += [cell for c in corpora for cell in _paper(PAPER_TABLE_2[name].get(c))]
        rows.append(row)
    return ["## Table 2: configurations", "", *_table(header, rows), ""]


def _table_3(results: dict, corpora: list[str]) -> list[str]:
    lines = ["## Table 3: ablations of the distillation loss and of the training method", ""]
    for corpus in corpora:
        header = ["configuration", "video UAR", "video WAR", "speech UAR", "speech WAR"]
        if corpus == "ravdess":
            header += ["paper video UAR", "paper video WAR", "paper speech UAR", "paper speech WAR"]
        rows = []
        for label in TABLE_3["video"]:
            row = [label] + [
                _cell(results[corpus][TABLE_3[t][label]], m) for t in ("video", "speech") for m in ("uar", "war")
            ]
            if corpus == "ravdess":
                row += [cell for t in ("video", "speech") for cell in _paper(PAPER_TABLE_3[t][label])]
            rows.append(row)
        lines += [f"### {CORPUS_NAMES[corpus]}", "", *_table(header, rows), ""]
    return lines


def label_efficiency(results: dict, corpus: str, percents: list[int]) -> pd.DataFrame:
    """Test UAR/WAR (mean and std over folds) per configuration of Figure 2 and labeled share."""
    rows = []
    for name in FIGURE_2:
        for percent in [*sorted(percents), 100]:
            run = name if percent == 100 else f"{name}-labeled{percent}"
            test = results[corpus][run]["test"]
            rows.append(
                {
                    "configuration": name,
                    "labeled_percent": percent,
                    "uar": test["uar"],
                    "uar_std": test["uar_std"],
                    "war": test["war"],
                    "war_std": test["war_std"],
                }
            )
    return pd.DataFrame(rows)


def _figure_2(curves: dict[str, pd.DataFrame], target: Path) -> None:
    figure, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.4), squeeze=False)
    for axis, (corpus, table) in zip(axes[0], curves.items()):
        for name, members in table.groupby("configuration", sort=False):
            axis.errorbar(
                members["labeled_percent"], members["uar"], yerr=members["uar_std"], marker="o", capsize=3, label=name
            )
        axis.set_title(CORPUS_NAMES[corpus])
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
    folders = [runs / corpus / run / f"fold{k}" for k in folds]
    pooled = pd.concat([pd.read_parquet(f / "predictions.parquet") for f in folders], ignore_index=True)
    write_csv(
        plots / "confusion" / f"{corpus}_{run}.csv",
        pooled[["actual_emotion", "predicted_emotion"]].set_axis(["actual", "predicted"], axis=1),
    )
    curves = pd.concat([pd.read_parquet(f / "history.parquet").assign(fold=k) for k, f in zip(folds, folders)])
    write_csv(plots / "curves" / f"{corpus}_{run}.csv", curves)


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
    runs_listed = [*TABLE_2, *ablations, *fractions]
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
        f"Test UAR and WAR, mean ± standard deviation over {len(folds)} folds; the paper's figures alongside.",
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
            ]
            for r in table.itertuples()
        ]
        lines += [f"### {CORPUS_NAMES[corpus]}", "", *_table(["configuration", "labeled %", "UAR", "WAR"], rows), ""]
    write_text(reports / "results.md", "\n".join(lines))
    summary = {
        corpus: {
            run: {
                "uar": r["test"]["uar"],
                "uar_std": r["test"]["uar_std"],
                "war": r["test"]["war"],
                "war_std": r["test"]["war_std"],
                "validation_uar": r["validation"]["uar"],
            }
            for run, r in per_run.items()
        }
        for corpus, per_run in results.items()
    }
    write_json(summary_out, summary)
    return summary
