"""The report stage: the paper's tables in its layout, Figure 2, and DVC plot data."""

import pandas as pd
import pytest

from liser.files import read_json, write_json, write_parquet
from liser.results.report import report
from liser.students.configurations import CONTROLS, FIGURE_2, TABLE_2, TABLE_3

PERCENTS = [25, 50]
RUNS = sorted(
    {
        *TABLE_2,
        *CONTROLS,
        *(r for t in TABLE_3.values() for r in t.values()),
        *(f"{c}-labeled{p}" for c in FIGURE_2 for p in PERCENTS),
    }
)


def fake_results(root, corpus, run, uar_by_fold, steps=100):
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
            "steps": steps,
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
    assert not (results / "plots" / "curves").exists()  # the curves are the student stages' (DVCLive)


def test_report_names_what_is_missing(results):
    (results / "metrics" / "crema_d" / "distill-ce-sp.json").unlink()
    with pytest.raises(FileNotFoundError, match="distill-ce-sp"):
        run_report(results)


def test_each_row_shows_its_change_over_no_dstl_and_its_steps(results):
    fake_results(results, "ravdess", "no-dstl", [0.40, 0.50], steps=34)
    fake_results(results, "ravdess", "vid-sp-dstl", [0.50, 0.55], steps=750)
    fake_results(results, "ravdess", "vid-sp-dstl-labeled50", [0.45, 0.45], steps=400)
    summary = run_report(results)
    text = (results / "reports" / "results.md").read_text()
    assert "| vid-sp-dstl | 0.525 ± 0.050 | 0.535 ± 0.040 | +16.67 % | 750 |" in text  # (0.525 - 0.45) / 0.45
    assert "| no-dstl | 0.450 ± 0.050 | 0.460 ± 0.040 | +0.00 % | 34 |" in text
    assert "| vid-sp-dstl | 50 | 0.450 ± 0.050 | 0.460 ± 0.040 | +0.00 % | 400 |" in text  # Figure 2, vs all labels
    assert summary["ravdess"]["vid-sp-dstl"]["uar_vs_no_dstl_percent"] == pytest.approx(100 * 0.075 / 0.45)
    assert summary["ravdess"]["vid-sp-dstl"]["steps"] == 750
    assert "sample standard deviation (ddof 1)" in text


def test_paired_comparison_with_no_dstl_over_the_folds(results):
    fake_results(results, "ravdess", "no-dstl", [0.40, 0.50])
    fake_results(results, "ravdess", "vid-sp-dstl", [0.50, 0.55])  # +10 and +5 points
    fake_results(results, "ravdess", "sp-dstl", [0.30, 0.50])  # -10 and 0
    run_report(results)
    paired = (results / "reports" / "results.md").read_text().split("## Paired comparison with no-dstl")[1]
    # mean +7.5 points; 95 % interval 7.5 +- t(0.975, 1) * 3.5355 / sqrt(2) = 7.5 +- 12.7062 * 2.5
    assert "| vid-sp-dstl | +7.50 | [-24.27, +39.27] | 2 of 2 |" in paired
    assert "| sp-dstl | -5.00 | [-68.53, +58.53] | 0 of 2 |" in paired
    assert "| no-dstl |" not in paired
