"""What every raw-format loader returns, and the file parsing the loaders share.

A loader (`fau.data.bp4d`, `fau.data.disfa`, `fau.data.fpara`) turns a raw dataset tree into a
`RawDataset`: one `RawFrame` per labelled frame whose image exists, with labels already mapped to
the tidy convention (1 active, 0 inactive, -1 unknown), optional raw landmarks (49, 66 or 68
points in the raw image's pixel coordinates, x then y) and the subject's gender when known.
Frames that cannot be used are not returned; they are counted in `RawDataset.skips` by reason.

Shared raw formats:

* **Landmark CSV** (one file per sequence): a header row, then one row per frame::

      frame,x0,y0,x1,y1,...,x48,y48
      1,301.5,402.25,...

  The first column is the frame number (the same number the label file uses). The header decides
  the point count: 98, 132 or 136 coordinate columns = 49, 66 or 68 points; any other count is a
  `UserError`. A row whose coordinates are all empty means "no landmarks for this frame"; a row
  with the wrong number of fields or a non-number is counted as ``bad_landmark_row`` and the frame
  keeps no landmarks.
* **Gender CSV** (optional, DISFA and others): header ``subject,gender``; gender ``F``/``female``
  or ``M``/``male`` (case-insensitive); anything else or a missing subject means unknown.
* **Frame folders**: a folder of images named by frame number (any zero padding: ``7.jpg``,
  ``0007.jpg`` and ``00007.png`` all mean frame 7), extensions ``.jpg``, ``.jpeg``, ``.png``,
  ``.bmp``. A loader may also accept names with a fixed prefix and an underscore before the
  number (DISFA: ``LeftVideoSN001_comp_0007.png`` or ``SN001_7.png``). The number is the IMAGE's
  number; how it maps to a label frame number is the loader's business (DISFA: `fau.data.disfa`).
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shared.errors import UserError

#: Landmark counts the loaders accept (49-pt SDM/FERA, DISFA 66, iBUG 68).
POINT_COUNTS: tuple[int, ...] = (49, 66, 68)
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp")
GENDERS: tuple[str, ...] = ("female", "male", "unknown")
#: Counted problems that do NOT drop the frame: a bad landmark row (the frame falls back to face
#: detection) and DISFA label values filled with 0 under the AU1 label alignment (`fau.data.disfa`).
WARNING_REASONS: frozenset[str] = frozenset({"bad_landmark_row", "filled_labels"})


@dataclass
class RawFrame:
    """One labelled frame of a raw dataset, before alignment."""

    subject: str
    sequence: str
    frame: int
    image: Path
    labels: np.ndarray                 # int8 (C,): AU occurrence 1/0/-1, or (1,) paralysis grade
    landmarks: np.ndarray | None = None  # float32 (K, 2), K in POINT_COUNTS, raw pixel coordinates
    gender: str = "unknown"

    @property
    def key(self) -> str:
        """Unique row key ``subject/sequence/frame`` (used by the resumable prepare journal)."""
        return f"{self.subject}/{self.sequence}/{self.frame}"


@dataclass
class RawDataset:
    """Frames of one raw dataset plus the reasons frames were dropped."""

    name: str
    columns: tuple[str, ...]           # label column names, e.g. ("AU1", "AU2", ...) or ("grade",)
    aus: tuple[int, ...]               # AU numbers of the columns (empty for paralysis grades)
    frames: list[RawFrame]
    skips: Counter = field(default_factory=Counter)   # reason -> count (WARNING_REASONS keep it)
    #: how the raw tree was read (folder names found, DISFA frame base, label alignment); stored
    #: as ``raw_layout`` in the prepared ``dataset.json``
    layout: dict = field(default_factory=dict)
    #: per subject: {"labels": labelled frames, "images": image files found, "paired": frames
    #: returned (label + image)}; stored as ``frames_per_subject`` in ``summary.json``
    per_subject: dict = field(default_factory=dict)
    #: one-line messages about a large label/frame count mismatch (never silent: `fau prepare`
    #: logs and prints them and stores them as ``frame_mismatch`` in ``summary.json``)
    messages: list = field(default_factory=list)

    def dropped(self) -> int:
        """Number of labelled frames the loader dropped (warnings excluded)."""
        return sum(n for reason, n in self.skips.items() if reason not in WARNING_REASONS)


def gender_from_code(code: str) -> str:
    """Map ``F``/``female``/``M``/``male`` (any case) to ``female``/``male``; else ``unknown``."""
    text = code.strip().lower()
    if text in ("f", "female", "woman"):
        return "female"
    if text in ("m", "male", "man"):
        return "male"
    return "unknown"


def read_gender_csv(path: Path) -> dict[str, str]:
    """Read an optional ``subject,gender`` CSV (module docstring) into subject -> gender."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"subject", "gender"} <= set(reader.fieldnames):
            raise UserError(f"{path}: gender CSV needs a header with columns subject,gender")
        return {row["subject"].strip(): gender_from_code(row["gender"] or "") for row in reader}


