"""A stage's worker processes and tools end with it, however it ends (SIGKILL, SIGTERM, its parent ending), within
two seconds, and write nothing after it ended."""

import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

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


def test_a_terminated_stage_stops_its_workers_at_once_and_leaves_nothing_behind(tmp_path):
    stage, workers = start_stage(tmp_path)
    time.sleep(0.5)  # the workers are now inside slow_write
    stopped = time.monotonic()
    stage.send_signal(signal.SIGTERM)
    assert stage.wait(timeout=30) == 128 + signal.SIGTERM
    assert time.monotonic() - stopped < 2
    assert not [pid for pid in workers if alive(pid)]
    time.sleep(4)
    assert list((tmp_path / "out").iterdir()) == []  # nothing written, after the end or before


TOOLS = textwrap.dedent(
    """
    import sys, threading, time
    from liser.processes import exit_on_sigterm, run_tool

    def sleeper():
        run_tool(["sleep", "60"])

    if __name__ == "__main__":
        exit_on_sigterm()
        for _ in range(2):
            threading.Thread(target=sleeper, daemon=True).start()
        print("ready", flush=True)
        time.sleep(60)
    """
)


def test_tools_started_from_any_thread_end_with_the_stage(tmp_path):
    script = tmp_path / "stage.py"
    script.write_text(TOOLS)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    stage = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    assert stage.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    sleepers = [p for p in Path("/proc").glob("[0-9]*") if _parent(p) == stage.pid and "sleep" in _name(p)]
    assert len(sleepers) == 2
    stage.send_signal(signal.SIGTERM)
    assert stage.wait(timeout=10) == 128 + signal.SIGTERM
    time.sleep(0.5)
    assert not [p for p in sleepers if alive(int(p.name))]


@pytest.mark.parametrize("through_shell", [False, True], ids=["started-directly", "started-by-sh-c"])
def test_a_stage_ends_when_the_process_that_started_it_does(tmp_path, through_shell):
    """dvc ended by SIGTERM does not pass the signal on: the stage must notice that dvc is gone, also when dvc ran
    it through a shell that stays in between (``$SHELL -c`` with dash, Debian's /bin/sh, when SHELL is unset)."""
    stage_command = [sys.executable, str(tmp_path / "stage.py"), str(tmp_path / "out")]
    if through_shell:  # the shell waits for the stage to report its status, so it cannot replace itself with it
        stage_command = ["/bin/sh", "-c", f"{shlex.join(stage_command)}; exit $?"]
    script = tmp_path / "parent.py"
    script.write_text(
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen({stage_command!r}, stdout=subprocess.PIPE, text=True)\n"
        "print(child.stdout.readline().strip(), flush=True)\n"
        "time.sleep(60)\n"
    )
    (tmp_path / "stage.py").write_text(STAGE)
    (tmp_path / "out").mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    workers = [int(pid) for pid in parent.stdout.readline().split()]
    stage = _parent(Path(f"/proc/{workers[0]}"))
    assert (_parent(Path(f"/proc/{stage}")) != parent.pid) == through_shell  # a shell in between, or none
    time.sleep(0.5)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    time.sleep(2)
    assert not alive(stage) and not [pid for pid in workers if alive(pid)]
    time.sleep(3)
    assert list((tmp_path / "out").iterdir()) == []


def _parent(process: Path) -> int | None:
    try:
        return int((process / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _name(process: Path) -> str:
    try:
        return (process / "comm").read_text()
    except OSError:
        return ""
