"""DISFA loader: per-AU intensity files, left-camera frames, 66-point landmarks.

Raw layout accepted (``ROOT`` is what ``fau prepare --dataset disfa --root ROOT`` gets)::

    ROOT/
      ActionUnit_Labels/<SN>/<SN>_au<k>.txt         intensities, one file per AU   (required)
      <frames>/<video>/<image>.png|jpg              left-camera frames            (required)
      Landmark_Points/<SN>/tmp_frame_lm/<SN>_<i>_lm.mat   66 points per frame      (optional)
      Landmark_Points/<SN>.csv                      or: landmark CSV per subject  (optional)
      gender.csv                                    subject,gender                (optional)
      folds.yaml                                    subject parts, overrides the shipped
                                                    published lists (optional; fau.data.folds)

* ``<SN>`` is the subject id (``SN001`` ... ``SN032``); every folder under ``ActionUnit_Labels`` is
  a subject. DISFA has one video per subject, so the sequence name is ``left`` (the camera).
* **Label files** (the release's format): ``ActionUnit_Labels/<SN>/<SN>_au<k>.txt`` for every
  selected AU ``k``, lines ``frame,intensity`` with the 1-based frame number of the video and an
  integer intensity 0-5. Occurrence = intensity >= 2 (``threshold``; the thesis does not say how
  intensities are binarised: docs/fau.md, decision 'DISFA occurrence threshold'). A
  missing AU file is a `UserError`; a malformed line (not two integers, intensity outside 0-5) is
  counted as ``bad_label_row`` and its frame dropped.
* **Unequal AU-file lengths** (``label_align``, ``fau prepare --label-align``):

  - ``au1`` (default; the rule of the public preprocessing, ME-GraphAU
    ``tool/DISFA_image_label_process.py``): the labelled frames are those of the AU1 file
    ``<SN>_au1.txt`` (read even when AU1 is not selected); a frame that another selected AU file
    lacks gets intensity 0 for that AU, each such value counted as ``filled_labels`` (a warning:
    the frame is kept); frames present in another AU file but not in AU1's are dropped as
    ``incomplete_labels``. Unlike the public script, which fills by line position, values are
    matched by the frame number written in each line, so a file with a gap cannot shift labels.
  - ``intersection``: only frames present in every selected AU file; the others are dropped and
    counted as ``incomplete_labels``.

* **Frames**: the LEFT camera only (ME-GraphAU #2). The frame folder of subject ``<SN>`` is
  ``<frames>/<video>`` where ``<frames>`` is ``frames_dir`` (``--frames-dir``) or, when not given,
  the first of ``Images_LeftCamera`` (this project's layout and SynFACS's), ``images`` (LibreFace
  ``extract_frames_DISFA.py``) and ``img`` (ME-GraphAU ``data/DISFA/img``) that holds a known
  ``<video>`` folder; ``<video>`` is ``<SN>``, ``LeftVideo<SN>_comp`` (the release's video name, as
  frame-extraction scripts name their output folders) or ``LeftVideo<SN>``. Two of these for one
  subject is a `UserError` (which one holds the frames?); none for any subject is a one-line
  `UserError` listing the expected names. An image is named by its number with any zero padding,
  bare or after the ``<video>`` or ``<SN>`` prefix and an underscore (``0.png``, ``0001.jpg``,
  ``LeftVideoSN001_comp_0001.png``, ``SN001_0.png``). Frames another pipeline has already
  cropped (ME-GraphAU's ``img/`` holds its MTCNN face crops) no longer match the release's
  landmark coordinates: prepare them without landmark files (``--no-align`` keeps them as they
  are).
* **Frame numbering** (``frame_base``, ``fau prepare --frame-base 0|1|auto``): image number ``n``
  holds label frame ``n + 1 - base``. Base 0: ME-GraphAU's lists and the JAA-Net lineage name
  the frame of label line 1 ``SN001/0.png`` (OpenCV frame index); base 1: ffmpeg's ``%d``/``%04d``
  patterns (LibreFace's ``LeftVideoSN001_comp_0001.png``) and SynFACS's ``0001.jpg``. Auto-detection
  looks, per subject with labelled frames ``first..last``, at two images: ``first - 1`` exists and
  ``last`` does not -> 0-based; ``last`` exists and ``first - 1`` does not -> 1-based (for the
  release, whose labels run 1..4845: an image ``0`` means 0-based, an image ``4845`` means 1-based).
  Never guessed: a subject with both images, subjects that disagree, or no subject with either
  image is a one-line `UserError` asking for ``--frame-base``. An explicit base that the images
  contradict is kept but reported (`RawDataset.messages`). The base and the evidence are recorded
  in `RawDataset.layout` (``dataset.json`` ``raw_layout``). A labelled frame without an image is
  ``missing_image``; per subject, the labelled frames, the images found and the pairs made are
  in `RawDataset.per_subject`, and a mismatch beyond ``MISMATCH_TOLERANCE`` (e.g. images from
  another extraction, a wrong base, a missing folder) gives a one-line message.
* **Landmarks** (optional) follow the LABEL frame number, whatever the image numbering: the
  release's per-frame MATLAB files ``Landmark_Points/<SN>/tmp_frame_lm/<SN>_<frame-1:04d>_lm.mat``
  (or the release's alternative name ``l0<frame:04d>_lm.mat``), variable ``pts`` = 66 x 2 (x, y)
  pixel coordinates; or a per-subject landmark CSV ``Landmark_Points/<SN>.csv`` in the format of
  `fau.data.raw` (header ``frame,x0,y0,...``, 49/66/68 points, frame = label frame number). A
  ``.mat`` whose ``pts`` is not (49|66|68) x 2 is counted as ``bad_landmarks`` and the frame
  dropped. 66 points are converted to the 49-point layout at prepare time (drop the 17 jaw
  points, as JAA-Net's ``dataset/read_disfa_49land.py``; `fau.face.points`).
* **Gender** (optional): ``gender.csv`` (``subject,gender``) — the release does not ship it;
  subjects not listed are ``unknown``.
"""