def frame_number(stem: str, prefixes: tuple[str, ...] = ()) -> int | None:
    """The image number of a file stem: ``0007`` -> 7, or ``<prefix>_0007`` -> 7 for a prefix in
    `prefixes`; None for any other stem."""
    if stem.isdigit():
        return int(stem)
    for prefix in prefixes:
        rest = stem[len(prefix) + 1:]
        if stem.startswith(prefix + "_") and rest.isdigit():
            return int(rest)
    return None


def index_frame_folder(folder: Path, prefixes: tuple[str, ...] = ()) -> dict[int, Path]:
    """Map image number -> image path for a folder of images named by (zero-padded) number, bare
    or after one of `prefixes` and an underscore (module docstring)."""
    found: dict[int, Path] = {}
    if not folder.is_dir():
        return found
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        stem, ext = os.path.splitext(entry.name)
        number = frame_number(stem, prefixes) if ext.lower() in IMAGE_EXTENSIONS else None
        if number is not None:
            found.setdefault(number, Path(entry.path))
    return found


def _parse_points(values: list[str], count: int) -> np.ndarray:
    """Parse 2*count coordinate strings into a float32 (count, 2) array (ValueError if bad)."""
    if len(values) != 2 * count:
        raise ValueError(f"expected {2 * count} coordinates, got {len(values)}")
    points = np.asarray([float(v) for v in values], dtype=np.float32).reshape(count, 2)
    if not np.all(np.isfinite(points)):
        raise ValueError("non-finite coordinate")
    return points


def read_landmark_csv(path: Path, skips: Counter) -> dict[int, np.ndarray | None]:
    """Read a per-sequence landmark CSV (module docstring) into frame -> (K, 2) points or None."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = csv.reader(handle)
        header = next(rows, None)
        if header is None:
            raise UserError(f"{path}: landmark CSV is empty (expected a header frame,x0,y0,...)")
        n_coords = len(header) - 1
        if n_coords % 2 or n_coords // 2 not in POINT_COUNTS:
            raise UserError(
                f"{path}: landmark CSV header has {n_coords} coordinate columns; "
                f"expected 98, 132 or 136 (49, 66 or 68 points)"
            )
        count = n_coords // 2
        out: dict[int, np.ndarray | None] = {}
        for row in rows:
            if not row:
                continue
            try:
                frame = int(row[0])
            except ValueError:
                skips["bad_landmark_row"] += 1
                continue
            values = [v.strip() for v in row[1:]]
            if not any(values):
                out[frame] = None
                continue
            try:
                out[frame] = _parse_points(values, count)
            except ValueError:
                skips["bad_landmark_row"] += 1
                out[frame] = None
        return out


def read_point_file(path: Path) -> np.ndarray:
    """Read one frame's points from ``.npy`` (K, 2) or text (K lines ``x y`` or ``x,y``).

    Raises ValueError when the file does not hold K x 2 finite numbers with K in POINT_COUNTS.
    """
    if path.suffix.lower() == ".npy":
        points = np.load(path, allow_pickle=False).astype(np.float32)
    else:
        text = path.read_text(encoding="utf-8").replace(",", " ")
        points = np.asarray([float(v) for v in text.split()], dtype=np.float32)
        if points.size % 2:
            raise ValueError(f"odd number of coordinates ({points.size})")
        points = points.reshape(-1, 2)
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] not in POINT_COUNTS:
        raise ValueError(f"expected (49|66|68, 2) points, got shape {points.shape}")
    if not np.all(np.isfinite(points)):
        raise ValueError("non-finite coordinate")
    return points


def require_dir(path: Path, what: str) -> Path:
    """Return `path` if it is a folder, else raise a one-line UserError naming `what`."""
    if not path.is_dir():
        raise UserError(f"{path}: {what} folder not found")
    return path
