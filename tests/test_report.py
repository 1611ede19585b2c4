"""The report stage: the paper's tables in its layout, Figure 2, and DVC plot data."""

import pandas as pd
import pytest

from liser.files import read_json, write_json, write_parquet
from liser.students.configurations import FIGURE_2, TABLE_2, TABLE_3
from liser.students.report import report

PERCENTS = [25, 50]
RUNS = sorted(
    {
        *TABLE_2,
        *(r for t in TABLE_3.values() for r in t.values()),
        *(f"{c}-labeled{p}" for c in FIGURE_2 for p in PERCENTS),
    }
)


def fake_results(root, corpus, run, uar_by_fold):
    folds = {}
    for fold, uar in enumerate(uar_by_fold):
        folder = root / "runs" / corpus / run / f"fold{fold}"
        write_parquet(
            folder / "predictions.parquet",
            pd.DataFrame({"actual_emotion": ["sad", "happy"], "predicted_emotion": ["sad", "sad"]}),
        )
        write_parquet(folder / "history.parquet", pd.DataFrame({"epoch": [1, 2], "validation_uar": [0.2, uar]}))
        folds[str(fold)] = {"test": {"uar": uar, "war": uar + 0.01}}
    mean = sum(uar_by_fold) / len(uar_by_fold)
    write_json(
        root / "metrics" / corpus / f"{run}.json",
        {
            "test": {"uar": mean, "uar_std": 0.05, "war": mean + 0.01, "war_std": 0.04},
            "validation": {"uar": mean + 0.1, "uar_std": 0.0, "war": mean, "war_std": 0.0},
            "folds": folds,
        },
    )


@pytest.fixture
def results(tmp_path):
    for corpus in ("ravdess", "crema_d"):
        for k, run in enumerate(RUNS):
            fake_results(tmp_path, corpus, run, [0.40 + 0.01 * k, 0.50 + 0.01 * k])
    return tmp_path


def run_report(root):
    return report(
        ["ravdess", "crema_d"],
        [0, 1],
        PERCENTS,
        root / "runs",
        root / "metrics",
        root / "summary.json",
        root / "plots",
        root / "reports",
    )


def test_tables_in_the_papers_layout_with_its_figures(results):
    summary = run_report(results)
    text = (results / "reports" / "results.md").read_text()
    k = RUNS.index("no-dstl")
    mean = 0.45 + 0.01 * k
    assert f"| no-dstl | {mean:.3f} ± 0.050 | {mean + 0.01:.3f} ± 0.040 |" in text
    assert "| 0.517 | 0.535 | 0.551 | 0.550 |" in text  # the paper's no-dstl row
    assert "| distill-ce |" in text and "| two-stage-train |" in text and "0.464" in text
    assert summary["crema_d"]["vid-sp-dstl-labeled25"]["uar"] == pytest.approx(
        0.45 + 0.01 * RUNS.index("vid-sp-dstl-labeled25")
    )
    assert read_json(results / "summary.json") == summary


def test_figure_2_and_plot_data(results):
    run_report(results)
    assert (results / "reports" / "figure2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curve = pd.read_csv(results / "plots" / "label_efficiency" / "crema_d.csv")
    assert sorted(set(curve["labeled_percent"])) == [25, 50, 100] and set(curve["configuration"]) == set(FIGURE_2)
    confusion = pd.read_csv(results / "plots" / "confusion" / "ravdess_conf-vid-sp-dstl.csv")
    assert list(confusion.columns) == ["actual", "predicted"] and len(confusion) == 4
    assert len(pd.read_csv(results / "plots" / "curves" / "ravdess_two-stage-sp.csv")) == 4


def test_report_names_what_is_missing(results):
    (results / "metrics" / "crema_d" / "distill-ce-sp.json").unlink()
    with pytest.raises(FileNotFoundError, match="distill-ce-sp"):
        run_report(results)
