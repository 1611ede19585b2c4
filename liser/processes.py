"""Stopping cleanly: a stage ends on SIGTERM as on Ctrl-C, and its worker processes end with it.

A stage's worker processes must not outlive it: one left running after its stage was stopped goes on writing into
an output folder that a rerun may just have cleaned. Workers started by :func:`worker_pool` ask the kernel to kill
them when their parent ends, however it ends (Linux; SIGKILL included), and the pool cancels what has not started
when the parent is interrupted.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor

__all__ = ["exit_on_sigterm", "die_with_parent", "worker_pool"]

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def exit_on_sigterm() -> None:
    """Make SIGTERM (what ``kill`` and job schedulers send) end the process like Ctrl-C does, through its
    ``finally`` blocks, so temporary outputs are removed instead of left half-written."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def die_with_parent(parent: int, setup: Callable[[], None] | None = None) -> None:
    """Worker set-up: be killed when process ``parent`` ends (Linux), then run ``setup``."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent ended before the request was made
            os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if setup is not None:
        setup()


@contextlib.contextmanager
def worker_pool(workers: int, setup: Callable[[], None] | None = None) -> Iterator[ProcessPoolExecutor]:
    """``workers`` spawned processes (spawn, not fork: the parent may hold OpenCV or torch threads, which fork would
    not copy safely) that end with this process. On an exception, Ctrl-C or SIGTERM in the caller, the tasks not
    started are cancelled and the pool waits only for those under way."""
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=die_with_parent, initargs=(os.getpid(), setup))
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
