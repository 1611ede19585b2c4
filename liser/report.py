"""Cross-validation results gathered over corpora, configurations and folds, as metrics,
plot data and a Markdown table beside the paper's figures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import numpy as np

from .files import read_json, write_csv, write_json, write_text

__all__ = ["PAPER_TABLE_2", "aggregate", "summarise"]

# Table 2 of the paper: (UAR, WAR) per configuration and corpus, for reference beside ours.
PAPER_TABLE_2 = {
    "no-dstl": {"ravdess": (0.517, 0.535), "crema_d": (0.551, 0.55)},
    "vid-dstl": {"ravdess": (0.534, 0.547), "crema_d": (0.576, 0.575)},
    "sp-dstl": {"ravdess": (0.545, 0.556), "crema_d": (0.576, 0.575)},
    "vid-sp-dstl": {"ravdess": (0.556, 0.57), "crema_d": (0.584, 0.583)},
    "conf-vid-sp-dstl": {"ravdess": (0.595, 0.611), "crema_d": (0.578, 0.576)},
}


def summarise(fold_metrics: dict[int, Path], predictions: dict[int, Path]) -> tuple[dict, pd.DataFrame]:
    """Mean and standard deviation over folds, per-fold figures, and all test predictions pooled."""
    per_fold = {fold: read_json(path) for fold, path in sorted(fold_metrics.items())}
    summary: dict = {}
    for split in ("test", "validation"):
        for metric in ("uar", "war"):
            values = np.array([m[split][metric] for m in per_fold.values()])
            summary[f"{split}_{metric}_mean"] = float(values.mean())
            summary[f"{split}_{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    summary["folds"] = len(per_fold)
    pooled = pd.concat(
        [pd.read_parquet(path).assign(fold=fold) for fold, path in sorted(predictions.items())], ignore_index=True
    )
    return summary, pooled


def _markdown(summary: dict) -> str:
    lines = ["# Results: speaker-independent cross-validation", ""]
    for corpus, configs in summary.items():
        lines += [f"## {corpus}", "", "| configuration | folds | UAR | WAR | paper UAR | paper WAR |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for config, s in configs.items():
            paper = PAPER_TABLE_2.get(config, {}).get(corpus)
            paper_cells = f"{paper[0]:.3f} | {paper[1]:.3f}" if paper else "- | -"
            lines.append(
                f"| {config} | {s['folds']} | {s['test_uar_mean']:.3f} ± {s['test_uar_std']:.3f} "
                f"| {s['test_war_mean']:.3f} ± {s['test_war_std']:.3f} | {paper_cells} |"
            )
        lines.append("")
    lines.append("Mean ± standard deviation over folds, on each fold's unseen test speakers.")
    return "\n".join(lines) + "\n"


def aggregate(
    corpora: list[str],
    configs: list[str],
    folds: list[int],
    runs: Path,
    metrics: Path,
    summary_out: Path,
    plots: Path,
    results_md: Path,
) -> dict:
    """Summarise ``runs/<corpus>/<config>/fold<k>`` and ``metrics/<corpus>/<config>/fold<k>.json``."""
    summary: dict = {}
    for corpus in corpora:
        for config in configs:
            fold_metrics = {k: metrics / corpus / config / f"fold{k}.json" for k in folds}
            predictions = {k: runs / corpus / config / f"fold{k}" / "predictions.parquet" for k in folds}
            missing = [str(p) for p in [*fold_metrics.values(), *predictions.values()] if not p.is_file()]
            if missing:
                raise FileNotFoundError(f"missing results of {corpus} {config}: {', '.join(missing)}")
            summary.setdefault(corpus, {})[config], pooled = summarise(fold_metrics, predictions)
            write_csv(
                plots / "confusion" / f"{corpus}_{config}.csv",
                pooled[["actual_emotion", "predicted_emotion"]].rename(
                    columns={"actual_emotion": "actual", "predicted_emotion": "predicted"}
                ),
            )
            curves = pd.concat(
                [pd.read_parquet(runs / corpus / config / f"fold{k}" / "history.parquet").assign(fold=k) for k in folds]
            )
            write_csv(plots / "curves" / f"{corpus}_{config}.csv", curves)
    write_json(summary_out, summary)
    write_text(results_md, _markdown(summary))
    return summary
