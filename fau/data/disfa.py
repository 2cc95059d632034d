"""DISFA loader: per-AU intensity files, left-camera frames, 66-point landmarks.

Raw layout accepted (``ROOT`` is what ``fau prepare --dataset disfa --root ROOT`` gets)::

    ROOT/
      ActionUnit_Labels/<SN>/<SN>_au<k>.txt         intensities, one file per AU   (required)
      Images_LeftCamera/<SN>/<frame>.jpg            left-camera frames            (required)
      Landmark_Points/<SN>/tmp_frame_lm/<SN>_<i>_lm.mat   66 points per frame      (optional)
      Landmark_Points/<SN>.csv                      or: landmark CSV per subject  (optional)
      gender.csv                                    subject,gender                (optional)
      folds.yaml                                    subject parts, overrides the shipped
                                                    published lists (optional; fau.data.folds)

* ``<SN>`` is the subject id (``SN001`` ... ``SN032``); every folder under ``ActionUnit_Labels`` is
  a subject. DISFA has one video per subject, so the sequence name is ``left`` (the camera).
* **Label files** (the release's format): ``ActionUnit_Labels/<SN>/<SN>_au<k>.txt`` for every
  selected AU ``k``, lines ``frame,intensity`` with the 1-based frame number of the video and an
  integer intensity 0-5. Occurrence = intensity >= 2 (anchors-fau.md §1.2; ``threshold``). A
  missing AU file is a `UserError`; a malformed line (not two integers, intensity outside 0-5) is
  counted as ``bad_label_row`` and its frame dropped; a frame absent from some AU file is counted as
  ``incomplete_labels`` and dropped. Label files are never required to have equal lengths.
* **Frames**: the LEFT camera only (ME-GraphAU #2). ``Images_LeftCamera/<SN>/`` holds one image per
  labelled frame, named by the label file's 1-based frame number with any zero padding (canonical,
  as written by the SynFACS DISFA-layout option: 4 digits, ``0001.jpg``); extracting the release video
  with ``ffmpeg -i LeftVideoSN001_comp.avi Images_LeftCamera/SN001/%04d.jpg`` gives exactly these
  names, since ffmpeg numbers from 1. A labelled frame without an image is ``missing_image``.
* **Landmarks** (optional): the release's per-frame MATLAB files
  ``Landmark_Points/<SN>/tmp_frame_lm/<SN>_<frame-1:04d>_lm.mat`` (or the release's alternative
  name ``l0<frame:04d>_lm.mat``), variable ``pts`` = 66 x 2 (x, y) pixel coordinates; or a
  per-subject landmark CSV ``Landmark_Points/<SN>.csv`` in the format of `fau.data.raw` (header
  ``frame,x0,y0,...``, 49/66/68 points, frame = label frame number). A ``.mat`` whose ``pts`` is not
  (49|66|68) x 2 is counted as ``bad_landmarks`` and the frame dropped. 66 points are converted to
  the 49-point layout at prepare time (drop the 17 jaw points; anchors-fau.md §2.1).
* **Gender** (optional): ``gender.csv`` (``subject,gender``) — the release does not ship it;
  subjects not listed are ``unknown``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from fau.aus import DISFA_AUS, au_names
from fau.data.raw import (
    POINT_COUNTS,
    RawDataset,
    RawFrame,
    index_frame_folder,
    read_gender_csv,
    read_landmark_csv,
    require_dir,
)
from shared.errors import UserError

LABEL_DIR = "ActionUnit_Labels"
FRAMES_DIR = "Images_LeftCamera"
LANDMARKS_DIR = "Landmark_Points"
SEQUENCE = "left"
OCCURRENCE_THRESHOLD = 2
MAX_INTENSITY = 5


def read_intensity_file(path: Path, skips: Counter) -> tuple[dict[int, int], set[int]]:
    """Read ``frame,intensity`` lines: frame -> intensity 0-5, plus the frames of malformed lines."""
    if not path.is_file():
        raise UserError(f"{path}: DISFA label file not found")
    values: dict[int, int] = {}
    bad: set[int] = set()
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            parts = [p.strip() for p in line.split(",")]
            try:
                if len(parts) != 2:
                    raise ValueError("field count")
                frame = int(parts[0])
            except ValueError:
                skips["bad_label_row"] += 1
                continue
            try:
                intensity = int(parts[1])
                if not 0 <= intensity <= MAX_INTENSITY:
                    raise ValueError("intensity range")
            except ValueError:
                skips["bad_label_row"] += 1
                bad.add(frame)
                continue
            values[frame] = intensity
    return values, bad


def occurrence(intensity: np.ndarray, threshold: int = OCCURRENCE_THRESHOLD) -> np.ndarray:
    """DISFA occurrence labels: intensity >= threshold -> 1 else 0 (anchors-fau.md §1.2)."""
    return (np.asarray(intensity) >= threshold).astype(np.int8)


def _read_mat_points(path: Path) -> np.ndarray:
    """``pts`` of a DISFA landmark ``.mat`` as float32 (K, 2); ValueError when the shape is wrong."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        points = np.asarray(loadmat(str(path))["pts"], dtype=np.float32)
    except (MatReadError, KeyError, OSError, NotImplementedError) as err:
        raise ValueError(f"unreadable landmark file: {err}") from err
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] not in POINT_COUNTS:
        raise ValueError(f"pts has shape {points.shape}")
    return points