from __future__ import annotations

import logging
import math
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

log = logging.getLogger(__name__)

LABEL_DIR = "ActionUnit_Labels"
FRAMES_DIR = "Images_LeftCamera"
#: frame roots tried in order when no frames_dir is given (module docstring)
FRAME_ROOTS: tuple[str, ...] = (FRAMES_DIR, "images", "img")
#: per-subject frame folder names under a frame root
VIDEO_FOLDERS: tuple[str, ...] = ("{sn}", "LeftVideo{sn}_comp", "LeftVideo{sn}")
FRAME_BASES: tuple[int, ...] = (0, 1)
LABEL_ALIGNS: tuple[str, ...] = ("au1", "intersection")
REFERENCE_AU = 1
#: a subject whose unpaired labels or images exceed this fraction of its labelled frames (and 2
#: frames) gets a mismatch message
MISMATCH_TOLERANCE = 0.01
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
    """DISFA occurrence labels: intensity >= threshold -> 1 else 0 (docs/fau.md, decision 'DISFA occurrence threshold')."""
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
    """The release's landmark file for a (1-based) LABEL frame, under either of its two names."""
    for name in (f"{subject}_{frame - 1:04d}_lm.mat", f"l0{frame:04d}_lm.mat"):
        if (folder / name).is_file():
            return folder / name
    return None


def subject_intensities(label_dir: Path, subject: str, columns: Sequence[int], align: str,
                        skips: Counter) -> tuple[dict[int, np.ndarray], int]:
    """Label frame -> (C,) intensities of one subject under the alignment rule `align` (module
    docstring), and the number of values filled with 0 (``au1`` only)."""
    folder = label_dir / subject
    per_au = [read_intensity_file(folder / f"{subject}_au{k}.txt", skips) for k in columns]
    bad = set().union(*(b for _, b in per_au))
    labelled = set().union(*(set(v) for v, _ in per_au))
    if align == "intersection":
        frames = set.intersection(*(set(v) for v, _ in per_au)) - bad
        filled = 0
    elif align == "au1":
        if REFERENCE_AU in columns:
            reference = per_au[list(columns).index(REFERENCE_AU)][0]
        else:
            path = folder / f"{subject}_au{REFERENCE_AU}.txt"
            if not path.is_file():
                raise UserError(f"{path}: DISFA label file not found (--label-align au1 takes the "
                                f"frames from it; use --label-align intersection without it)")
            reference, ref_bad = read_intensity_file(path, skips)
            bad |= ref_bad
        frames = set(reference) - bad
        labelled |= set(reference)
        filled = sum(frame not in values for frame in frames for values, _ in per_au)
    else:
        raise UserError(f"label alignment must be one of {', '.join(LABEL_ALIGNS)}, got {align!r}")
    dropped = len(labelled - frames - bad)
    if dropped:
        skips["incomplete_labels"] += dropped
    table = {f: np.array([values.get(f, 0) for values, _ in per_au]) for f in sorted(frames)}
    return table, filled


