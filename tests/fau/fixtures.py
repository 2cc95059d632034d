"""Tiny raw dataset trees in the exact BP4D, DISFA and FPara layouts, generated at test time.

Each `make_*` writes a few frames per subject (small drawn faces with their landmarks) into a
temporary folder and returns what it wrote, so tests can compare loader output with ground truth.
With ``bad=True`` the tree also holds one instance of each malformed input the loaders must count
(a bad label row, a labelled frame without an image, a bad landmark row or file).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Subjects taken from each published part, so every fold has train, val and test frames.
BP4D_SUBJECTS = ("F001", "M007", "M011", "F003", "F007", "F015")
DISFA_SUBJECTS = ("SN002", "SN013", "SN003")
BP4D_HEADER_AUS = (1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15, 16, 17, 23, 24, 27)


def face68(centre: tuple[float, float] = (80.0, 88.0), scale: float = 38.0,
           roll: float = 0.0) -> np.ndarray:
    """A plausible iBUG-68 face (float32 (68, 2), pixel coordinates), rotated by `roll` radians."""
    t = np.linspace(np.pi, 0.0, 17)
    jaw = np.stack([np.cos(t) * 1.0, 0.15 + np.sin(t) * 1.05], axis=1)
    brow = np.stack([np.linspace(-0.85, -0.15, 5), [-0.45, -0.55, -0.58, -0.55, -0.48]], axis=1)
    brows = np.concatenate([brow, brow[::-1] * [-1, 1]])
    bridge = np.stack([np.zeros(4), np.linspace(-0.3, 0.25, 4)], axis=1)
    nostrils = np.stack([np.linspace(-0.2, 0.2, 5), [0.32, 0.35, 0.37, 0.35, 0.32]], axis=1)
    a = np.linspace(0, 2 * np.pi, 7)[:-1]
    eye = np.stack([-np.cos(a) * 0.2, -np.sin(a) * 0.08], axis=1)
    left_eye = eye + [-0.45, -0.25]
    right_eye = (eye * [-1, 1])[[0, 1, 2, 3, 4, 5]] + [0.45, -0.25]
    m = np.linspace(0, 2 * np.pi, 13)[:-1]
    outer = np.stack([-np.cos(m) * 0.4, 0.65 - np.sin(m) * 0.15], axis=1)
    n = np.linspace(0, 2 * np.pi, 9)[:-1]
    inner = np.stack([-np.cos(n) * 0.3, 0.65 - np.sin(n) * 0.06], axis=1)
    unit = np.concatenate([jaw, brows, bridge, nostrils, left_eye, right_eye, outer, inner])
    rot = np.array([[np.cos(roll), -np.sin(roll)], [np.sin(roll), np.cos(roll)]])
    return (unit @ rot.T * scale + np.asarray(centre)).astype(np.float32)


def draw_face(landmarks: np.ndarray, size: int = 160, seed: int = 0) -> np.ndarray:
    """An RGB uint8 image of the landmark face (skin hull, dark brows, eyes and lips)."""
    import cv2

    rng = np.random.default_rng(seed)
    image = np.full((size, size, 3), 90, dtype=np.uint8)
    image += rng.integers(0, 20, size=image.shape, dtype=np.uint8)
    pts = np.round(landmarks).astype(np.int32)
    cv2.fillConvexPoly(image, cv2.convexHull(np.concatenate([pts[:17], pts[17:27]])), (200, 160, 140))
    for group in (pts[17:22], pts[22:27], pts[27:31], pts[31:36]):
        cv2.polylines(image, [group], False, (60, 40, 30), 2)
    for group in (pts[36:42], pts[42:48], pts[48:60]):
        cv2.polylines(image, [group], True, (40, 30, 30), 1)
    return image


def save_image(path: Path, image: np.ndarray) -> None:
    """Write an RGB uint8 image (format from the extension), creating folders."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def landmark_header(count: int) -> list[str]:
    """Header of a landmark CSV with `count` points: frame,x0,y0,..."""
    return ["frame"] + [f"{axis}{i}" for i in range(count) for axis in ("x", "y")]


