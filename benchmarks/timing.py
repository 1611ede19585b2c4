"""Timing shared by the benchmark scripts (run as `python benchmarks/<name>.py`, so this folder is on the path)."""

import time

import numpy as np


def median_time(repeats: int, work) -> float:
    """Median wall time of ``work()`` over ``repeats`` runs, after one warm-up."""
    work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return float(np.median(times))
