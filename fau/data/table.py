"""The prepared-dataset layout: the contract between `fau prepare` and every FAU model.

``fau prepare --dataset D --root RAW --out OUT`` writes (every file atomically)::

    OUT/
      dataset.json          metadata (below)
      table.csv             the tidy label table, one row per kept frame
      landmarks.npy         float32 (N, 49, 2): row i = table row i; 49-point layout
                            (`fau.face.points`), (x, y) pixel coordinates in the crop image;
                            all-NaN row = no landmarks (possible only with --no-align)
      crops/<subject>/<sequence>/<frame:05d>.jpg
                            aligned face crops, crop_size x crop_size (200) RGB JPEG
      folds/<part>.json     one file per fold, named by its test part (part1, part2, part3):
                            {"name", "train", "val", "test": subject lists,
                             "frames": {"train": n, "val": n, "test": n},
                             "class_weights": {"AU1": w, ...}   (or {"normal": w, ...} for grades),
                             "prior": A (C x C nested list; AU datasets only),
                             "prior_p": P (C x C), "prior_aus": ["AU1", ...]}
                            statistics use the fold's TRAINING subjects only (validation excluded)
      language.jsonl        AU datasets: line i = {"local": {"AU1": text|null, ...},
                            "global": text|null} for table row i (fau.language.targets)
      language_template.yaml  the exact template file the sentences came from
      pau.yaml              FPara only: the paralysis-AU centre definitions used
      summary.json          frame counts (labelled, selected, kept, resumed, retried), "skipped"
                            (dropped frames by reason), "warnings" (counted problems that kept the
                            frame, e.g. DISFA "filled_labels"), landmark sources
                            (file/detector/none), "frames_per_subject" ({subject: {"labels",
                            "images", "paired"}}: labelled frames, image files found, frames with
                            both), "frame_mismatch" (one line per subject whose labels and images
                            pair badly; empty when they agree), subjects in no fold, timing

``table.csv`` columns, in order: ``path`` (crop path relative to OUT, POSIX separators),
``subject``, ``sequence``, ``frame`` (int), ``gender`` (female|male|unknown), then the label
columns: ``AU<k>`` with 1 active, 0 inactive, -1 unknown (AU datasets), or ``grade`` with
0 normal, 1 low, 2 medium, 3 high (FPara). Rows are sorted by (subject, sequence, frame).

``dataset.json`` keys: ``format`` (``fau-prepared/1``), ``dataset``, ``task`` (``au`` or
``paralysis``), ``columns`` (label column names), ``aus`` (AU numbers; empty for paralysis),
``grades`` (paralysis only), ``synthetic`` (true for SynFACS), ``n_frames``, ``crop_size``, ``box_enlarge``, ``aligned`` (false
with --no-align: crops are the frames resized), ``landmark_points`` (49), ``folds``
(fold names), ``template_version`` (AU datasets), ``source_root``, ``raw_layout`` (how the
raw tree was read; BP4D: ``labels_dir``, ``frames_dir``; DISFA: ``frames_dir``, ``video_folders``
(e.g. ``["LeftVideo<SN>_comp"]``), ``frame_base`` (0 or 1: image ``n`` holds label frame
``n + 1 - frame_base``), ``frame_base_from`` (``auto: <evidence>`` or ``--frame-base N``),
``label_align`` (``au1`` or ``intersection``); see `fau.data.disfa`). The ``frame`` column of
``table.csv`` is always the LABEL file's frame number, whatever the image numbering.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from shared.errors import UserError
from shared.io import atomic_open, write_json, write_npy

FORMAT = "fau-prepared/1"
BASE_COLUMNS: tuple[str, ...] = ("path", "subject", "sequence", "frame", "gender")
TABLE_FILE = "table.csv"
LANDMARKS_FILE = "landmarks.npy"
META_FILE = "dataset.json"
LANGUAGE_FILE = "language.jsonl"
FOLDS_DIR = "folds"
CROPS_DIR = "crops"


def crop_relpath(subject: str, sequence: str, frame: int, ext: str = ".jpg") -> str:
    """Relative crop path of one frame: ``crops/<subject>/<sequence>/<frame:05d><ext>``."""
    return f"{CROPS_DIR}/{subject}/{sequence}/{frame:05d}{ext}"


def write_prepared(out: Path, meta: dict, table: pd.DataFrame, landmarks: np.ndarray) -> None:
    """Write ``table.csv``, ``landmarks.npy`` and ``dataset.json`` (the contract above)."""
    if len(table) != len(landmarks):
        raise ValueError(f"table has {len(table)} rows but landmarks {len(landmarks)}")
    with atomic_open(out / TABLE_FILE, "w", newline="", encoding="utf-8") as handle:
        table.to_csv(handle, index=False)
    write_npy(out / LANDMARKS_FILE, landmarks.astype(np.float32))
    write_json(out / META_FILE, {"format": FORMAT, **meta, "n_frames": len(table)})


@dataclass
class PreparedDataset:
    """A prepared dataset folder loaded back (see the module docstring for the files)."""

    root: Path
    meta: dict
    table: pd.DataFrame
    landmarks: np.ndarray

    @property
    def columns(self) -> list[str]:
        """Label column names (``AU1``, ... or ``grade``)."""
        return list(self.meta["columns"])

    def labels(self) -> np.ndarray:
        """int8 (N, C) label matrix in column order (-1 = unknown)."""
        return self.table[self.columns].to_numpy(dtype=np.int8)

    def image_path(self, row: int) -> Path:
        """Absolute path of the crop of table row `row`."""
        return self.root / self.table["path"].iat[row]

    def fold(self, name: str) -> dict:
        """The fold file ``folds/<name>.json`` (subjects, class weights, prior)."""
        path = self.root / FOLDS_DIR / f"{name}.json"
        if not path.is_file():
            raise UserError(f"{path}: no such fold (have {', '.join(self.meta.get('folds', []))})")
        return json.loads(path.read_text(encoding="utf-8"))

    def class_weights(self, fold: str) -> np.ndarray:
        """float32 (C,) training-subject class weights of `fold`, in column order (`fau.data.stats.class_weights`)."""
        weights = self.fold(fold)["class_weights"]
        if weights is None:
            raise UserError(f"{self.root}: fold {fold} has no training frames for class weights")
        return np.asarray(list(weights.values()), dtype=np.float32)

    def prior(self, fold: str) -> np.ndarray:
        """float32 (C, C) MGRR-Net co-occurrence prior A of `fold` (thesis eqs. 4.1–4.2)."""
        prior = self.fold(fold).get("prior")
        if prior is None:
            raise UserError(f"{self.root}: fold {fold} has no co-occurrence prior "
                            f"(paralysis task, or no training frames)")
        return np.asarray(prior, dtype=np.float32)

    def indices(self, fold: str, split: str) -> np.ndarray:
        """Row indices of the subjects of `split` (train|val|test) of fold `fold`."""
        if split not in ("train", "val", "test"):
            raise UserError(f"split must be train, val or test, got {split!r}")
        members = set(self.fold(fold)[split])
        return np.flatnonzero(self.table["subject"].isin(members).to_numpy())

    def language(self) -> list[dict]:
        """Per-row language targets from ``language.jsonl`` (AU datasets)."""
        path = self.root / LANGUAGE_FILE
        with open(path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle]


def load_prepared(path: str | Path) -> PreparedDataset:
    """Open a prepared dataset folder and check that its files agree with each other."""
    root = Path(path)
    meta_path = root / META_FILE
    if not meta_path.is_file():
        raise UserError(f"{root}: not a prepared dataset (no {META_FILE}; run `fau prepare`)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise UserError(f"{meta_path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    table = pd.read_csv(root / TABLE_FILE, dtype={"subject": str, "sequence": str, "path": str,
                                                  "gender": str})
    landmarks = np.load(root / LANDMARKS_FILE, allow_pickle=False)
    missing = [c for c in (*BASE_COLUMNS, *meta["columns"]) if c not in table.columns]
    if missing:
        raise UserError(f"{root / TABLE_FILE}: missing column {missing[0]}")
    if len(table) != meta["n_frames"] or landmarks.shape != (len(table), 49, 2):
        raise UserError(f"{root}: table ({len(table)} rows), landmarks {landmarks.shape} and "
                        f"dataset.json n_frames ({meta['n_frames']}) disagree")
    return PreparedDataset(root, meta, table, landmarks)
