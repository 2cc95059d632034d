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


SKIN = (200, 160, 140)


def draw_face(landmarks: np.ndarray, size: int = 160, seed: int = 0,
              skin: tuple[int, int, int] = SKIN) -> np.ndarray:
    """An RGB uint8 image of the landmark face (skin hull, dark brows, eyes and lips)."""
    import cv2

    rng = np.random.default_rng(seed)
    image = np.full((size, size, 3), 90, dtype=np.uint8)
    image += rng.integers(0, 20, size=image.shape, dtype=np.uint8)
    pts = np.round(landmarks).astype(np.int32)
    cv2.fillConvexPoly(image, cv2.convexHull(np.concatenate([pts[:17], pts[17:27]])), skin)
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
    expected_warnings: dict[str, int] = field(default_factory=dict)
    images: dict[tuple[str, str, int], Path] = field(default_factory=dict)   # label key -> image


def make_bp4d(root: Path, subjects=BP4D_SUBJECTS, tasks=("T1", "T2"), frames: int = 3,
              bad: bool = False, seed: int = 0, label_dir: str = "AUCoding/AU_OCC") -> Tree:
    """BP4D layout: AUCoding/AU_OCC CSVs with a 17-AU header (0/1/9), images/<s>/<t>/<0000>.jpg,
    landmarks/<s>_<t>.csv with 49 points (68-point files for the second task). `label_dir`
    moves the CSVs (``AUCoding``: the flat AU_R-CNN layout)."""
    rng = np.random.default_rng(seed)
    tree = Tree(Path(root))
    label_dir = tree.root / label_dir
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


#: which landmark files each DISFA fixture subject gets, cycled: release .mat, CSV, none
DISFA_LANDMARKS = ("mat", "csv", None)


def marker_skin(frame: int) -> tuple[int, int, int]:
    """Skin colour that identifies label frame `frame` (1-based): blue = 30 * frame."""
    return (215, 175, 30 * frame)


def marker_frame(crop: np.ndarray) -> int | None:
    """The label frame whose `marker_skin` fills the centre of an aligned crop, or None when the
    centre is not skin (e.g. the crop was aligned with another frame's landmarks)."""
    h, w = crop.shape[:2]
    patch = crop[h // 2 - 12:h // 2 + 12, w // 2 - 12:w // 2 + 12].reshape(-1, 3)
    red, _, blue = np.median(patch, axis=0)
    if red < 180:
        return None
    return int(round(blue / 30))


def make_disfa(root: Path, subjects=DISFA_SUBJECTS, frames: int = 4, bad: bool = False,
               seed: int = 1, frame_base: int = 1, frames_root: str = "Images_LeftCamera",
               video: str = "{sn}", name: str = "{n:04d}", ext: str = ".jpg",
               landmark_files=DISFA_LANDMARKS, marker: bool = False) -> Tree:
    """DISFA layout: ActionUnit_Labels/<SN>/<SN>_au<k>.txt (1-based label frames, intensity 0-5),
    frames at ``<frames_root>/<video>/<name><ext>`` where `video` and `name` are format strings
    (``{sn}`` subject, ``{video}`` the video folder name, ``{n}`` the image number = label frame
    - 1 + `frame_base`); landmarks by `landmark_files` per subject (cycled): release .mat (66
    points, both file names, numbered by LABEL frame), a per-subject 66-point CSV, or none.

    `marker`: each frame's face is drawn in `marker_skin` of its label frame and placed
    alternately left and right, so a crop identifies its frame and a crop aligned with the
    landmarks of a neighbouring frame misses the face (`marker_frame`).
    With ``bad=True``: an out-of-range and a garbage line in the first subject's AU1 file, its AU2
    file lacking the last frame (filled with 0 under the default AU1 alignment: its AU2 label in
    `Tree.labels` is 0) and a wrong-count landmark file (when that subject has .mat files)."""
    from scipy.io import savemat

    from fau.aus import DISFA_AUS

    rng = np.random.default_rng(seed)
    tree = Tree(Path(root))
    keep66 = [i for i in range(68) if i not in (60, 64)]
    size = 200 if marker else 160
    for s_i, subject in enumerate(subjects):
        lm_kind = landmark_files[s_i % len(landmark_files)]
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
        if bad and s_i == 0:
            intensities[frames - 1, 1] = 0                         # the AU1 rule fills it with 0
        folder = video.format(sn=subject)
        lm_rows = []
        for f in range(frames):
            number = f + 1                                         # the label frame
            if marker:
                centre = (60.0 if f % 2 == 0 else 140.0, 100.0)
                points = face68(centre=centre, roll=0.03 * f, scale=34)
                image = draw_face(points, size=size, seed=100 * s_i + f, skin=marker_skin(number))
            else:
                points = face68(roll=0.03 * f, scale=35 + 2 * s_i)
                image = draw_face(points, seed=100 * s_i + f)
            key = (subject, "left", number)
            tree.labels[key] = (intensities[f] >= 2).astype(int).tolist()
            tree.landmarks[key] = points
            stem = name.format(n=f + frame_base, sn=subject, video=folder)
            tree.images[key] = tree.root / frames_root / folder / f"{stem}{ext}"
            save_image(tree.images[key], image)
            if lm_kind == "mat":
                mat_dir = tree.root / "Landmark_Points" / subject / "tmp_frame_lm"
                mat_dir.mkdir(parents=True, exist_ok=True)
                lm_name = f"{subject}_{f:04d}_lm.mat" if f % 2 == 0 else f"l0{number:04d}_lm.mat"
                pts = points[keep66]
                if bad and s_i == 0 and f == frames - 2:
                    pts = pts[:60]                                 # wrong landmark count
                savemat(mat_dir / lm_name, {"pts": pts.astype(np.float64)})
            elif lm_kind == "csv":
                lm_rows.append([number, *np.round(points[keep66], 3).reshape(-1).tolist()])
        if lm_rows:
            path = tree.root / "Landmark_Points" / f"{subject}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(landmark_header(66))
                writer.writerows(lm_rows)
    genders = dict(zip(subjects, ("F", "m")))
    (tree.root / "gender.csv").write_text(
        "subject,gender\n" + "".join(f"{s},{g}\n" for s, g in genders.items()))
    if bad:
        tree.expected_skips = {"bad_label_row": 2}
        if landmark_files[0] == "mat":
            tree.expected_skips["bad_landmarks"] = 1
        tree.expected_warnings = {"filled_labels": 1}
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
