"""BP4D-Spontaneous loader: AU occurrence CSVs, frame folders, optional landmark CSVs.

Raw layout accepted (``ROOT`` is what ``fau prepare --dataset bp4d --root ROOT`` gets)::

    ROOT/
      AUCoding/AU_OCC/<subject>_<task>.csv     labels, one file per sequence   (required; or
                                               one of the label folders below)
      images/<subject>/<task>/<frame>.jpg      frames                           (required)
      landmarks/<subject>_<task>.csv           49/66/68-point landmarks         (optional)
      folds.yaml                               subject parts, overrides the shipped
                                               published lists (optional; see fau.data.folds)

* **Label folder**: the first of these found holding ``*.csv`` files: ``AUCoding/AU_OCC`` (the
  release), ``AUCoding/AUCoding`` (the FERA-2015 BP4D package as unpacked, read so by the
  FERA-2015 / OpenFace evaluation scripts) and ``AUCoding`` itself (the CSVs kept directly in it,
  as AU_R-CNN reads them: ``AUCoding/F001_T1.csv``). Two of them holding CSVs is a `UserError`
  (which copy is right?); none is a one-line `UserError` naming the three. The folder used is
  recorded in `RawDataset.layout` (``dataset.json`` ``raw_layout.labels_dir``).
* ``<subject>`` is the BP4D id (``F001`` ... ``M018``; the first letter gives the gender: F =
  female, M = male, anything else unknown), ``<task>`` the task folder name (``T1`` ... ``T8``).
  The label file name is split at its LAST underscore into subject and task.
* **Label CSV** (the release's ``AU_OCC`` format): a header row whose first cell names the frame
  column (any text; the release writes ``0``) and whose other cells are AU numbers (``1``, ``2``,
  ``4``, ... ; an ``AU`` prefix such as ``AU12`` is also accepted); then one row per frame: the
  frame number, then one value per AU column, ``0`` = inactive, ``1`` = active, ``9`` = unknown
  (stored as -1). A row with the wrong number of fields, a non-integer, or a value other than
  0/1/9 is counted as ``bad_label_row`` and dropped; a repeated frame number is counted as
  ``duplicate_frame``. A header cell that is not an AU number is a `UserError`.
* **Frames**: ``images/<subject>/<task>/`` holds one image per frame, named by the frame number of
  the label CSV with any zero padding (the canonical form, written by SynFACS, is 4 digits,
  ``0042.jpg``; ``42.jpg`` as in the ME-GraphAU lists works too), extension ``.jpg``/``.jpeg``/
  ``.png``/``.bmp``. The frame folder can be renamed with ``frames_dir`` (e.g. the release's
  ``2D+3D`` folder). A labelled frame without an image is counted as ``missing_image``.
* **Landmarks** (optional): ``landmarks/<subject>_<task>.csv`` in the landmark-CSV format of
  `fau.data.raw` (header ``frame,x0,y0,...``; 49 points as in FERA-2015's BP4D fpoints, or 66/68;
  pixel coordinates of the frame image, x to the right, y down, origin at the top-left pixel).
  Frames without a landmark file or row get landmarks from the face detector at prepare time.

AU selection: by default the 12 evaluated BP4D AUs (`fau.aus.BP4D_AUS`); ``aus=None`` keeps every
AU column found (the union over files, in AU order; an AU missing from one file is -1 there), so
SynFACS's 15 AUs go through unchanged. A requested AU missing from a label file is a `UserError`.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from fau.aus import BP4D_AUS, au_names
from fau.data.raw import (
    RawDataset,
    RawFrame,
    gender_from_code,
    index_frame_folder,
    read_landmark_csv,
)
from shared.errors import UserError

LABEL_DIR = Path("AUCoding") / "AU_OCC"
#: label folders accepted, in the order they are looked for (module docstring)
LABEL_DIRS: tuple[Path, ...] = (LABEL_DIR, Path("AUCoding") / "AUCoding", Path("AUCoding"))
FRAMES_DIR = "images"
LANDMARKS_DIR = "landmarks"
UNKNOWN_CODE = 9
_AU_HEADER = re.compile(r"^(?:AU)?\s*(\d+)$", re.IGNORECASE)


def parse_au_header(header: list[str], path: Path) -> list[int]:
    """AU numbers of a label CSV header (first cell = frame column), as the BP4D release writes it."""
    aus = []
    for cell in header[1:]:
        match = _AU_HEADER.match(cell.strip())
        if match is None:
            raise UserError(f"{path}: header cell {cell!r} is not an AU number")
        aus.append(int(match.group(1)))
    if not aus:
        raise UserError(f"{path}: header has no AU columns")
    return aus


def _trim(cells: list[str]) -> list[str]:
    """Drop trailing empty cells (a trailing comma on every line)."""
    end = len(cells)
    while end and not cells[end - 1].strip():
        end -= 1
    return cells[:end]


def read_label_csv(path: Path, skips: Counter) -> tuple[list[int], dict[int, np.ndarray]]:
    """Read one ``AU_OCC`` CSV: the AU numbers of its columns and frame -> int8 labels.

    Label rule (the BP4D release): 0 and 1 as given, 9 (unknown) -> -1 (docs/fau.md, decision 'unknown labels').
    """
    with open(path, newline="", encoding="utf-8") as handle:
        rows = csv.reader(handle)
        header = next(rows, None)
        if header is None:
            raise UserError(f"{path}: label CSV is empty (expected a header of AU numbers)")
        aus = parse_au_header(_trim(header), path)
        labels: dict[int, np.ndarray] = {}
        for row in rows:
            row = _trim(row)
            if not row:
                continue
            try:
                if len(row) != len(aus) + 1:
                    raise ValueError("field count")
                frame = int(row[0])
                values = np.array([int(v) for v in row[1:]], dtype=np.int8)
            except ValueError:
                skips["bad_label_row"] += 1
                continue
            if not np.isin(values, (0, 1, UNKNOWN_CODE)).all():
                skips["bad_label_row"] += 1
                continue
            if frame in labels:
                skips["duplicate_frame"] += 1
                continue
            values[values == UNKNOWN_CODE] = -1
            labels[frame] = values
    return aus, labels


def split_sequence_name(path: Path) -> tuple[str, str]:
    """``F001_T1.csv`` -> (``F001``, ``T1``); the split is at the last underscore."""
    subject, sep, task = path.stem.rpartition("_")
    if not sep or not subject or not task:
        raise UserError(f"{path}: label file name must be <subject>_<task>.csv")
    return subject, task


def find_label_dir(root: Path) -> Path:
    """The one label folder of ``LABEL_DIRS`` that holds ``*.csv`` files (module docstring)."""
    found = [root / d for d in LABEL_DIRS if (root / d).is_dir() and any((root / d).glob("*.csv"))]
    if len(found) > 1:
        raise UserError(f"{root}: label CSVs in both {found[0].relative_to(root).as_posix()}/ and "
                        f"{found[1].relative_to(root).as_posix()}/; keep one of them")
    if not found:
        names = ", ".join(d.as_posix() + "/" for d in LABEL_DIRS)
        raise UserError(f"{root}: no BP4D label CSVs (<subject>_<task>.csv) in any of {names}")
    return found[0]


def load_bp4d(
    root: str | Path,
    aus: Sequence[int] | None = BP4D_AUS,
    frames_dir: str = FRAMES_DIR,
    landmarks_dir: str = LANDMARKS_DIR,
) -> RawDataset:
    """Load a BP4D-layout tree (module docstring) into a `RawDataset`, frames sorted by key."""
    root = Path(root)
    label_dir = find_label_dir(root)
    files = sorted(label_dir.glob("*.csv"))
    skips: Counter = Counter()
    per_file = []
    for path in files:
        subject, task = split_sequence_name(path)
        file_aus, labels = read_label_csv(path, skips)
        per_file.append((path, subject, task, file_aus, labels))
    columns = tuple(sorted({a for item in per_file for a in item[3]})) if aus is None else tuple(aus)
    frames: list[RawFrame] = []
    per_subject: dict[str, dict] = {}
    for path, subject, task, file_aus, labels in per_file:
        missing = [a for a in columns if a not in file_aus]
        if missing and aus is not None:
            raise UserError(f"{path}: no column for AU{missing[0]} (header has {file_aus})")
        position = {a: i for i, a in enumerate(file_aus)}
        images = index_frame_folder(root / frames_dir / subject / task)
        lm_path = root / landmarks_dir / f"{subject}_{task}.csv"
        landmarks = read_landmark_csv(lm_path, skips) if lm_path.is_file() else {}
        gender = gender_from_code(subject[:1])
        counts = per_subject.setdefault(subject, {"labels": 0, "images": 0, "paired": 0})
        counts["labels"] += len(labels)
        counts["images"] += len(images)
        for frame in sorted(labels):
            image = images.get(frame)
            if image is None:
                skips["missing_image"] += 1
                continue
            counts["paired"] += 1
            row = labels[frame]
            values = np.array([row[position[a]] if a in position else -1 for a in columns],
                              dtype=np.int8)
            frames.append(RawFrame(subject, task, frame, image, values,
                                   landmarks.get(frame), gender))
    frames.sort(key=lambda f: (f.subject, f.sequence, f.frame))
    layout = {"labels_dir": label_dir.relative_to(root).as_posix(), "frames_dir": frames_dir}
    return RawDataset("bp4d", tuple(au_names(columns)), columns, frames, skips, layout=layout,
                      per_subject=dict(sorted(per_subject.items())))