def _mat_path(folder: Path, subject: str, frame: int) -> Path | None:
    """The release's landmark file for a 1-based frame, under either of its two names."""
    for name in (f"{subject}_{frame - 1:04d}_lm.mat", f"l0{frame:04d}_lm.mat"):
        if (folder / name).is_file():
            return folder / name
    return None


def load_disfa(
    root: str | Path,
    aus: Sequence[int] = DISFA_AUS,
    threshold: int = OCCURRENCE_THRESHOLD,
    frames_dir: str = FRAMES_DIR,
    landmarks_dir: str = LANDMARKS_DIR,
    gender_csv: str | Path | None = None,
) -> RawDataset:
    """Load a DISFA-layout tree (module docstring) into a `RawDataset`, frames sorted by key."""
    root = Path(root)
    label_dir = require_dir(root / LABEL_DIR, "DISFA label (ActionUnit_Labels)")
    subjects = sorted(p.name for p in label_dir.iterdir() if p.is_dir())
    if not subjects:
        raise UserError(f"{label_dir}: no subject folders")
    gender_path = Path(gender_csv) if gender_csv else root / "gender.csv"
    genders = read_gender_csv(gender_path) if gender_path.is_file() else {}
    skips: Counter = Counter()
    columns = tuple(aus)
    frames: list[RawFrame] = []
    for subject in subjects:
        per_au = [read_intensity_file(label_dir / subject / f"{subject}_au{k}.txt", skips)
                  for k in columns]
        all_frames = set().union(*(set(v) | b for v, b in per_au))
        bad = set().union(*(b for _, b in per_au))
        complete = set.intersection(*(set(v) for v, _ in per_au)) - bad
        incomplete = len(all_frames - complete - bad)
        if incomplete:
            skips["incomplete_labels"] += incomplete
        images = index_frame_folder(root / frames_dir / subject)
        lm_csv = root / landmarks_dir / f"{subject}.csv"
        lm_table = read_landmark_csv(lm_csv, skips) if lm_csv.is_file() else {}
        mat_dir = root / landmarks_dir / subject / "tmp_frame_lm"
        for frame in sorted(complete):
            image = images.get(frame)
            if image is None:
                skips["missing_image"] += 1
                continue
            landmarks = lm_table.get(frame)
            mat = _mat_path(mat_dir, subject, frame) if landmarks is None else None
            if mat is not None:
                try:
                    landmarks = _read_mat_points(mat)
                except ValueError:
                    skips["bad_landmarks"] += 1
                    continue
            intensity = np.array([values[frame] for values, _ in per_au])
            frames.append(RawFrame(subject, SEQUENCE, frame, image,
                                   occurrence(intensity, threshold), landmarks,
                                   genders.get(subject, "unknown")))
    return RawDataset("disfa", tuple(au_names(columns)), columns, frames, skips)
