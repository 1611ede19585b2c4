"""A small end-to-end `dvc repro` of the demo in a temporary copy of the project."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from liser.students.configurations import run_location

from .helpers import copy_project

pytestmark = pytest.mark.slow


def run(args, cwd, check=True):
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HF_HUB_OFFLINE": "1",
    }
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def dvc(*args, cwd, check=True):
    return run([sys.executable, "-m", "dvc", *args], cwd, check)


def set_params(project: Path, edit) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    edit(params)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("pipeline") / "liser")

    def tiny(params):
        params["demo"].update(
            ravdess_actors=10,
            crema_d_actors=10,
            mspface_speakers=4,
            mspface_videos=4,
            ferv39k_clips_per_class=8,
            ferv39k_identities=4,
        )
        params["corpora"]["use"] = ["crema_d"]
        params["cv"]["folds"] = [0, 1]
        params["train"]["epochs"] = {"demo": 2, "paper": 50}
        params["video_teacher"]["epochs"] = 1
        params["speech_base"].update(pool_utterances=24, pool_speakers=4, epochs=1)
        params["speech_teacher"]["epochs"] = {"demo": 1, "paper": 50}
        params["label_efficiency"]["percents"] = [50]

    set_params(project, tiny)
    dvc("repro", cwd=project)
    return project


STUDENTS = [
    "no-dstl",
    "no-dstl-matched-steps",
    "vid-dstl",
    "sp-dstl",
    "vid-sp-dstl",
    "conf-vid-sp-dstl",
    "distill-ce-vid",
    "distill-ce-sp",
    "two-stage-vid",
    "two-stage-sp",
    "no-dstl-labeled50",
    "vid-sp-dstl-labeled50",
]


USES_VD = {  # the student stages that distil from the video teacher
    f"{name}@crema_d" for name in ("vid-dstl", "vid-sp-dstl", "conf-vid-sp-dstl", "distill-ce-vid", "two-stage-vid")
} | {"vid-sp-dstl-labeled@crema_d"}
# the student stages without teachers: as many candidates as the distilled runs choose lambda from
SUPERVISED = {"no-dstl@crema_d", "no-dstl-matched-steps@crema_d", "no-dstl-labeled@crema_d"}


def results_of(project, run_name):
    """Every fold, seed and candidate of a student run (not DVC metrics: its output folder's results.json)."""
    folder, _, _ = run_location(run_name)
    return json.loads((project / f"outputs/students/crema_d/{folder}/results.json").read_text())


def metrics_of(project):
    shown = json.loads(dvc("metrics", "show", "--json", cwd=project).stdout)
    return {path: entry["data"] for path, entry in next(iter(shown.values()))["data"].items()}


def changed_stages(project):
    return set(json.loads(dvc("status", "--json", cwd=project).stdout))


def repro_ran(project):
    output = dvc("repro", cwd=project).stdout
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def test_repro_writes_every_configuration_and_the_report(project):
    metrics = metrics_of(project)
    for run_name in STUDENTS:
        _, metrics_file, share = run_location(run_name)
        figures = metrics[f"metrics/students/crema_d/{metrics_file}"]
        figures = figures if share is None else figures[share]  # a Figure 2 stage's file: a run per share
        assert "folds" not in figures and 0 <= figures["test"]["uar"] <= 1 and 0 <= figures["test"]["pooled_uar"] <= 1
        assert set(results_of(project, run_name)["folds"]) == {"0", "1"}
    summary = metrics["metrics/summary.json"]["crema_d"]
    assert set(summary) == set(STUDENTS[:6])  # Table 2 and the control: their UAR
    report = (project / "reports" / "results.md").read_text()
    assert "Table 2" in report and "Table 3" in report and "| conf-vid-sp-dstl |" in report
    assert "the **strict** reading" in report and "Nadeau" in report
    assert (project / "reports" / "figure2.png").stat().st_size > 1000
    assert (project / "outputs/students/crema_d/vid-sp-dstl/fold1/student.safetensors").is_file()
    assert (project / "outputs/students/crema_d/two-stage-sp/fold0/distillation_history.parquet").is_file()


def test_teachers_are_scored_and_their_softmaxes_cover_the_windows(project):
    from liser.window_tables import read_softmaxes, read_window_table

    metrics = metrics_of(project)
    assert 0 <= metrics["metrics/teachers/video.json"]["test"]["uar"] <= 1
    speech = metrics["metrics/teachers/speech/crema_d.json"]
    assert set(speech) == {"test"} and 0 <= speech["test"]["uar"] <= 1  # the figures to compare; detail beside
    detail = json.loads((project / "outputs/teachers/speech/crema_d/results.json").read_text())
    assert set(detail["folds"]) == {"0", "1"} and detail["test"] == speech["test"]
    windows = read_window_table(project / "data/mspface/windows.parquet")
    for table in (
        read_softmaxes(project / "data/softmaxes/video.parquet"),
        read_softmaxes(project / "data/softmaxes/speech/crema_d/fold1.parquet"),
    ):
        assert len(table) == len(windows)
        assert table.frame[["segment", "window"]].equals(windows[["segment", "window"]])
        assert abs(table.probabilities.sum(axis=1) - 1).max() < 1e-4


def test_unlabeled_corpus_reports_what_was_obtained_and_dropped(project):
    metrics = metrics_of(project)
    acquisition = metrics["metrics/mspface/acquisition.json"]
    faces = metrics["metrics/mspface/faces.json"]
    windows = metrics["metrics/mspface/windows.json"]
    assert acquisition["videos_failed"] == 1 and acquisition["videos_ok"] == 3  # the demo's gone video
    assert "this_run" not in acquisition and "failures_by_class" not in acquisition  # detail stays beside
    report = json.loads((project / "data/mspface/acquired/report.json").read_text())
    assert report["failures_by_class"]["removed"] == 1
    assert faces["segments_dropped"] >= 1 and faces["segments_kept"] >= 1  # the demo's video without a face
    assert 0 < faces["face_fraction"] <= 1
    assert windows["windows"] > 0 and windows["segments"] == faces["segments_kept"]
    failures = (project / "data/mspface/acquired/failures.csv").read_text()
    assert "download,removed," in failures
    assert (project / "data/features/mspface/logmel.npy").is_file()


def test_second_repro_has_nothing_to_do(project):
    output = dvc("repro", cwd=project).stdout
    assert "Running stage" not in output
    assert "didn't change" in output or "up to date" in output


# a representative set: generated data, a corpus read, features, the speech base and teachers, a student, the report
REPRODUCED = [
    "demo",
    "corpus@crema_d",
    "features@crema_d",
    "speech_base",
    "speech_teacher@crema_d",
    "vid-sp-dstl@crema_d",
    "report",
]


def _outputs(project: Path) -> dict[str, list]:
    """Each reproduced stage's outputs as dvc.lock records them (path and hash)."""
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    return {stage: sorted((out["path"], out.get("md5")) for out in lock[stage]["outs"]) for stage in REPRODUCED}


def test_stages_rerun_to_the_same_bytes_here_and_in_another_folder(project, tmp_path_factory):
    """Same inputs, same bytes: each stage forced to run again, here and in a copy of the project elsewhere, writes
    outputs whose hashes dvc.lock already holds (same machine, same thread count)."""
    import shutil

    recorded = _outputs(project)
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "another-checkout"
    shutil.copytree(project, elsewhere, symlinks=True)
    for folder in (project, elsewhere):
        for stage in REPRODUCED:
            dvc("repro", "--force", "--single-item", stage, cwd=folder)
        assert _outputs(folder) == recorded, folder
    assert changed_stages(project) == set()


def test_plots_are_declared(project):
    shown = dvc("plots", "show", "--json", cwd=project).stdout
    for name in (
        "plots/confusion/crema_d_conf-vid-sp-dstl.csv",
        "plots/label_efficiency/crema_d.csv",
        "reports/figure2.png",
        # the training curves, DVCLive's
        "live/students/crema_d/no-dstl/plots/metrics/fold0/validation_uar.tsv",
        "live/students/crema_d/vid-sp-dstl-labeled/plots/metrics/50/fold1/train_loss.tsv",  # one stage, every share
        "live/teachers/speech/crema_d-labeled/plots/metrics/50/fold0/validation_uar.tsv",
        "live/teachers/speech/crema_d/plots/metrics/fold1/validation_war.tsv",
        "live/teachers/video/plots/metrics/validation_uar.tsv",
    ):
        assert name in shown
    assert "plots/curves" not in shown


def test_experiments_show_the_training_curves_best_and_final_values(project):
    git = ["git", "-c", "user.name=LiSER tests", "-c", "user.email=tests@liser.invalid"]
    run(["git", "add", "-A"], project)
    run([*git, "commit", "-q", "--allow-empty", "-m", "the demo, reproduced"], project)  # experiments need a commit
    shown = json.loads(dvc("exp", "show", "--json", cwd=project).stdout)
    workspace = next(entry for entry in shown if entry["rev"] == "workspace")["data"]["metrics"]
    student = workspace["live/students/crema_d/no-dstl/metrics.json"]["data"]
    assert set(student) == {"best", "final", "step"} and student["step"] == 2  # train.epochs in this project
    assert 0 <= student["best"]["validation_uar"] <= 1 and student["final"]["train_loss"] > 0
    assert student["best"]["validation_uar"] >= student["final"]["validation_uar"]
    assert set(workspace["live/teachers/speech/crema_d/metrics.json"]["data"]["best"]) == {
        "validation_uar",
        "validation_war",
    }
    assert "train_loss" in workspace["live/teachers/video/metrics.json"]["data"]["final"]
    header = dvc("exp", "show", "--csv", cwd=project).stdout.splitlines()[0].split(",")
    stage = "live/students/crema_d/vid-sp-dstl"
    assert f"{stage}/metrics.json:best.validation_uar" in header and f"{stage}/metrics.json:final.train_loss" in header


def test_lambda_vd_reruns_only_the_students_that_use_it(project):
    set_params(project, lambda p: p["loss"].update(lambda_vd=5))
    chooses_lambda_vd = USES_VD - {"two-stage-vid@crema_d"}  # two-stage: lambda only scales its first stage's loss
    assert changed_stages(project) == chooses_lambda_vd | SUPERVISED
    assert repro_ran(project) == chooses_lambda_vd | SUPERVISED | {"report"}


def test_lora_rank_reruns_speech_teachers_their_softmaxes_and_students_only(project):
    set_params(project, lambda p: p["speech_teacher"].update(lora_rank=4))
    uses_sd = {
        f"{name}@crema_d" for name in ("sp-dstl", "vid-sp-dstl", "conf-vid-sp-dstl", "distill-ce-sp", "two-stage-sp")
    } | {"vid-sp-dstl-labeled@crema_d"}
    teachers = {"speech_teacher@crema_d", "speech_teacher_labeled@crema_d"}
    assert changed_stages(project) == teachers
    softmaxes = {"speech_softmaxes@crema_d", "speech_softmaxes_labeled@crema_d"}
    matched = {"no-dstl-matched-steps@crema_d"}  # counts the segments with both teachers' softmaxes
    assert repro_ran(project) == teachers | softmaxes | uses_sd | matched | {"report"}


def test_the_face_threshold_concerns_only_the_students_of_the_video_teacher(project):
    shipped = yaml.safe_load((project / "params.yaml").read_text())["windows"]["min_face_fraction"]
    set_params(project, lambda p: p["windows"].update(min_face_fraction=0.9))
    assert changed_stages(project) == USES_VD | {"report"}  # which states it
    set_params(project, lambda p: p["windows"].update(min_face_fraction=shipped))  # {strict: 0.5, literal: 0}
    assert changed_stages(project) == set()


def test_figure_2_teachers_learn_from_the_share_or_are_the_full_runs(project):
    import pandas as pd

    full = json.loads((project / "outputs/teachers/speech/crema_d/results.json").read_text())
    share = json.loads((project / "outputs/teachers/speech/crema_d-labeled/50/results.json").read_text())
    for fold in ("0", "1"):
        assert share["folds"][fold]["utterances"]["train"] < full["folds"][fold]["utterances"]["train"]
        assert share["folds"][fold]["utterances"]["selection"] == full["folds"][fold]["utterances"]["selection"]
    set_params(project, lambda p: p["label_efficiency"].update(teacher="all"))
    assert changed_stages(project) == {"speech_teacher_labeled@crema_d", "report"}  # the report states it
    assert repro_ran(project) == {
        "speech_teacher_labeled@crema_d",
        "speech_softmaxes_labeled@crema_d",
        "vid-sp-dstl-labeled@crema_d",
        "report",
    }
    for fold in (0, 1):  # the full run's teachers and their window softmaxes, taken over, not scored again
        copied = pd.read_parquet(project / f"data/softmaxes/speech/crema_d-labeled/50/fold{fold}.parquet")
        pd.testing.assert_frame_equal(
            copied, pd.read_parquet(project / f"data/softmaxes/speech/crema_d/fold{fold}.parquet")
        )
    assert json.loads((project / "metrics/teachers/speech/crema_d-labeled.json").read_text())["50"]["teacher"] == "all"


def test_a_new_share_reruns_the_figure_2_stages_only(project):
    shipped = yaml.safe_load((project / "params.yaml").read_text())["label_efficiency"]["percents"]
    set_params(project, lambda p: p["label_efficiency"].update(percents=[*shipped, 25]))
    figure_2 = {f"{name}@crema_d" for name in ("speech_teacher_labeled", "speech_softmaxes_labeled")}
    figure_2 |= {f"{name}-labeled@crema_d" for name in ("no-dstl", "vid-sp-dstl")}
    assert changed_stages(project) == figure_2 | {"report"}
    set_params(project, lambda p: p["label_efficiency"].update(percents=shipped))
    assert changed_stages(project) == set()


def test_steps_are_recorded_and_the_control_matches_the_distilled_run(project):
    runs = {name: results_of(project, name) for name in STUDENTS}
    for fold in ("0", "1"):
        distilled = runs["vid-sp-dstl"]["folds"][fold]["steps"]
        assert runs["no-dstl-matched-steps"]["folds"][fold]["steps"] == distilled
        assert distilled >= runs["no-dstl"]["folds"][fold]["steps"]  # more when the unlabeled fill a batch
        two_stage = runs["two-stage-sp"]["folds"][fold]["seeds"]["0"]
        assert two_stage["steps"] == two_stage["distillation_steps"] + runs["no-dstl"]["folds"][fold]["steps"]
    report = (project / "reports" / "results.md").read_text()
    assert "| no-dstl-matched-steps |" in report and "## Paired contrasts over folds" in report
    assert "| vid-sp-dstl − no-dstl-matched-steps | 1 vs 1 |" in report and "UAR vs no-dstl" in report


def test_a_training_parameter_concerns_only_students(project):
    set_params(project, lambda p: p["train"].update(epochs={"demo": 3, "paper": 50}))
    students = {f"{n}@crema_d" for n in STUDENTS if "labeled" not in n}
    assert changed_stages(project) == students | {"no-dstl-labeled@crema_d", "vid-sp-dstl-labeled@crema_d"}


def test_auto_lambda_is_chosen_per_fold_on_validation(project):
    set_params(project, lambda p: p["loss"].update(lambda_vd="auto", lambda_grid=[0.5, 5]))
    dvc("repro", "--single-item", "vid-dstl@crema_d", cwd=project)
    results = results_of(project, "vid-dstl")
    assert [c["lambda_vd"] for c in results["trained_candidates"]] == [0.5, 5.0]
    for fold, result in results["folds"].items():
        kept = result["seeds"]["0"]
        candidates = kept["candidates"]
        assert all(0 <= c["test_uar"] <= 1 for c in candidates)
        best = max(range(2), key=lambda i: candidates[i]["validation_uar"])  # the first of equals, as the stage
        assert kept["chosen"] == best and kept["lambda_vd"] == [0.5, 5.0][best]
        assert kept["validation"]["uar"] == candidates[best]["validation_uar"] and kept["steps"] > 0
        from liser.students.checkpoints import load_student

        _, _, info = load_student(project / f"outputs/students/crema_d/vid-dstl/fold{fold}/student.safetensors")
        assert float(info["lambda_vd"]) == kept["lambda_vd"]
    figures = json.loads((project / "metrics/students/crema_d/vid-dstl.json").read_text())
    assert figures["lambda_vd"] in (0.5, 5.0) and figures["candidates"]["count"] == 2


def test_sigterm_ends_a_student_stage_with_nothing_left_behind(project):
    import signal
    import time

    out = project / "outputs/interrupted"
    command = [
        sys.executable,
        "stages/train_students.py",
        "--corpus",
        "crema_d",
        "--configuration",
        "vid-sp-dstl",
        "--manifest",
        "data/manifests/crema_d.parquet",
        "--folds",
        "data/folds/crema_d.csv",
        "--features",
        "data/features/crema_d",
        "--unlabeled-features",
        "data/features/mspface",
        "--video-softmaxes",
        "data/softmaxes/video.parquet",
        "--speech-softmaxes",
        "data/softmaxes/speech/crema_d",
        "--out",
        str(out),
        "--metrics",
        str(project / "metrics/interrupted.json"),
    ]
    stage = subprocess.Popen(command, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    started = time.monotonic()
    for line in stage.stderr:  # wait until the folds are loaded, then into training
        if "unlabeled segments" in line or time.monotonic() - started > 120:
            break
    time.sleep(3)
    stage.send_signal(signal.SIGTERM)
    assert stage.wait(timeout=60) != 0
    time.sleep(1)
    still_running = [p for p in Path("/proc").glob("[0-9]*") if str(out) in _cmdline(p)]
    assert not still_running
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.*"))
    assert not (project / "metrics/interrupted.json").exists()


def _cmdline(process: Path) -> str:
    try:
        return (process / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
