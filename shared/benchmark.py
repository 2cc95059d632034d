"""Timing helpers for the benchmark scripts in tools/ (ratios are always taken within one run)."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable


def time_steps(step: Callable[[], Any], warmup: int, repeats: int) -> list[float]:
    """Wall seconds of `repeats` calls of `step` after `warmup` untimed calls."""
    for _ in range(warmup):
        step()
    seconds = []
    for _ in range(repeats):
        began = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - began)
    return seconds


def per_second(items: int, seconds: list[float]) -> float:
    """Items per second from the median step time."""
    return items / statistics.median(seconds)
