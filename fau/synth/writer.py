"""SynFACS output in the raw layouts the real-data loaders read (fau.data.bp4d, fau.data.disfa).

BP4D layout (``layout="bp4d"``; exactly what `fau.data.bp4d.load_bp4d` documents)::

    OUT/AUCoding/AU_OCC/<subject>_<task>.csv   header "0,1,2,4,...", rows frame,0|1|9,...
    OUT/images/<subject>/<task>/<frame:04d>.jpg
    OUT/landmarks/<subject>_<task>.csv          frame,x0,y0,...,x48,y48 (49-pt, pixels, tracked)
    OUT/folds.yaml                              the 3-part subject split (fau.data.folds format)

Occurrence = integer intensity >= 2 (the DISFA rule, so both layouts encode the same truth).
Unknown (9) marks an AU whose region is hidden by the frame's occluder: BP4D coders use 9 when
they cannot see an AU, and these few 9s exercise the loader's 9 -> -1 rule. Regions are the
JAA-Net AU centres (`fau.aus.au_centres`) of the true landmarks; an AU is unknown when any of its
two centres lies under the occluder.

DISFA layout (``layout="disfa"``; `fau.data.disfa.load_disfa`)::

    OUT/ActionUnit_Labels/<SN>/<SN>_au<k>.txt   lines frame,intensity (0-5), one file per AU
    OUT/Images_LeftCamera/<SN>/<frame:04d>.jpg  frames numbered from 1
    OUT/Landmark_Points/<SN>.csv                frame,x0,y0,...,x65,y65 (66-pt, pixels, tracked)
    OUT/gender.csv                              subject,gender
    OUT/folds.yaml

Both layouts also get the ground truth (`write_truth`). ``synfacs_truth.npz`` holds, per frame
N in output order: ``subject``, ``sequence``, ``frame`` (1-based), ``path`` (relative image path),
``landmarks`` (N, 68, 2) true iBUG-68 pixels, ``tracked_landmarks`` (N, 68, 2) what the landmark
files hold (the truth plus tracker-like error, `fau.synth.tracking`), ``intensity`` (N, 15) continuous 0-5 (what was drawn),
``labels`` (N, 15) integer 0-5 (its rounding: the DISFA-style label), ``occurrence`` (N, 15)
1/0/-1 (the BP4D codes with 9 -> -1), ``unknown`` (N, 15), ``expressions`` (N, E) latent
activations named by ``expression_names``, ``pose`` (N, 3) yaw/pitch/roll degrees, ``occluded``
(N,); ``aus`` lists the 15 AU numbers. ``synfacs_truth.json`` holds the generation settings, the
3-part split and every subject's identity, appearance and AU expressivity.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from fau.aus import SYNFACS_AUS, au_centres
from shared.io import atomic_open, atomic_path, write_json

LAYOUTS: tuple[str, ...] = ("bp4d", "disfa")
OCCURRENCE_MIN_INTENSITY = 2
UNKNOWN_CODE = 9
JPEG_QUALITY = 92
TRUTH_NPZ = "synfacs_truth.npz"
TRUTH_JSON = "synfacs_truth.json"
FOLDS_FILE = "folds.yaml"

#: 68-pt drop lists: 49 = no jaw, no inner-mouth corners (the SDM/FERA 49-point layout BP4D
#: ships); 66 = no inner-mouth corners (DISFA's 66-point scheme).
KEEP_49: tuple[int, ...] = tuple(i for i in range(17, 68) if i not in (60, 64))
KEEP_66: tuple[int, ...] = tuple(i for i in range(68) if i not in (60, 64))

def occluded_aus(landmarks: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(15,) bool: AUs with a JAA-Net centre (`fau.aus.au_centres`) of the 68-pt `landmarks`
    under the occluder `mask` (H, W, nonzero = hidden)."""
    h, w = mask.shape
    centres = np.round(au_centres(np.asarray(landmarks, np.float32), SYNFACS_AUS)).astype(int)
    x = np.clip(centres[..., 0], 0, w - 1)
    y = np.clip(centres[..., 1], 0, h - 1)
    return (mask[y, x] > 0).any(axis=1)


