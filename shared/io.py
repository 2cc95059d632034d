"""Atomic file output: write to a temporary file beside the target, then rename.

A crash or a bad input half-way never leaves a half-written result behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto `path` on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual mode
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file for writing; it replaces `path` only when the block succeeds."""
    if not mode.startswith("w"):
        raise ValueError(f"atomic_open writes only, got mode {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as handle:
        yield handle


def write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> None:
    """Atomically write `obj` as JSON (UTF-8, keys in insertion order)."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        json.dump(obj, handle, indent=indent, ensure_ascii=False)
        handle.write("\n")


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Atomically write a NumPy array in `.npy` format."""
    with atomic_open(path, "wb") as handle:
        np.save(handle, array)


def check_output(path: str | os.PathLike | None, option: str, folder: bool = False) -> None:
    """Refuse at start (not after the work) an output that cannot be written: a file name that is a
    folder (or a `folder` that is a file), or a place below a file or in a read-only folder.  The
    one-line `UserError` names the option and the path."""
    from shared.errors import UserError

    if not path:
        return
    target = Path(path)
    if folder and os.path.lexists(target) and not target.is_dir():
        raise UserError(f"{option} {path}: exists and is not a folder")
    if not folder and target.is_dir():
        raise UserError(f"{option} {path}: is a folder, expected a file name")
    start = target if folder else target.parent
    parent = next((p for p in (start, *start.parents) if os.path.lexists(p)), Path("."))
    if not parent.is_dir():
        raise UserError(f"{option} {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path}: folder {parent} is not writable")


NPY_MAGIC = b"\x93NUMPY"


def _describe_non_npy(head: bytes) -> str:
    """What a file without the .npy magic looks like, from its first bytes (for the error message)."""
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (.npz?), expected one .npy array"
    if head[:1] == b"\x80":
        return "a Python pickle, refused (pickles are never loaded)"
    text = head.decode("utf-8", errors="replace").rstrip("\ufffd")
    if text and all(c.isprintable() or c.isspace() for c in text):
        return f"a text file starting {text.splitlines()[0][:24]!r}, no .npy header"
    return "no .npy header"


def open_npy(path: str | os.PathLike) -> np.ndarray:
    """Memory-map a ``.npy`` file, checking its header first: never unpickles; a 0-byte, text, pickled,
    zipped, empty or truncated file is a one-line `UserError` naming `path`."""
    from shared.errors import UserError

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        with path.open("rb") as handle:
            head = handle.read(64)
            if not head:
                raise UserError(f"{path}: empty file (0 bytes), expected a .npy array")
            if not head.startswith(NPY_MAGIC):
                raise UserError(f"{path}: not a .npy array ({_describe_non_npy(head)})")
            handle.seek(0)
            major, _ = np.lib.format.read_magic(handle)
            reader = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, dtype = reader(handle)
            data_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            offset = handle.tell()
    except (ValueError, OSError, EOFError) as err:
        raise UserError(f"{path}: not a readable .npy array ({str(err).splitlines()[0]})") from None
    if dtype.hasobject:
        raise UserError(f"{path}: holds Python objects (dtype {dtype}), a pickled array; refused (never unpickled)")
    if 0 in shape:
        raise UserError(f"{path}: empty array (shape {tuple(shape)})")
    size = path.stat().st_size
    if size < offset + data_bytes:
        raise UserError(f"{path}: truncated ({size} bytes; shape {tuple(shape)} {dtype} needs {offset + data_bytes})")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise UserError(f"{path}: not a readable .npy array ({str(err).splitlines()[0]})") from None
