"""A stage's worker processes end with it, however it ends, and write nothing after it ended."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from .helpers import REPO

STAGE = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from liser.processes import exit_on_sigterm, worker_pool

    def pid(_):
        time.sleep(0.2)
        return os.getpid()

    def slow_write(path):
        time.sleep(3)
        Path(path).write_text("written by a worker")

    if __name__ == "__main__":
        exit_on_sigterm()
        with worker_pool(2) as pool:
            print(" ".join(map(str, set(pool.map(pid, range(6))))), flush=True)
            futures = [pool.submit(slow_write, f"{sys.argv[1]}/late{i}") for i in range(6)]
            time.sleep(60)
    """
)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state  # a zombie has ended; only its exit status is left


def start_stage(tmp_path: Path) -> tuple[subprocess.Popen, list[int]]:
    script = tmp_path / "stage.py"
    script.write_text(STAGE)
    (tmp_path / "out").mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    stage = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "out")], stdout=subprocess.PIPE, text=True, env=env
    )
    workers = [int(pid) for pid in stage.stdout.readline().split()]
    assert workers
    return stage, workers


def test_workers_of_a_killed_stage_end_at_once_and_write_nothing(tmp_path):
    stage, workers = start_stage(tmp_path)
    time.sleep(0.5)  # the workers are now inside slow_write
    stage.send_signal(signal.SIGKILL)
    stage.wait()
    time.sleep(1)
    assert not [pid for pid in workers if alive(pid)]
    time.sleep(3)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_terminated_stage_finishes_what_is_under_way_starts_nothing_more_and_leaves_no_worker(tmp_path):
    stage, workers = start_stage(tmp_path)
    time.sleep(0.5)
    stage.send_signal(signal.SIGTERM)
    assert stage.wait(timeout=30) == 128 + signal.SIGTERM
    ended = {path.name for path in (tmp_path / "out").iterdir()}
    assert len(ended) <= 3  # the two under way and the one the pool had queued; the others never started
    assert not [pid for pid in workers if alive(pid)]
    time.sleep(4)
    assert {path.name for path in (tmp_path / "out").iterdir()} == ended  # nothing written after the end
