"""Wall time of the whole demo `dvc repro`, stage by stage, in a fresh temporary copy of the project
(the venv is reused; nothing of this working copy's data is).  Prints and saves
benchmarks/results/demo_wall_time.json.

With ``--share-cache`` the copy writes into this working copy's DVC cache (and run cache), so a `dvc repro`
here afterwards restores the results instead of computing them again.  With ``--keep DIR`` the copy is made in
DIR and kept (its dvc.lock is the run's).  After the run, a no-op `dvc repro` and `dvc status` are timed in the
copy (best of three): what a user waits for when nothing changed.

    python benchmarks/demo_wall_time.py [--share-cache] [--keep DIR]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from liser.files import write_json
from liser.runtime import describe_machine

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "demo_wall_time.json"


def copy_sources(target: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for name in files:
        if name != "dvc.lock" and (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    subprocess.run(["git", "init", "-q"], cwd=target, check=True)


def best_of_three(project: Path, env: dict, command: str) -> float:
    times = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dvc", command], cwd=project, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--share-cache", action="store_true", help="use this working copy's DVC cache")
    parser.add_argument("--keep", type=Path, help="run in this (new) folder and keep it")
    args = parser.parse_args()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HF_HUB_OFFLINE": "1",
    }
    stages: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        project = args.keep.resolve() if args.keep else Path(folder) / "liser"
        if project.exists():
            raise SystemExit(f"{project} exists; give a new folder to --keep")
        copy_sources(project)
        env["PYTHONPATH"] = str(project)  # the copy's own liser, not the editable install of this working copy
        if args.share_cache:
            subprocess.run(
                [sys.executable, "-m", "dvc", "cache", "dir", "--local", str(REPO / ".dvc" / "cache")],
                cwd=project,
                env=env,
                check=True,
            )
        start = current_start = time.perf_counter()
        current = None
        process = subprocess.Popen(
            [sys.executable, "-m", "dvc", "repro", "--no-run-cache"],
            cwd=project,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for line in process.stdout:
            if line.startswith("Running stage"):
                now = time.perf_counter()
                if current is not None:
                    stages[current] = now - current_start
                current, current_start = line.split("'")[1], now
                print(f"{now - start:7.1f} s  {current}", flush=True)
        if process.wait() != 0:
            raise SystemExit("dvc repro failed")
        end = time.perf_counter()
        if current is not None:
            stages[current] = end - current_start
        no_op = {command: best_of_three(project, env, command) for command in ("repro", "status")}
    figures = {
        "machine": describe_machine(),
        "total_s": end - start,
        "no_op_s": no_op,
        "stages_s": stages,
    }
    groups: dict[str, float] = {}
    for stage, seconds in stages.items():
        groups[stage.split("@")[0]] = groups.get(stage.split("@")[0], 0.0) + seconds
    figures["by_stage_kind_s"] = dict(sorted(groups.items(), key=lambda item: -item[1]))
    print(
        f"total {figures['total_s'] / 60:.1f} min; nothing changed: dvc repro {no_op['repro']:.1f} s, "
        f"dvc status {no_op['status']:.1f} s"
    )
    for kind, seconds in figures["by_stage_kind_s"].items():
        print(f"{kind:28s} {seconds:7.1f} s")
    write_json(RESULTS, figures)
    print(f"saved to {RESULTS}")


if __name__ == "__main__":
    main()
