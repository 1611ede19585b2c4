import numpy as np
import pandas as pd
import pytest

from liser.files import write_json, write_parquet
from liser.report import aggregate, summarise


def fake_fold(root, metrics, corpus, fold, uar, war):
    write_json(metrics / corpus / "no-dstl" / f"fold{fold}.json",
               {"test": {"uar": uar, "war": war}, "validation": {"uar": uar + 0.1, "war": war + 0.1}})  # fmt: skip
    run = root / corpus / "no-dstl" / f"fold{fold}"
    write_parquet(run / "predictions.parquet", pd.DataFrame({"actual_emotion": ["sad", "happy"], "predicted_emotion": ["sad", "sad"]}))
    write_parquet(run / "history.parquet", pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5], "validation_uar": [0.2, 0.3]}))


def test_mean_and_sample_std_over_folds(tmp_path):
    uars, wars = [0.4, 0.5, 0.6], [0.45, 0.55, 0.5]
    for fold, (u, w) in enumerate(zip(uars, wars)):
        fake_fold(tmp_path / "runs", tmp_path / "metrics", "ravdess", fold, u, w)
    summary, pooled = summarise(
        {k: tmp_path / "metrics" / "ravdess" / "no-dstl" / f"fold{k}.json" for k in range(3)},
        {k: tmp_path / "runs" / "ravdess" / "no-dstl" / f"fold{k}" / "predictions.parquet" for k in range(3)},
    )
    assert summary["test_uar_mean"] == pytest.approx(0.5)
    assert summary["test_uar_std"] == pytest.approx(np.std(uars, ddof=1))
    assert summary["test_war_mean"] == pytest.approx(np.mean(wars))
    assert summary["validation_uar_mean"] == pytest.approx(0.6)
    assert len(pooled) == 6 and set(pooled["fold"]) == {0, 1, 2}


def test_aggregate_writes_table_plots_and_summary(tmp_path):
    for fold in range(2):
        fake_fold(tmp_path / "runs", tmp_path / "metrics", "crema_d", fold, 0.5, 0.5)
    summary = aggregate(["crema_d"], ["no-dstl"], [0, 1], tmp_path / "runs", tmp_path / "metrics",
                        tmp_path / "summary.json", tmp_path / "plots", tmp_path / "results.md")  # fmt: skip
    assert summary["crema_d"]["no-dstl"]["folds"] == 2
    table = (tmp_path / "results.md").read_text()
    assert "| no-dstl | 2 | 0.500 ± 0.000 | 0.500 ± 0.000 | 0.551 | 0.550 |" in table
    confusion = pd.read_csv(tmp_path / "plots" / "confusion" / "crema_d_no-dstl.csv")
    assert list(confusion.columns) == ["actual", "predicted"] and len(confusion) == 4


def test_aggregate_names_missing_folds(tmp_path):
    fake_fold(tmp_path / "runs", tmp_path / "metrics", "crema_d", 0, 0.5, 0.5)
    with pytest.raises(FileNotFoundError, match="fold1"):
        aggregate(["crema_d"], ["no-dstl"], [0, 1], tmp_path / "runs", tmp_path / "metrics",
                  tmp_path / "s.json", tmp_path / "plots", tmp_path / "r.md")  # fmt: skip
