"""Metric logging: one JSON object per line (JSONL), optionally mirrored to TensorBoard."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Mapping


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class MetricLogger:
    """Append ``{"step": .., "split": .., <metrics>}`` lines to ``metrics.jsonl`` in `run_dir`.

    Only the writing process should create one (rank 0 under `torchrun`).  With
    ``tensorboard=True`` the same scalars go to a SummaryWriter in ``run_dir/tb``.
    """

    def __init__(self, run_dir: str | Path, tensorboard: bool = False, filename: str = "metrics.jsonl") -> None:
        self.path = Path(run_dir) / filename
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(Path(run_dir) / "tb"))

    def log(self, step: int, split: str, metrics: Mapping[str, Any]) -> None:
        record = {"step": int(step), "split": split, "time": round(time.time(), 3)}
        record.update({key: _jsonable(value) for key, value in metrics.items()})
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        if self._writer is not None:
            for key, value in metrics.items():
                value = _jsonable(value)
                if isinstance(value, (int, float)):
                    self._writer.add_scalar(f"{split}/{key}", value, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL metrics file back (for reports, tests and resume checks)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]
