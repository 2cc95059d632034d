"""What produced a result: a config's fingerprint and the code version (rows of the default runs'
results.json, so a table can be traced back to the exact config and source that made it)."""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any, Mapping

from shared.version import __version__

#: the source tree this package was imported from (a git checkout in development installs)
SOURCE_ROOT = Path(__file__).resolve().parents[1]
UNKNOWN = "unknown"


def config_sha256(config: Mapping[str, Any]) -> str:
    """SHA-256 of the resolved config (overrides applied) as canonical JSON (sorted keys)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(SOURCE_ROOT), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.lru_cache(maxsize=None)
def code_version() -> dict[str, Any]:
    """``{"version": package version, "commit": git HEAD or "unknown", "dirty": uncommitted changes
    to tracked files (None when unknown)}``; the commit is "unknown" unless the package is imported
    from the top of a git checkout (e.g. an installed wheel)."""
    top = _git("rev-parse", "--show-toplevel")
    commit = _git("rev-parse", "HEAD") if top and Path(top).resolve() == SOURCE_ROOT else None
    if not commit:
        return {"version": __version__, "commit": UNKNOWN, "dirty": None}
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"version": __version__, "commit": commit, "dirty": None if status is None else bool(status)}


def describe_version(version: Mapping[str, Any]) -> str:
    """``0.1.0 (git 1a2b3c4d5e6f, uncommitted changes)`` — one line for tables."""
    commit = version.get("commit", UNKNOWN)
    if commit == UNKNOWN:
        return f"{version.get('version', UNKNOWN)} (git commit unknown)"
    return f"{version['version']} (git {commit[:12]}{', uncommitted changes' if version.get('dirty') else ''})"
