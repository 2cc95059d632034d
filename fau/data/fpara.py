"""Facial-paralysis data (FPara-style, private): a generic grade CSV and PAU centre definitions.

FPara itself is not public (an NHS dataset "with patient consent for research", thesis §3.3.1), so the
loader reads a generic layout.
``ROOT`` (what ``fau prepare --dataset fpara --root ROOT`` gets) is either the CSV file itself or a
folder holding ``labels.csv``::

    path,subject,grade[,sequence][,frame][,gender][,landmarks]
    videos/p01/0001.jpg,p01,normal,,,F,
    videos/p02/0001.jpg,p02,3,exercise1,1,,points/p02_0001.txt

* ``path``: image file, relative to the CSV's folder (or absolute). Missing image →
  counted as ``missing_image``.
* ``subject``: patient id (folds are subject-exclusive).
* ``grade``: the 4 paralysis grades of the thesis (Tab 3.1) as a name or number:
  ``normal``/0 (House-Brackmann 1), ``low``/1 (H-B 2), ``medium``/2 (H-B 3-4), ``high``/3
  (H-B 5-6); or an H-B score written ``hb1`` ... ``hb6``. Anything else → ``bad_label_row``.
* optional ``sequence`` (default: the subject), ``frame`` (default: the row's rank within its
  sequence, from 0), ``gender`` (F/M, default unknown), ``landmarks`` (a per-frame point file,
  relative to the CSV's folder: ``.npy`` (K, 2) or text of K lines ``x y``/``x,y``, K = 49/66/68;
  a wrong count or unreadable file → ``bad_landmarks``; empty = detect at prepare time).
* A missing required column is a `UserError`; a row with too few fields is ``bad_label_row``; a
  repeated (subject, sequence, frame) is ``duplicate_frame``.

Folds: FPara has no published partition; ``ROOT``'s folder may hold a ``folds.yaml``
(`fau.data.folds` format), else `fau.data.folds.split_subjects` deals subjects into 3 parts.

Paralysis-AU (PAU) centres: a YAML (default ``fau/data/fpara_paus.yaml``; format documented there)
of two-sided centres from 49-point landmarks; `pau_centres` evaluates them.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fau.data.raw import RawDataset, RawFrame, gender_from_code, read_point_file
from fau.data.yamlfile import read_yaml
from shared.errors import UserError

GRADES: tuple[str, ...] = ("normal", "low", "medium", "high")
HB_TO_GRADE: dict[int, int] = {1: 0, 2: 1, 3: 2, 4: 2, 5: 3, 6: 3}
REQUIRED_COLUMNS: tuple[str, ...] = ("path", "subject", "grade")
DEFAULT_PAUS = Path(__file__).resolve().parent / "fpara_paus.yaml"
CSV_NAME = "labels.csv"


def parse_grade(text: str) -> int:
    """Grade index 0-3 from a name, a number 0-3 or ``hb1``-``hb6`` (House–Brackmann 1 → normal, 2 → low,
    3–4 → medium, 5–6 → high: thesis §3.3.1, Tab 3.1)."""
    value = text.strip().lower()
    if value in GRADES:
        return GRADES.index(value)
    if value.startswith("hb") and value[2:].isdigit() and int(value[2:]) in HB_TO_GRADE:
        return HB_TO_GRADE[int(value[2:])]
    if value.isdigit() and int(value) < len(GRADES):
        return int(value)
    raise ValueError(f"unknown grade {text!r}")


def _csv_path(root: Path) -> Path:
    path = root / CSV_NAME if root.is_dir() else root
    if not path.is_file():
        raise UserError(f"{path}: FPara label CSV not found (give the CSV or a folder with {CSV_NAME})")
    return path


def load_fpara(root: str | Path) -> RawDataset:
    """Load a grade CSV (module docstring) into a `RawDataset` with one ``grade`` column."""
    csv_path = _csv_path(Path(root))
    base = csv_path.parent
    skips: Counter = Counter()
    frames: list[RawFrame] = []
    counters: Counter = Counter()
    seen: set[tuple[str, str, int]] = set()
    with open(csv_path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in fields]
        if missing:
            raise UserError(f"{csv_path}: missing column {missing[0]!r} (need path,subject,grade)")
        for row in reader:
            try:
                if None in row.values() or not row["path"] or not row["subject"]:
                    raise ValueError("missing field")
                grade = parse_grade(row["grade"])
                subject = row["subject"].strip()
                sequence = (row.get("sequence") or "").strip() or subject
                frame_text = (row.get("frame") or "").strip()
                frame = int(frame_text) if frame_text else counters[(subject, sequence)]
            except ValueError:
                skips["bad_label_row"] += 1
                continue
            counters[(subject, sequence)] += 1
            if (subject, sequence, frame) in seen:
                skips["duplicate_frame"] += 1
                continue
            seen.add((subject, sequence, frame))
            image = base / row["path"].strip()
            if not image.is_file():
                skips["missing_image"] += 1
                continue
            landmarks = None
            lm_text = (row.get("landmarks") or "").strip()
            if lm_text:
                try:
                    landmarks = read_point_file(base / lm_text)
                except (OSError, ValueError):
                    skips["bad_landmarks"] += 1
                    continue
            frames.append(RawFrame(subject, sequence, frame, image,
                                   np.array([grade], dtype=np.int8), landmarks,
                                   gender_from_code(row.get("gender") or "")))
    frames.sort(key=lambda f: (f.subject, f.sequence, f.frame))
    return RawDataset("fpara", ("grade",), (), frames, skips)


@dataclass(frozen=True)
class PAUDefinitions:
    """Two-sided paralysis-AU centres: per PAU two (landmark indices, dx, dy) in ruler units."""

    version: str
    names: tuple[str, ...]
    landmarks: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]
    offsets: np.ndarray            # float32 (P, 2, 2): (dx, dy) per PAU and side, in ruler units
    ruler: tuple[int, int]
    path: Path


def _centre(entry: object, where: str) -> tuple[tuple[int, ...], float, float]:
    if not isinstance(entry, dict) or "landmark" not in entry:
        raise UserError(f"{where} must be a mapping with 'landmark' (and optional dx, dy)")
    raw = entry["landmark"]
    points = tuple(raw) if isinstance(raw, list) else (raw,)
    if not points or not all(isinstance(p, int) and 0 <= p < 49 for p in points):
        raise UserError(f"{where}.landmark must be 49-point indices 0-48")
    try:
        return points, float(entry.get("dx", 0.0)), float(entry.get("dy", 0.0))
    except (TypeError, ValueError) as err:
        raise UserError(f"{where}: dx and dy must be numbers") from err


def load_pau_definitions(path: str | Path | None = None) -> PAUDefinitions:
    """Read and validate a PAU centre YAML (format in ``fau/data/fpara_paus.yaml``)."""
    path = Path(path) if path is not None else DEFAULT_PAUS
    data = read_yaml(path, "PAU definition file")
    if not isinstance(data, dict) or not isinstance(data.get("paus"), dict) or not data["paus"]:
        raise UserError(f"{path}: needs a non-empty 'paus' mapping")
    ruler = data.get("ruler", [22, 25])
    if (not isinstance(ruler, list) or len(ruler) != 2
            or not all(isinstance(r, int) and 0 <= r < 49 for r in ruler)):
        raise UserError(f"{path}: 'ruler' must be two 49-point indices")
    names, points, offsets = [], [], []
    for name, spec in data["paus"].items():
        centres = spec.get("centres") if isinstance(spec, dict) else None
        if not isinstance(centres, list) or len(centres) != 2:
            raise UserError(f"{path}: paus.{name}.centres must list exactly two centres")
        parsed = [_centre(c, f"{path}: paus.{name}.centres[{i}]") for i, c in enumerate(centres)]
        names.append(str(name))
        points.append((parsed[0][0], parsed[1][0]))
        offsets.append([[c[1], c[2]] for c in parsed])
    return PAUDefinitions(str(data.get("version", path.stem)), tuple(names), tuple(points),
                          np.asarray(offsets, dtype=np.float32), (ruler[0], ruler[1]), path)


def pau_centres(landmarks49: np.ndarray, defs: PAUDefinitions) -> np.ndarray:
    """PAU centres (N, P, 2, 2) from (N, 49, 2) landmarks: mean of each centre's landmarks plus
    (dx, dy) * ruler, ruler = |x[a] - x[b]| (the JAA-Net rule's ruler, `fau.aus.RULER_POINTS`)."""
    pts = np.asarray(landmarks49, dtype=np.float32)
    ruler = np.abs(pts[:, defs.ruler[0], 0] - pts[:, defs.ruler[1], 0])
    base = np.stack([np.stack([pts[:, list(idx), :].mean(axis=1) for idx in pair], axis=1)
                     for pair in defs.landmarks], axis=1)
    return base + defs.offsets[None] * ruler[:, None, None, None]
