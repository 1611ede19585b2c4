"""The report stage: the paper's tables in its layout, Figure 2, paired contrasts over folds at equal selection
budgets, the reading that produced it, and DVC plot data."""

import pandas as pd
import pytest

from liser.files import read_json, write_json, write_parquet
from liser.results.report import contrast, fold_scores, report
from liser.students.configurations import CONTROLS, FIGURE_2, TABLE_2, TABLE_3, run_location

PERCENTS = [25, 50]
RUNS = sorted(
    {
        *TABLE_2,
        *CONTROLS,
        *(r for t in TABLE_3.values() for r in t.values()),
        *(f"{c}-labeled{p}" for c in FIGURE_2 for p in PERCENTS),
    }
)
PROTOCOL = {
    "protocol.reading": "literal",
    "speech_teacher.split": "non_test",
    "label_efficiency.teacher": "all",
    "windows.min_face_fraction": 0.0,
    "train.batch_composition": "pooled",
}


def fake_results(root, corpus, run, uar_by_fold, steps=100, candidates=None):
    """A run's metrics file (a Figure 2 share's: its entry in its stage's file) and results.json, where the stages
    write them: one seed; ``candidates`` per fold, (validation UAR, test UAR) each (default: one candidate scoring
    the fold's UAR)."""
    folder, metrics_file, share = run_location(run)
    distils = "dstl" in run and not run.startswith("no-dstl")
    candidates = candidates or [[(0.3, uar)] for uar in uar_by_fold]
    trained = [
        {"lambda_sd": float(distils), "lambda_vd": float(distils), "draw": 0 if distils else d}
        for d in range(len(candidates[0]))
    ]
    folds = {}
    for fold, (uar, scored) in enumerate(zip(uar_by_fold, candidates)):
        write_parquet(
            root / "runs" / corpus / folder / f"fold{fold}" / "predictions.parquet",
            pd.DataFrame({"actual_emotion": ["sad", "happy"], "predicted_emotion": ["sad", "sad"]}),
        )
        seed = {
            "test": {"uar": uar, "war": uar + 0.01},
            "candidates": [{"validation_uar": v, "test_uar": t, "test_war": t} for v, t in scored],
        }
        folds[str(fold)] = {
            "utterances": {"train": 60, "validation": 20, "test": 20},
            "test": seed["test"],
            "seeds": {"0": seed},
        }
    mean = sum(uar_by_fold) / len(uar_by_fold)
    every = [t for scored in candidates for _, t in scored]
    figures = {
        "test": {"uar": mean, "uar_std": 0.05, "war": mean + 0.01, "war_std": 0.04, "pooled_uar": mean - 0.02},
        "validation": {"uar": mean + 0.1},
        "candidates": {"count": len(trained), "test_uar": sum(every) / len(every)},
        "steps": steps,
    }
    metrics = root / "metrics" / corpus / metrics_file
    if share is not None:
        figures_file = figures
        figures = {**(read_json(metrics) if metrics.is_file() else {}), share: figures_file}
        write_json(metrics, figures)
        figures = figures_file
    else:
        write_json(metrics, figures)
    write_json(
        root / "runs" / corpus / folder / "results.json",
        {"seeds": [0], "trained_candidates": trained, **figures, "folds": folds},
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
        PROTOCOL,
        root / "runs",
        root / "metrics",
        root / "summary.json",
        root / "plots",
        root / "reports",
    )


def section(text: str, title: str) -> str:
    return text.split(title)[1]


def test_tables_in_the_papers_layout_with_its_figures(results):
    summary = run_report(results)
    text = (results / "reports" / "results.md").read_text()
    k = RUNS.index("no-dstl")
    mean = 0.45 + 0.01 * k
    ravdess = section(text, "## Table 2")
    # UAR, WAR, pooled UAR, vs no-dstl, candidates, their mean UAR, steps, the paper's UAR and WAR
    cells = [f"{mean:.3f} ± 0.050", f"{mean + 0.01:.3f} ± 0.040", f"{mean - 0.02:.3f}", "+0.00 %", "1", f"{mean:.3f}"]
    assert "| no-dstl | " + " | ".join(cells) + " | 100 | 0.517 | 0.535 |" in ravdess
    assert "| 0.551 | 0.550 |" in section(text, "### CREMA-D")  # the paper's CREMA-D no-dstl row
    assert "| distill-ce |" in text and "| two-stage-train |" in text and "0.464" in text
    # the summary DVC shows per experiment: Table 2's UAR per corpus, nothing else
    assert set(summary["crema_d"]) == {*TABLE_2, *CONTROLS}
    assert summary["ravdess"]["no-dstl"] == pytest.approx(mean)
    assert read_json(results / "summary.json") == summary
    assert read_json(results / "reports" / "results.json")["runs"]["crema_d"]["vid-sp-dstl-labeled25"]["steps"] == 100