def occurrence_codes(labels: np.ndarray, unknown: np.ndarray) -> np.ndarray:
    """BP4D codes: 1 if integer intensity >= 2 else 0; 9 where `unknown`."""
    codes = (np.asarray(labels) >= OCCURRENCE_MIN_INTENSITY).astype(np.int8)
    codes[np.asarray(unknown, dtype=bool)] = UNKNOWN_CODE
    return codes


def frame_path(out: Path, layout: str, subject: str, sequence: str, frame: int) -> Path:
    """Where frame `frame` (1-based) of a sequence goes in `layout` (module docstring)."""
    if layout == "bp4d":
        return out / "images" / subject / sequence / f"{frame:04d}.jpg"
    return out / "Images_LeftCamera" / subject / f"{frame:04d}.jpg"


def write_frame(path: Path, image: np.ndarray) -> None:
    """Atomically write a BGR uint8 image as JPEG (quality JPEG_QUALITY)."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {path}")
    with atomic_open(path, "wb") as handle:
        handle.write(data.tobytes())


def _csv_text(rows: Sequence[Sequence[object]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _landmark_rows(frames: Sequence[int], landmarks: np.ndarray, keep: Sequence[int]) -> list:
    header = ["frame"] + [f"{axis}{i}" for i in range(len(keep)) for axis in ("x", "y")]
    rows: list[list[object]] = [header]
    for frame, points in zip(frames, landmarks):
        rows.append([frame] + [f"{v:.2f}" for v in points[list(keep)].reshape(-1)])
    return rows


def write_bp4d_sequence(out: Path, subject: str, task: str, frames: Sequence[int],
                        codes: np.ndarray, landmarks: np.ndarray) -> None:
    """AU_OCC label CSV (header ``0,<AU numbers>``) and the 49-pt landmark CSV of a sequence."""
    rows: list[list[object]] = [["0"] + [str(au) for au in SYNFACS_AUS]]
    rows += [[frame] + [int(v) for v in row] for frame, row in zip(frames, codes)]
    with atomic_open(out / "AUCoding" / "AU_OCC" / f"{subject}_{task}.csv", "w",
                     encoding="utf-8", newline="") as handle:
        handle.write(_csv_text(rows))
    with atomic_open(out / "landmarks" / f"{subject}_{task}.csv", "w", encoding="utf-8",
                     newline="") as handle:
        handle.write(_csv_text(_landmark_rows(frames, landmarks, KEEP_49)))


def write_disfa_subject(out: Path, subject: str, frames: Sequence[int], labels: np.ndarray,
                        landmarks: np.ndarray) -> None:
    """Per-AU ``frame,intensity`` files and the 66-pt landmark CSV of a DISFA-layout subject."""
    for k, au in enumerate(SYNFACS_AUS):
        lines = "".join(f"{frame},{int(v)}\n" for frame, v in zip(frames, labels[:, k]))
        with atomic_open(out / "ActionUnit_Labels" / subject / f"{subject}_au{au}.txt", "w",
                         encoding="utf-8") as handle:
            handle.write(lines)
    with atomic_open(out / "Landmark_Points" / f"{subject}.csv", "w", encoding="utf-8",
                     newline="") as handle:
        handle.write(_csv_text(_landmark_rows(frames, landmarks, KEEP_66)))


def write_gender_csv(out: Path, genders: dict[str, str]) -> None:
    """``gender.csv`` (subject,gender) for the DISFA layout, which has no gender in its ids."""
    rows = [["subject", "gender"]] + [[s, g] for s, g in genders.items()]
    with atomic_open(out / "gender.csv", "w", encoding="utf-8", newline="") as handle:
        handle.write(_csv_text(rows))


def write_folds(out: Path, layout: str, parts: dict[str, list[str]]) -> None:
    """``folds.yaml``: the 3-part subject split in `fau.data.folds` format (validation computed
    by the loader)."""
    lines = [f"# SynFACS subject-exclusive 3-part split ({layout} layout); fold partK tests on partK.",
             f"dataset: {layout}", "parts:"]
    lines += [f"  {name}: [{', '.join(members)}]" for name, members in parts.items()]
    with atomic_open(out / FOLDS_FILE, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def write_truth(out: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Ground truth: per-frame arrays to ``synfacs_truth.npz``, settings to ``synfacs_truth.json``."""
    with atomic_path(out / TRUTH_NPZ) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)
    write_json(out / TRUTH_JSON, meta)
