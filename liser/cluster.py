"""Per-item work on this machine's processes or on a Ray cluster (params.yaml's ``runtime`` section).

:func:`run_jobs` hands each job to a function, in this machine's worker processes (``runtime.cluster: local``) or as
Ray tasks (``ray``), and yields the results as they come; the caller, the stage's own process, writes every output.
Each Ray task declares what it takes (:class:`Resources`: CPUs, GPUs, memory), so a cluster packs tasks onto its
nodes by what they have, and is retried when its worker dies.  At most a few tasks per worker are handed out at
once, so a corpus of a million segments never sits in the queue whole, and ``group_limit`` caps the jobs of one
group under way at once (downloads from one host).

:func:`ray_session` connects to the cluster (``runtime.ray_address``) or starts Ray on this machine; a Ray started
here listens on the loopback interface only.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from liser.params import RuntimeParams
from liser.processes import worker_pool

__all__ = ["ON_THIS_MACHINE", "Resources", "ray_session", "run_jobs", "job_input"]

log = logging.getLogger(__name__)

# Set before Ray is imported: Ray then takes 127.0.0.1 as this node's address, so that a Ray started on this machine
# (and a test's cluster) listens and talks on the loopback interface only.
LOOPBACK_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
TASKS_PER_WORKER = 2  # handed out ahead, so a worker never waits for the next job
# where work runs when its caller names no runtime (a library call, not a stage): this machine's processes
ON_THIS_MACHINE = RuntimeParams(cluster="local", ray_address=None, shared_root=None)


@dataclass(frozen=True)
class Resources:
    """What one task takes on a Ray node: CPUs, GPUs and memory (0: not declared)."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory_mb: int = 0

    def ray_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"num_cpus": self.cpus, "num_gpus": self.gpus}
        if self.memory_mb:
            options["memory"] = self.memory_mb * 1024 * 1024
        return options


@contextlib.contextmanager
def ray_session(runtime: RuntimeParams) -> Iterator[Any]:
    """The ``ray`` module, connected: to ``runtime.ray_address``, or to a Ray started here (listening on loopback
    only) and shut down on leaving.  A process already connected (a test's cluster) stays connected."""
    if runtime.ray_address is None:
        for name, value in LOOPBACK_ONLY.items():
            os.environ.setdefault(name, value)
    import ray

    if ray.is_initialized():
        yield ray
        return
    ray.init(
        address=runtime.ray_address,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
        configure_logging=False,
    )
    log.info("Ray: %s", ", ".join(f"{value:g} {key}" for key, value in sorted(ray.cluster_resources().items())[:4]))
    try:
        yield ray
    finally:
        ray.shutdown()


def job_input(path: str | Path, runtime: RuntimeParams) -> str | bytes:
    """How a task gets an input file: its path when the workers see this machine's files (``cluster: local``, or
    under ``shared_root``), else its bytes, sent with the task."""
    if runtime.cluster == "local":
        return str(path)
    if runtime.shared_root is not None:
        path = Path(path)
        return str(path if path.is_absolute() else runtime.shared_root / path)
    return Path(path).read_bytes()


class _DaemonThreads:
    """Threads for jobs that wait on the network: daemon threads, so a stopped stage does not wait for them."""

    def __init__(self, workers: int):
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(workers):
            threading.Thread(target=self._work, daemon=True).start()
        self.workers = workers

    def _work(self) -> None:
        while (item := self.jobs.get()) is not None:
            future, function, args = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(function(*args))
                except BaseException as error:  # noqa: BLE001 - handed to the caller
                    future.set_exception(error)

    def submit(self, function: Callable, *args: Any) -> Future:
        future: Future = Future()
        self.jobs.put((future, function, args))
        return future

    def close(self) -> None:
        for _ in range(self.workers):
            self.jobs.put(None)


def _call(function: Callable, setup: Callable[[], None] | None, job: Any) -> Any:
    if setup is not None:
        setup()
    return function(job)