def test_the_report_states_the_reading_that_produced_it(results):
    run_report(results)
    text = (results / "reports" / "results.md").read_text()
    assert "the **literal** reading" in text and "`speech_teacher.split: non_test`" in text
    assert "`label_efficiency.teacher: all`" in text and "Seeds per fold: [0]" in text
    assert read_json(results / "reports" / "results.json")["protocol"] == PROTOCOL


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
    run_report(results)
    text = (results / "reports" / "results.md").read_text()
    # (0.525 - 0.45) / 0.45 = +16.67 %
    assert "| vid-sp-dstl | 0.525 ± 0.050 | 0.535 ± 0.040 | 0.505 | +16.67 % | 1 | 0.525 | 750 |" in text
    assert "| no-dstl | 0.450 ± 0.050 | 0.460 ± 0.040 | 0.430 | +0.00 % | 1 | 0.450 | 34 |" in text
    # Figure 2, against no-dstl on all labels
    assert "| vid-sp-dstl | 50 | 0.450 ± 0.050 | 0.460 ± 0.040 | 0.430 | +0.00 % | 400 |" in text
    assert "sample standard deviation (ddof 1)" in text


def test_paired_contrasts_over_folds_plain_and_corrected(results):
    fake_results(results, "ravdess", "no-dstl", [0.40, 0.50])
    fake_results(results, "ravdess", "vid-sp-dstl", [0.50, 0.55])  # +10 and +5 points
    fake_results(results, "ravdess", "sp-dstl", [0.30, 0.50])  # -10 and 0
    run_report(results)
    text = section((results / "reports" / "results.md").read_text(), "## Paired contrasts over folds")
    ravdess = text.split("### CREMA-D")[0]
    # mean +7.5 points, s = 3.5355; t(0.975, 1) = 12.7062
    # plain: 7.5 ± 12.7062 * 3.5355 / sqrt(2) = 7.5 ± 31.77
    # corrected (20 test / 60 training utterances a fold): 7.5 ± 12.7062 * 3.5355 * sqrt(1/2 + 1/3) = 7.5 ± 41.01
    assert "| vid-sp-dstl − no-dstl | 1 vs 1 | +7.50 | [-24.27, +39.27] | [-33.51, +48.51] | 2 / 0 / 0 |" in ravdess
    # -10 and 0: mean -5, s = 7.0711: plain 5 ± 63.53, corrected 5 ± 82.02
    assert "| sp-dstl − no-dstl | 1 vs 1 | -5.00 | [-68.53, +58.53] | [-87.02, +77.02] | 0 / 1 / 1 |" in ravdess
    assert "| no-dstl − no-dstl |" not in ravdess
    groups = [line for line in ravdess.splitlines() if line.startswith("#### ")]
    assert groups == [
        "#### against no-dstl",
        "#### against no-dstl trained for vid-sp-dstl's steps",
        "#### both teachers against one",
        "#### confidence weights (eq. 5 against eq. 4)",
        "#### Figure 2 at the same labeled share",
    ]
    for row in ("| vid-sp-dstl − vid-dstl |", "| conf-vid-sp-dstl − vid-sp-dstl |", "| two-stage-sp − no-dstl-matched"):
        assert row in ravdess
    assert "| vid-sp-dstl-labeled25 − no-dstl-labeled25 |" in ravdess
    compared = read_json(results / "reports" / "results.json")["contrasts"]["ravdess"]["vid-sp-dstl - no-dstl"]
    assert compared["test_train_ratio"] == pytest.approx(1 / 3) and compared["folds"] == 2


def test_a_run_without_teachers_is_rechosen_from_as_many_candidates_as_the_other_side(results):
    # no-dstl trained 4 draws per fold (validation UAR, test UAR); vid-dstl chose from 2 lambdas
    draws = [
        [(0.30, 0.40), (0.35, 0.42), (0.50, 0.60), (0.20, 0.10)],
        [(0.40, 0.50), (0.30, 0.70), (0.45, 0.46), (0.1, 0.18)],
    ]
    fake_results(results, "ravdess", "no-dstl", [0.60, 0.46], candidates=draws)
    fake_results(
        results,
        "ravdess",
        "vid-dstl",
        [0.50, 0.55],
        candidates=[[(0.5, 0.50), (0.4, 0.45)], [(0.5, 0.55), (0.3, 0.35)]],
    )
    run = results / "runs" / "ravdess"
    no_dstl, vid_dstl = (read_json(run / name / "results.json") for name in ("no-dstl", "vid-dstl"))
    # of the first 2 draws: fold 0 keeps draw 1 (validation 0.35 > 0.30), test 0.42; fold 1 keeps draw 0, test 0.50
    assert fold_scores(no_dstl, 2) == {"0": 0.42, "1": 0.50}
    assert fold_scores(no_dstl) == {"0": 0.60, "1": 0.46}  # all 4: as chosen in its stage
    compared = contrast(vid_dstl, no_dstl)
    assert (compared["candidates"], compared["baseline_candidates"]) == (2, 2)
    assert compared["mean"] == pytest.approx(((0.50 - 0.42) + (0.55 - 0.50)) / 2)
    reverse = contrast(no_dstl, vid_dstl)
    assert (reverse["candidates"], reverse["baseline_candidates"]) == (2, 2)
    assert reverse["mean"] == pytest.approx(-compared["mean"])
    run_report(results)
    text = (results / "reports" / "results.md").read_text()
    assert "| vid-dstl − no-dstl | 2 vs 2 | +6.50 |" in text
    # candidates' UAR: (0.40 + 0.42 + 0.60 + 0.10 + 0.50 + 0.70 + 0.46 + 0.18) / 8 = 3.36 / 8 = 0.420
    assert "| no-dstl | 0.530 ± 0.050 | 0.540 ± 0.040 | 0.510 | +0.00 % | 4 | 0.420 |" in text
