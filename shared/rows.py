"""Run the rows of a default job (one model each: train, then evaluate) one after another or in parallel.

`run_rows(work, items, jobs)` returns ``[work(*item) for item in items]`` in the items' order.  With
``jobs > 1`` the rows run in that many spawned processes, each with ``cores // jobs`` torch threads:
on the 2-core machine two single-thread trainings finish sooner than the same two one after another on
two threads each (small models use a second thread poorly).  A row's result does not depend on which
process ran it, only on the thread count, so a rerun with the same `jobs` prints the same table.
Even one row runs in a process of its own when ``jobs > 1`` (same thread count as in the full run).
`work` must be a module-level function (it is pickled by name); an error in a row (a `UserError`
included) is raised in the caller as it was raised in the row.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Callable, Sequence

from shared.errors import UserError
from shared.training import progress

log = logging.getLogger(__name__)


def cpu_cores() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def threads_per_job(jobs: int) -> int:
    """Torch threads for each of `jobs` parallel rows: the cores split evenly, at least one."""
    return max(1, cpu_cores() // max(1, jobs))


def check_jobs(jobs: int) -> None:
    """A one-line error for a job count below 1 (the default runs check it before generating any data)."""
    if jobs < 1:
        raise UserError(f"--jobs {jobs}: run at least 1 model at a time")


def jobs_note(summary: dict[str, Any]) -> str:
    """How a default run's rows were run, for its provenance line (the thread count can move the last digits)."""
    jobs = int(summary.get("jobs", 1))
    return f"; {jobs} models at a time, {threads_per_job(jobs)} torch thread(s) each" if jobs > 1 else ""


def _start_worker(threads: int, levels: dict[str, int]) -> None:
    """A row process: its torch threads, and the caller's log levels for the task's loggers (to stderr)."""
    import torch

    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _log_levels(work: Callable[..., Any]) -> dict[str, int]:
    names = {str(getattr(work, "__module__", "") or "").split(".")[0], "shared"} - {""}
    return {name: logging.getLogger(name).getEffectiveLevel() for name in names}


def run_rows(work: Callable[..., Any], items: Sequence[tuple[Any, ...]], jobs: int = 1,
             show_progress: bool = False, start_first: Sequence[int] = ()) -> list[Any]:
    """``work(*item)`` for every item, results in the items' order; `jobs` processes at a time (1: here).
    With ``jobs > 1`` the items at the indices `start_first` are started before the others (the longest
    rows first, so the last one does not run alone), and with `show_progress` one bar counts the finished
    rows (the rows' own bars are the caller's to switch off: two processes would draw over each other)."""
    check_jobs(jobs)
    if jobs == 1 or not items:
        return [work(*item) for item in items]
    threads = threads_per_job(jobs)  # from `jobs`, not from the row count: a row's numbers do not depend on its neighbours
    log.info("running %d rows in %d processes, %d torch thread(s) each", len(items), jobs, threads)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(jobs, len(items)), mp_context=context, initializer=_start_worker,
                             initargs=(threads, _log_levels(work))) as pool:
        order = [i for i in start_first if 0 <= i < len(items)]
        order += [i for i in range(len(items)) if i not in order]
        submitted = {i: pool.submit(work, *items[i]) for i in order}
        futures = [submitted[i] for i in range(len(items))]
        for future in progress(as_completed(futures), "rows", enabled=show_progress, total=len(futures)):
            if future.exception() is not None:
                pool.shutdown(wait=True, cancel_futures=True)  # rows not started are dropped; a running one ends
                raise future.exception()
        return [future.result() for future in futures]
