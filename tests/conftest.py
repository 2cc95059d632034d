"""Test-session settings: one torch thread per test process.

`make test` runs pytest-xdist with one worker per core; each worker using a single intra-op thread
keeps the machine from being oversubscribed (two workers × two OpenMP threads on two cores slow
small models down by orders of magnitude).  Subprocesses started by tests inherit the variable.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
