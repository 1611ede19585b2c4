"""Stopping cleanly: a stage ends on SIGTERM, and when the process that started it ends, as on Ctrl-C, within a
second or two; the worker processes and the tools (ffmpeg, ffprobe) it started end with it, and nothing is written
after it ended.

- :func:`exit_on_sigterm` makes SIGTERM end the stage through its ``finally`` blocks (temporary files are removed),
  and sends the stage SIGTERM when the process that started it ends: ``dvc repro`` ended by SIGTERM does not pass
  the signal on, and its stage would otherwise run on, orphaned.  dvc runs a stage's command with ``$SHELL -c``;
  bash replaces itself with the command, but dash (Debian's ``/bin/sh``, used when ``SHELL`` is unset) stays in
  between and outlives dvc, so behind such a shell the stage watches the shell's parent instead.
- Tools started with :func:`run_tool` or :func:`start_tool` are killed when the stage is stopped, whichever thread
  started them, and none is started after that.
- Workers started by :func:`worker_pool` ask the kernel to kill them when their parent ends, however it ends
  (Linux; SIGKILL included).  When the parent is interrupted, the tasks not started are cancelled and those under
  way are stopped: each worker gets SIGTERM (its own clean-ups run, its tools are killed), and SIGKILL after
  :data:`GRACE_S` if it has not ended by then.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

__all__ = [
    "GRACE_S",
    "StageStopping",
    "die_with_parent",
    "exit_on_sigterm",
    "forget_tool",
    "run_tool",
    "start_tool",
    "stop_tools",
    "worker_pool",
]

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_SHELLS = {"sh", "dash", "bash", "zsh", "ksh", "mksh", "ash", "fish"}
GRACE_S = 1.0  # how long an interrupted worker has to run its clean-ups before it is killed

_tools: set[subprocess.Popen] = set()
_tools_lock = threading.Lock()
_stopping = threading.Event()


class StageStopping(RuntimeError):
    """Raised instead of starting a tool once the stage is being stopped."""


def _ask_for_signal_when_parent_ends(signum: int) -> bool:
    """Ask the kernel for ``signum`` when the parent process ends (Linux); False when the parent has already gone."""
    if not sys.platform.startswith("linux"):
        return True
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signum)
    return os.getppid() == parent


def _stop(signum: int, frame: Any) -> None:
    # once only: a second SIGTERM (a kill, and the end of the process that started the stage, may both send one)
    # must not cut the clean-ups the first one started
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stop_tools()
    raise SystemExit(128 + signum)


def _parent_of(pid: int) -> int | None:
    try:  # the field after the command name, which may itself hold spaces and parentheses
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _starter_behind_shell() -> int | None:
    """The process that started this one through ``<shell> -c``, when the shell is still in between."""
    shell = os.getppid()
    try:
        argv = Path(f"/proc/{shell}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if os.path.basename(argv[0]).decode(errors="replace") not in _SHELLS or b"-c" not in argv[1:]:
        return None
    starter = _parent_of(shell)
    return starter if starter is not None and starter > 1 else None


def _signal_when_ends(pid: int, signum: int) -> None:
    """Send this process ``signum`` when process ``pid`` (not its parent) ends, from a watching thread."""
    try:
        ended = os.pidfd_open(pid)  # readable once the process has ended
    except ProcessLookupError:
        os.kill(os.getpid(), signum)
        return

    def watch() -> None:
        select.select([ended], [], [])
        os.kill(os.getpid(), signum)

    threading.Thread(target=watch, name=f"watch-{pid}", daemon=True).start()


def exit_on_sigterm() -> None:
    """Make SIGTERM (what ``kill`` and job schedulers send) end the process like Ctrl-C does, through its
    ``finally`` blocks, after killing the tools it runs; and end it the same way when the process that started it
    ends (its parent, or the parent of the ``sh -c`` in between)."""
    signal.signal(signal.SIGTERM, _stop)
    if not _ask_for_signal_when_parent_ends(signal.SIGTERM):
        _stop(signal.SIGTERM, None)
    if sys.platform.startswith("linux") and (starter := _starter_behind_shell()) is not None:
        _signal_when_ends(starter, signal.SIGTERM)


def stop_tools() -> None:
    """Kill every tool under way and refuse to start more (the stage is ending)."""
    _stopping.set()
    with _tools_lock:
        running = list(_tools)
    for process in running:
        with contextlib.suppress(ProcessLookupError):
            process.kill()


def start_tool(command: Sequence[str], **popen: Any) -> subprocess.Popen:
    """``subprocess.Popen(command, **popen)`` for a tool that :func:`stop_tools` kills; call :func:`forget_tool`
    (or use :func:`run_tool`) once it has ended."""
    with _tools_lock:
        if _stopping.is_set():
            raise StageStopping(f"the stage is ending: {command[0]} not started")
        process = subprocess.Popen(list(command), **popen)
        _tools.add(process)
    return process


def forget_tool(process: subprocess.Popen) -> None:
    with _tools_lock:
        _tools.discard(process)


def run_tool(command: Sequence[str], **popen: Any) -> subprocess.CompletedProcess:
    """What ``subprocess.run(command, capture_output=True, text=True)`` gives, for a tool that is killed when the
    stage is stopped."""
    popen = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, **popen}
    process = start_tool(command, **popen)
    try:
        stdout, stderr = process.communicate()
    except BaseException:
        process.kill()
        process.wait()
        raise
    finally:
        forget_tool(process)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def die_with_parent(parent: int, setup: Callable[[], None] | None = None) -> None:
    """Worker set-up: be killed when process ``parent`` ends (Linux); on SIGTERM, kill the tools under way and end
    through the ``finally`` blocks; then run ``setup``."""
    if not _ask_for_signal_when_parent_ends(signal.SIGKILL) or os.getppid() != parent:
        os._exit(1)  # the parent ended before the request was made
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, _stop)
    if setup is not None:
        setup()


def _end_workers(pool: ProcessPoolExecutor) -> None:
    """SIGTERM to every worker of ``pool``, SIGKILL to those still there after :data:`GRACE_S`."""
    workers = list((getattr(pool, "_processes", None) or {}).values())  # the executor has no public list
    try:
        for worker in workers:
            with contextlib.suppress(ProcessLookupError, AttributeError):
                worker.terminate()
        deadline = time.monotonic() + GRACE_S
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
                worker.join(1.0)


@contextlib.contextmanager
def worker_pool(workers: int, setup: Callable[[], None] | None = None) -> Iterator[ProcessPoolExecutor]:
    """``workers`` spawned processes (spawn, not fork: the parent may hold OpenCV or torch threads, which fork would
    not copy safely) that end with this process.  On an exception, Ctrl-C or SIGTERM in the caller, the tasks not
    started are cancelled and the workers are stopped (SIGTERM, then SIGKILL after :data:`GRACE_S`)."""
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=die_with_parent, initargs=(os.getpid(), setup))
    try:
        yield pool
    except BaseException:
        _end_workers(pool)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
