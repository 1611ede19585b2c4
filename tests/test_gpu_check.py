"""The prepared GPU check runs, in its small version, on the CPU."""

import json
import os
import subprocess
import sys

from tests.helpers import REPO


def test_the_gpu_check_runs_here_in_its_small_version(tmp_path):
    out = tmp_path / "gpu_check.json"
    command = [sys.executable, str(REPO / "benchmarks/gpu_check.py"), "--device", "cpu", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["device"] == "cpu" and "cores" in figures["machine"]
    for member in figures["engine"]["members"]:  # the same engine on the same device: the same numbers
        assert member["float32_loss_relative_difference"] == 0.0 and member["float32_same_best_epoch"]
        assert member["float32_test_uar"][0] == member["float32_test_uar"][1]
        assert 0 <= member["bfloat16_loss_relative_difference"] < 1
    rows = {(row["members"], row["precision"]) for row in figures["students"]}
    assert rows == {(1, "float32"), (2, "float32"), (1, "auto"), (2, "auto")}
    assert all(row["crops_per_s"] > 0 and row["peak_memory_gib"] > 0 for row in figures["students"])
    teacher = figures["speech_teacher"]
    assert 0 < teacher["trained_parameters"] < teacher["parameters"] and teacher["step_s"] > 0
    assert figures["video_teacher"]["windows_per_s"] > 0