def find_video_folder(base: Path, subject: str) -> Path | None:
    """The frame folder of `subject` under the frame root `base` (``VIDEO_FOLDERS``), or None."""
    present = [base / name.format(sn=subject) for name in VIDEO_FOLDERS
               if (base / name.format(sn=subject)).is_dir()]
    if len(present) > 1:
        raise UserError(f"{base}: both {present[0].name}/ and {present[1].name}/ hold frames of "
                        f"{subject}; keep one of them")
    return present[0] if present else None


def expected_frame_folders(roots: Sequence[str]) -> str:
    """The frame-folder names looked for, in one line (for error messages)."""
    videos = ", ".join(name.format(sn="<SN>") for name in VIDEO_FOLDERS)
    return f"{' or '.join(r + '/' for r in roots)}<video>/ with <video> one of {videos}"


def find_frame_folders(root: Path, subjects: Sequence[str],
                       frames_dir: str | None) -> tuple[str, dict[str, Path | None]]:
    """The frame root used and each subject's frame folder (None = not found); a one-line
    `UserError` naming the expected names when no subject has a known folder."""
    roots = (frames_dir,) if frames_dir else FRAME_ROOTS
    for name in roots:
        base = root / name
        if not base.is_dir():
            continue
        folders = {s: find_video_folder(base, s) for s in subjects}
        if any(folders.values()):
            return name, folders
    raise UserError(f"{root}: no DISFA left-camera frame folder for any subject of "
                    f"{LABEL_DIR}/ ({subjects[0]}, ...); expected {expected_frame_folders(roots)} "
                    f"(e.g. Images_LeftCamera/{subjects[0]}/0.png); name another frame folder "
                    f"with --frames-dir")


def base_evidence(frames: Sequence[int], images: dict[int, Path]) -> tuple[set[int], str]:
    """Which frame bases the image numbers of one subject support (module docstring), and why."""
    if not frames or not images:
        return set(), ""
    first, last = min(frames), max(frames)
    before, at_last = (first - 1) in images, last in images
    supported = ({0} if before else set()) | ({1} if at_last else set())
    word = {True: "exists", False: "absent"}
    why = (f"label frames {first}..{last}: image {first - 1} {word[before]}, "
           f"image {last} {word[at_last]}")
    return supported, why


def choose_frame_base(evidence: dict[str, tuple[set[int], str]], requested: int | None,
                      messages: list[str]) -> tuple[int, str]:
    """The frame base to use and the reason (module docstring); a `UserError` when it cannot be
    told; an explicit base that the images contradict is kept and reported in `messages`."""
    single = {b: [s for s, (e, _) in evidence.items() if e == {b}] for b in FRAME_BASES}
    both = [s for s, (e, _) in evidence.items() if e == {0, 1}]
    hint = ("pass --frame-base 0 (image 0 = label frame 1, as ME-GraphAU / OpenCV) or 1 "
            "(image 1 = label frame 1, as ffmpeg %d)")
    if requested is not None:
        if requested not in FRAME_BASES:
            raise UserError(f"--frame-base must be 0, 1 or auto, got {requested!r}")
        other = single[1 - requested]
        if other:
            messages.append(f"--frame-base {requested} given, but the images of {other[0]}"
                            f"{f' (and {len(other) - 1} more subjects)' if len(other) > 1 else ''}"
                            f" look {1 - requested}-based ({evidence[other[0]][1]}): labels may sit "
                            f"on the neighbouring frame")
        return requested, f"--frame-base {requested}"
    if both:
        raise UserError(f"{both[0]}: cannot tell the frame numbering ({evidence[both[0]][1]}); "
                        f"{hint}")
    if single[0] and single[1]:
        raise UserError(f"DISFA frame numbering differs between subjects ({single[0][0]} 0-based: "
                        f"{evidence[single[0][0]][1]}; {single[1][0]} 1-based: "
                        f"{evidence[single[1][0]][1]}); re-extract one of them or {hint}")
    if not single[0] and not single[1]:
        raise UserError(f"cannot tell whether the DISFA frame images are numbered from 0 or 1 (no "
                        f"subject has an image just before its first label frame or one at its "
                        f"last); {hint}")
    base = 0 if single[0] else 1
    subject = single[base][0]
    return base, f"auto: {subject} {evidence[subject][1]}"


