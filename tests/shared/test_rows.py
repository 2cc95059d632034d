"""`shared.rows.run_rows`: a default job's rows in order, here or in spawned processes, errors as raised."""

from __future__ import annotations

import math
import operator

import pytest

from shared.config import load_config
from shared.errors import UserError
from shared.rows import jobs_note, run_rows, threads_per_job


def test_rows_come_back_in_the_items_order_in_this_process_and_in_two():
    items = [(a, b) for a, b in zip(range(5), range(10, 15))]
    expected = [a * b for a, b in items]
    assert run_rows(operator.mul, items, jobs=1) == expected
    assert run_rows(operator.mul, items, jobs=2) == expected
    assert run_rows(operator.mul, items, jobs=2, start_first=[4, 3]) == expected
    assert run_rows(operator.mul, [], jobs=2) == []


def test_a_row_error_reaches_the_caller_as_raised():
    with pytest.raises(ValueError, match="math domain error"):
        run_rows(math.sqrt, [(4.0,), (-1.0,)], jobs=2)
    with pytest.raises(UserError, match="no such file"):
        run_rows(load_config, [("/nonexistent/facevl.yaml",), ("/nonexistent/other.yaml",)], jobs=2)
    with pytest.raises(UserError, match="--jobs 0: run at least 1"):
        run_rows(operator.mul, [(1, 2)], jobs=0)


def test_threads_split_the_cores_and_the_provenance_says_so():
    assert threads_per_job(1) >= threads_per_job(2) >= 1
    assert jobs_note({"jobs": 1}) == "" and jobs_note({}) == ""
    assert jobs_note({"jobs": 2}).startswith("; 2 models at a time")
