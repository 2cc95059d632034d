"""Seeding and deterministic flags in one call."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = True) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); optionally force deterministic kernels.

    Returns a CPU `torch.Generator` seeded with `seed`, for data loaders and samplers.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def worker_seed(worker_id: int) -> None:
    """`DataLoader(worker_init_fn=...)`: derive NumPy/random seeds from torch's per-worker seed."""
    base = torch.initial_seed() % 2**32
    np.random.seed(base)
    random.seed(base)