def mismatch_message(subject: str, counts: dict, folder: Path | None,
                     frame_root: str) -> str | None:
    """One line when a subject's labels and images pair badly (``MISMATCH_TOLERANCE``), else None."""
    labels, images, paired = counts["labels"], counts["images"], counts["paired"]
    tolerance = max(2, math.ceil(MISMATCH_TOLERANCE * labels))
    if labels - paired <= tolerance and images - paired <= tolerance and (paired or not labels):
        return None
    if folder is None:
        return (f"{subject}: {labels} labelled frames but no frame folder (expected "
                f"{expected_frame_folders((frame_root,))})")
    return (f"{subject}: {labels} labelled frames, {images} images, {paired} paired "
            f"({labels - paired} labels without image, {images - paired} images without label)")


def load_disfa(
    root: str | Path,
    aus: Sequence[int] = DISFA_AUS,
    threshold: int = OCCURRENCE_THRESHOLD,
    frames_dir: str | None = None,
    landmarks_dir: str = LANDMARKS_DIR,
    gender_csv: str | Path | None = None,
    frame_base: int | None = None,
    label_align: str = "au1",
) -> RawDataset:
    """Load a DISFA-layout tree (module docstring) into a `RawDataset`, frames sorted by key.

    `frames_dir` None = look for the known frame roots; `frame_base` None = detect (0 or 1
    otherwise); `label_align` ``au1`` (public rule) or ``intersection``.
    """
    root = Path(root)
    if label_align not in LABEL_ALIGNS:
        raise UserError(f"--label-align must be one of {', '.join(LABEL_ALIGNS)}, got {label_align!r}")
    label_dir = require_dir(root / LABEL_DIR, "DISFA label (ActionUnit_Labels)")
    subjects = sorted(p.name for p in label_dir.iterdir() if p.is_dir())
    if not subjects:
        raise UserError(f"{label_dir}: no subject folders")
    gender_path = Path(gender_csv) if gender_csv else root / "gender.csv"
    genders = read_gender_csv(gender_path) if gender_path.is_file() else {}
    skips: Counter = Counter()
    columns = tuple(aus)
    frame_root, folders = find_frame_folders(root, subjects, frames_dir)
    labels, images, filled = {}, {}, {}
    for subject in subjects:
        labels[subject], filled[subject] = subject_intensities(label_dir, subject, columns,
                                                               label_align, skips)
        folder = folders[subject]
        images[subject] = (index_frame_folder(folder, (folder.name, subject))
                           if folder is not None else {})
    if sum(filled.values()):
        skips["filled_labels"] += sum(filled.values())
    messages: list[str] = []
    evidence = {s: base_evidence(list(labels[s]), images[s]) for s in subjects}
    base, reason = choose_frame_base(evidence, frame_base, messages)
    per_subject: dict[str, dict] = {}
    frames: list[RawFrame] = []
    for subject in subjects:
        lm_csv = root / landmarks_dir / f"{subject}.csv"
        lm_table = read_landmark_csv(lm_csv, skips) if lm_csv.is_file() else {}
        mat_dir = root / landmarks_dir / subject / "tmp_frame_lm"
        paired = 0
        for frame, intensity in labels[subject].items():
            image = images[subject].get(frame - 1 + base)
            if image is None:
                skips["missing_image"] += 1
                continue
            paired += 1
            landmarks = lm_table.get(frame)
            mat = _mat_path(mat_dir, subject, frame) if landmarks is None else None
            if mat is not None:
                try:
                    landmarks = _read_mat_points(mat)
                except ValueError:
                    skips["bad_landmarks"] += 1
                    continue
            frames.append(RawFrame(subject, SEQUENCE, frame, image,
                                   occurrence(intensity, threshold), landmarks,
                                   genders.get(subject, "unknown")))
        counts = {"labels": len(labels[subject]), "images": len(images[subject]),
                  "paired": paired}
        if filled[subject]:
            counts["filled_labels"] = filled[subject]
        per_subject[subject] = counts
        message = mismatch_message(subject, counts, folders[subject], frame_root)
        if message:
            messages.append(message)
    for message in messages:      # returned too: `fau prepare` prints them and keeps them
        log.info("%s", message)
    found = sorted({f.relative_to(root / frame_root).as_posix().replace(s, "<SN>")
                    for s, f in folders.items() if f is not None})
    layout = {"frames_dir": frame_root, "video_folders": found, "frame_base": base,
              "frame_base_from": reason, "label_align": label_align}
    return RawDataset("disfa", tuple(au_names(columns)), columns, frames, skips,
                      layout=layout, per_subject=per_subject, messages=messages)