@dataclass
class Tree:
    """What a fixture wrote: root, ground-truth labels per (subject, sequence, frame), extras."""

    root: Path
    labels: dict[tuple[str, str, int], list[int]] = field(default_factory=dict)
    landmarks: dict[tuple[str, str, int], np.ndarray] = field(default_factory=dict)
    expected_skips: dict[str, int] = field(default_factory=dict)


def make_bp4d(root: Path, subjects=BP4D_SUBJECTS, tasks=("T1", "T2"), frames: int = 3,
              bad: bool = False, seed: int = 0) -> Tree:
    """BP4D layout: AUCoding/AU_OCC CSVs with a 17-AU header (0/1/9), images/<s>/<t>/<0000>.jpg,
    landmarks/<s>_<t>.csv with 49 points (68-point files for the second task)."""
    rng = np.random.default_rng(seed)
    tree = Tree(Path(root))
    label_dir = tree.root / "AUCoding" / "AU_OCC"
    label_dir.mkdir(parents=True)
    (tree.root / "landmarks").mkdir()
    from fau.face.points import to49

    for s_i, subject in enumerate(subjects):
        for t_i, task in enumerate(tasks):
            numbers = [10 + 7 * k for k in range(frames)]          # real files start mid-video
            rows = []
            lm_rows = []
            count = 49 if t_i == 0 else 68
            for k, number in enumerate(numbers):
                values = rng.choice([0, 1, 9], p=[0.55, 0.35, 0.10], size=len(BP4D_HEADER_AUS))
                rows.append([number, *values.tolist()])
                points = face68(roll=0.05 * (k - 1), scale=36 + s_i)
                tree.labels[(subject, task, number)] = [-1 if v == 9 else int(v) for v in values]
                tree.landmarks[(subject, task, number)] = points
                save_image(tree.root / "images" / subject / task / f"{number:04d}.jpg",
                           draw_face(points, seed=number))
                kept = to49(points) if count == 49 else points
                lm_rows.append([number, *np.round(kept, 3).reshape(-1).tolist()])
            with open(label_dir / f"{subject}_{task}.csv", "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["0", *map(str, BP4D_HEADER_AUS)])
                writer.writerows(rows)
                if bad and s_i == 0 and t_i == 0:
                    writer.writerow([999, 1, 0])                        # too few fields
                    writer.writerow([998, *(["x"] * len(BP4D_HEADER_AUS))])  # not integers
                    writer.writerow([997, *([3] * len(BP4D_HEADER_AUS))])    # value not 0/1/9
                    writer.writerow([996, *([0] * len(BP4D_HEADER_AUS))])    # no image
            with open(tree.root / "landmarks" / f"{subject}_{task}.csv", "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(landmark_header(count))
                if bad and s_i == 1 and t_i == 0:
                    lm_rows[0] = [lm_rows[0][0], 1.0, 2.0]             # wrong field count
                writer.writerows(lm_rows)
    if bad:
        tree.expected_skips = {"bad_label_row": 3, "missing_image": 1, "bad_landmark_row": 1}
    return tree


def make_disfa(root: Path, subjects=DISFA_SUBJECTS, frames: int = 4, bad: bool = False,
               seed: int = 1) -> Tree:
    """DISFA layout: ActionUnit_Labels/<SN>/<SN>_au<k>.txt (1-based frames, intensity 0-5),
    Images_LeftCamera/<SN>/<0001>.jpg; landmarks as release .mat (66 points, both file names) for
    the first subject, a per-subject 66-point CSV for the second, none for the third."""
    from scipy.io import savemat

    from fau.aus import DISFA_AUS

    rng = np.random.default_rng(seed)
    tree = Tree(Path(root))
    keep66 = [i for i in range(68) if i not in (60, 64)]
    for s_i, subject in enumerate(subjects):
        label_dir = tree.root / "ActionUnit_Labels" / subject
        label_dir.mkdir(parents=True)
        intensities = rng.integers(0, 6, size=(frames, len(DISFA_AUS)))
        intensities[0] = [0, 1, 2, 3, 4, 5, 1, 2]                  # both sides of the >= 2 rule
        for a_i, au in enumerate(DISFA_AUS):
            lines = [f"{f + 1},{intensities[f, a_i]}" for f in range(frames)]
            if bad and s_i == 0 and a_i == 0:
                lines.append(f"{frames + 1},7")                    # intensity out of range
                lines.append("garbage line")                       # not frame,intensity
            if bad and s_i == 0 and a_i == 1:
                lines = lines[:-1]                                 # last frame lacks AU2
            (label_dir / f"{subject}_au{au}.txt").write_text("\n".join(lines) + "\n")
        lm_rows = []
        for f in range(frames):
            number = f + 1
            points = face68(roll=0.03 * f, scale=35 + 2 * s_i)
            tree.labels[(subject, "left", number)] = (intensities[f] >= 2).astype(int).tolist()
            tree.landmarks[(subject, "left", number)] = points
            save_image(tree.root / "Images_LeftCamera" / subject / f"{number:04d}.jpg",
                       draw_face(points, seed=100 * s_i + f))
            if s_i == 0:
                mat_dir = tree.root / "Landmark_Points" / subject / "tmp_frame_lm"
                mat_dir.mkdir(parents=True, exist_ok=True)
                name = f"{subject}_{f:04d}_lm.mat" if f % 2 == 0 else f"l0{number:04d}_lm.mat"
                pts = points[keep66]
                if bad and f == frames - 2:
                    pts = pts[:60]                                 # wrong landmark count
                savemat(mat_dir / name, {"pts": pts.astype(np.float64)})
            elif s_i == 1:
                lm_rows.append([number, *np.round(points[keep66], 3).reshape(-1).tolist()])
        if lm_rows:
            path = tree.root / "Landmark_Points" / f"{subject}.csv"
            with open(path, "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(landmark_header(66))
                writer.writerows(lm_rows)
    genders = dict(zip(subjects, ("F", "m")))
    (tree.root / "gender.csv").write_text(
        "subject,gender\n" + "".join(f"{s},{g}\n" for s, g in genders.items()))
    if bad:
        tree.expected_skips = {"bad_label_row": 2, "bad_landmarks": 1, "incomplete_labels": 1}
    return tree


def make_fpara(root: Path, subjects=("p01", "p02", "p03", "p04"), frames: int = 3,
               bad: bool = False) -> Tree:
    """FPara layout: labels.csv (path,subject,grade,gender,landmarks) with names, numbers and
    House-Brackmann grades, per-frame 68-point text landmark files for half of the frames."""
    tree = Tree(Path(root))
    grades = ["normal", "1", "hb4", "high"]
    rows = [["path", "subject", "grade", "gender", "landmarks"]]
    for s_i, subject in enumerate(subjects):
        for f in range(frames):
            points = face68(roll=0.04 * f, scale=34 + s_i)
            rel = f"frames/{subject}/{f:03d}.png"
            save_image(tree.root / rel, draw_face(points, seed=10 * s_i + f))
            lm_rel = ""
            if f % 2 == 0:
                lm_rel = f"points/{subject}_{f}.txt"
                (tree.root / "points").mkdir(exist_ok=True)
                np.savetxt(tree.root / lm_rel, points, fmt="%.3f")
            rows.append([rel, subject, grades[s_i % 4], "F" if s_i % 2 else "M", lm_rel])
            tree.labels[(subject, subject, f)] = [[0, 1, 2, 3][s_i % 4]]
            tree.landmarks[(subject, subject, f)] = points
    if bad:
        (tree.root / "points" / "bad.txt").write_text("1 2\n3 4\n")
        rows.append([f"frames/{subjects[0]}/000.png", subjects[0], "severe", "", ""])   # bad grade
        rows.append(["frames/none.png", subjects[0], "low", "", ""])                 # no image
        rows.append([f"frames/{subjects[1]}/000.png", "p99", "low", "", "points/bad.txt"])
        tree.expected_skips = {"bad_label_row": 1, "missing_image": 1, "bad_landmarks": 1}
    with open(tree.root / "labels.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return tree