class _Plan:
    """Which job to hand out next: in order, skipping groups that have ``limit`` jobs under way."""

    def __init__(self, count: int, group_of: Callable[[int], Hashable] | None, limit: int | None):
        self.limit = limit if group_of is not None else None
        self.pending: dict[Hashable, collections.deque[int]] = {}
        for index in range(count):
            self.pending.setdefault(None if group_of is None else group_of(index), collections.deque()).append(index)
        self.running: collections.Counter = collections.Counter()
        self.group_of = group_of

    def next(self) -> int | None:
        for group, indices in self.pending.items():
            if indices and (self.limit is None or self.running[group] < self.limit):
                self.running[group] += 1
                return indices.popleft()
        return None

    def done(self, index: int) -> None:
        self.running[None if self.group_of is None else self.group_of(index)] -= 1


def run_jobs(
    function: Callable[[Any], Any],
    jobs: Sequence[Any],
    runtime: RuntimeParams,
    *,
    workers: int,
    resources: Resources = Resources(),
    kind: Literal["process", "thread"] = "process",
    setup: Callable[[], None] | None = None,
    prepare: Callable[[Any], Any] | None = None,
    group_of: Callable[[int], Hashable] | None = None,
    group_limit: int | None = None,
    retries: int = 3,
) -> Iterator[tuple[int, Any]]:
    """``(index, function(prepare(jobs[index])))`` for every job, as they finish (``prepare`` runs here, as the job
    is handed out: reading the input a task is sent with, say).

    Locally, ``workers`` processes (``kind: process``, each running ``setup`` first; this process itself for one
    worker) or threads (``thread``, for jobs that wait on the network) do the jobs; on Ray, tasks of ``resources``
    do them (retried ``retries`` times when their worker dies), in a session :func:`ray_session` opened.
    ``function`` must be importable (module level) and should return its failures rather than raise them: an
    exception stops the run.  When the caller stops (an exception, Ctrl-C, SIGTERM), the jobs not started are
    dropped and those under way are stopped.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1 (got {workers})")
    plan = _Plan(len(jobs), group_of, group_limit)
    prepared = (lambda index: jobs[index]) if prepare is None else (lambda index: prepare(jobs[index]))
    if runtime.cluster == "ray":
        yield from _ray_jobs(function, prepared, plan, runtime, resources, setup, retries)
    elif kind == "thread":
        threads = _DaemonThreads(workers)
        try:
            yield from _local_jobs(threads, function, prepared, plan, workers)
        finally:
            threads.close()
    elif workers == 1:  # in this process: no worker to start
        if setup is not None:
            setup()
        while (index := plan.next()) is not None:
            yield index, function(prepared(index))
            plan.done(index)
    else:
        with worker_pool(workers, setup) as pool:
            yield from _local_jobs(pool, function, prepared, plan, workers)


def _local_jobs(pool, function, prepared, plan: _Plan, workers: int) -> Iterator[tuple[int, Any]]:
    running: dict[Future, int] = {}

    def hand_out() -> None:
        while len(running) < TASKS_PER_WORKER * workers and (index := plan.next()) is not None:
            running[pool.submit(_call, function, None, prepared(index))] = index

    hand_out()
    while running:
        finished, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in finished:
            index = running.pop(future)
            plan.done(index)
            yield index, future.result()
        hand_out()


def _ray_jobs(
    function, prepared, plan: _Plan, runtime, resources: Resources, setup, retries
) -> Iterator[tuple[int, Any]]:
    with ray_session(runtime) as ray:
        task = ray.remote(_call).options(**resources.ray_options(), max_retries=retries, retry_exceptions=False)
        slots = max(1, int(ray.cluster_resources().get("CPU", 1) // max(resources.cpus, 1e-3)))
        running: dict[Any, int] = {}
        try:

            def hand_out() -> None:
                while len(running) < TASKS_PER_WORKER * slots and (index := plan.next()) is not None:
                    running[task.remote(function, setup, prepared(index))] = index

            hand_out()
            while running:
                finished, _ = ray.wait(list(running), num_returns=1)
                for reference in finished:
                    index = running.pop(reference)
                    plan.done(index)
                    yield index, ray.get(reference)
                hand_out()
        finally:
            for reference in running:
                with contextlib.suppress(Exception):
                    ray.cancel(reference, force=True)
