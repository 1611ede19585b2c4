"""Training curves through DVCLive: the files DVC reads (the curves per epoch, the best and final values) and the
training loop's epoch callback that feeds them while a teacher trains."""

import json
import subprocess
from dataclasses import dataclass

import pandas as pd
import pytest
import torch

from liser.tracking import TrainingCurves, curve_summary
from liser.training import train_best_epoch


@pytest.fixture(autouse=True)
def outside_the_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def rows(uars, losses=None, wars=None):
    losses = losses or [1.0 / (i + 1) for i in range(len(uars))]
    wars = wars or [u + 0.1 for u in uars]
    return [
        {"epoch": i + 1, "train_loss": loss, "validation_uar": uar, "validation_war": war}
        for i, (loss, uar, war) in enumerate(zip(losses, uars, wars))
    ]


def read_tsv(path):
    return pd.read_csv(path, sep="\t")


def test_curves_per_run_and_the_summary_of_best_and_final(tmp_path):
    live = tmp_path / "live"
    curves = TrainingCurves(live)
    curves.log_history("fold0", pd.DataFrame(rows([0.3, 0.6, 0.5])))
    for row in rows([0.2, 0.4, 0.8]):
        curves.log_epoch("fold1", row)
    summary = curves.finish()

    uar = read_tsv(live / "plots/metrics/fold0/validation_uar.tsv")
    assert list(uar.columns) == ["step", "validation_uar"]
    assert uar["step"].tolist() == [1, 2, 3] and uar["validation_uar"].tolist() == [0.3, 0.6, 0.5]
    assert read_tsv(live / "plots/metrics/fold1/train_loss.tsv")["train_loss"].tolist() == pytest.approx(
        [1, 0.5, 1 / 3]
    )
    assert read_tsv(live / "plots/metrics/fold1/validation_war.tsv")["validation_war"].tolist() == pytest.approx(
        [0.3, 0.5, 0.9]
    )
    # best: each fold's best-UAR epoch (fold0 epoch 2, fold1 epoch 3), means over the folds; final: the last epoch
    assert summary["best"] == pytest.approx({"validation_uar": 0.7, "validation_war": 0.8})
    assert summary["final"] == pytest.approx({"train_loss": 1 / 3, "validation_uar": 0.65, "validation_war": 0.75})
    written = json.loads((live / "metrics.json").read_text())
    assert written == {
        "best": summary["best"],
        "final": summary["final"],
        "step": 3,
    }  # a stage adds a few columns to `dvc exp show`, not one per fold


def test_metrics_json_is_written_last(tmp_path):
    curves = TrainingCurves(tmp_path / "live")
    curves.log_epoch("fold0", rows([0.5])[0])
    assert (tmp_path / "live/plots/metrics/fold0/validation_uar.tsv").is_file()
    assert not (tmp_path / "live/metrics.json").exists()  # a stage that stops here does not look finished
    curves.finish()
    assert (tmp_path / "live/metrics.json").is_file()


def test_a_new_logger_starts_the_folder_afresh(tmp_path):
    first = TrainingCurves(tmp_path / "live")
    first.log_history("fold0", pd.DataFrame(rows([0.1, 0.2])))
    first.finish()
    second = TrainingCurves(tmp_path / "live")
    assert not (tmp_path / "live/metrics.json").exists()
    second.log_history("fold0", pd.DataFrame(rows([0.9])))
    second.finish()
    assert read_tsv(tmp_path / "live/plots/metrics/fold0/validation_uar.tsv")["validation_uar"].tolist() == [0.9]


def test_a_git_repository_without_commits_or_dvc_is_left_alone(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)  # a fresh project before its first commit
    curves = TrainingCurves(tmp_path / "live")
    curves.log_epoch("fold0", rows([0.5])[0])
    curves.finish()
    assert (tmp_path / "live/metrics.json").is_file() and not (tmp_path / ".dvc").exists()


def test_ties_keep_the_earlier_epoch_and_unscored_epochs_have_no_best():
    tied = rows([0.5, 0.5], wars=[0.1, 0.9])
    assert curve_summary({"fold0": tied})["best"]["validation_war"] == 0.1
    distillation_only = [{"epoch": 1, "train_loss": 2.0}, {"epoch": 2, "train_loss": 1.0}]
    assert curve_summary({"fold0": distillation_only}) == {"final": {"train_loss": 1.0}}
    assert curve_summary({}) == {}


def test_a_single_run_has_no_run_level_and_nothing_trained_leaves_an_empty_plots_folder(tmp_path):
    trained = TrainingCurves(tmp_path / "trained")
    trained.log_epoch("", rows([0.4])[0])
    trained.finish()
    assert (tmp_path / "trained/plots/metrics/validation_uar.tsv").is_file()
    published = TrainingCurves(tmp_path / "published")
    assert published.finish() == {}
    assert (tmp_path / "published/plots/metrics").is_dir()  # the declared plots output exists
    assert json.loads((tmp_path / "published/metrics.json").read_text()) == {}


def test_without_a_folder_nothing_is_written(tmp_path):
    curves = TrainingCurves(None)
    curves.log_history("fold0", pd.DataFrame(rows([0.4, 0.3])))
    assert curves.finish()["best"]["validation_uar"] == 0.4
    assert list(tmp_path.iterdir()) == []


@dataclass
class _Scores:
    uar: float
    war: float


def test_train_best_epoch_gives_each_row_to_the_callback_as_it_trains(tmp_path):
    model = torch.nn.Linear(2, 2)
    uars = iter([0.2, 0.7, 0.5])
    curves = TrainingCurves(tmp_path / "live")
    seen_while_training = []

    def train_epoch(epoch):
        tsv = tmp_path / "live/plots/metrics/fold3/validation_uar.tsv"
        seen_while_training.append(len(read_tsv(tsv)) if tsv.exists() else 0)
        with torch.no_grad():
            model.weight.fill_(epoch)
        return 1.0 / epoch

    def validate():
        uar = next(uars)
        return _Scores(uar, uar / 2)

    received = []

    def on_epoch(row):
        received.append(row)
        curves.logger("fold3")(row)

    best_epoch, history = train_best_epoch(model, 3, train_epoch, validate, on_epoch=on_epoch)
    assert best_epoch == 2 and model.weight.detach()[0, 0].item() == 2
    assert received == history.to_dict("records")
    assert seen_while_training == [0, 1, 2]  # the curve is there while the run trains
    assert curves.finish()["best"] == {"validation_uar": 0.7, "validation_war": 0.35}
