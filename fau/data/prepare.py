"""`fau prepare`: raw dataset tree -> prepared dataset (layout in `fau.data.table`).

Steps: parse the labels with the dataset's loader (`fau.data.bp4d`, `fau.data.disfa`,
`fau.data.fpara`); align every frame with the JAA-Net similarity transform (`fau.face.align`)
from its landmark file, or from dlib detection + 68 landmarks when it has none; write the crops,
the tidy table with 49-point crop landmarks, one fold file per test part with the training-subject
class weights and co-occurrence prior (`fau.data.stats`; thesis eqs. 3.2, 4.1–4.2), the VL-FAU
language targets (`fau.language.targets`), and a
summary of the frames skipped and why.

Resumable: every processed frame is appended to ``OUT/.prepare_journal.jsonl`` right after its
crop is written, with the identity of its input: the image path (relative to the raw root), the
image file's size and modification time (nanoseconds) and a hash of the frame's raw landmarks. A
rerun with the same options reuses a journalled frame (its crop, or its skip) only when that
identity is unchanged and, for a kept frame, its crop exists; a frame whose image or landmarks
changed (a repaired file, another frame numbering pairing the label with another image) is done
again and counted in ``frames_retried``. Size + mtime rather than a content hash: a rerun must
not read every image of a 130k-frame dataset just to find the few that changed. Changing an
option that affects the crops (size, box_enlarge, alignment, dataset, AU set) starts a fresh
journal; ``fresh=True`` (``fau prepare --fresh``) starts one regardless, so every frame is read,
detected and aligned again (crops are overwritten in place).

``workers=N`` (``fau prepare --workers N``) runs detection and alignment in N processes; the crops,
table and journal are byte-identical to one process's, and resuming works the same.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from fau.aus import BP4D_AUS, DISFA_AUS
from fau.data import folds as folds_mod
from fau.data.bp4d import FRAMES_DIR as BP4D_FRAMES_DIR
from fau.data.bp4d import load_bp4d
from fau.data.disfa import load_disfa
from fau.data.fpara import GRADES, load_fpara, load_pau_definitions
from fau.data.raw import WARNING_REASONS, RawDataset, RawFrame
from fau.data.stats import class_weights, conditional_agreement, cooccurrence_prior, grade_weights
from fau.data.table import BASE_COLUMNS, FOLDS_DIR, LANGUAGE_FILE, crop_relpath, write_prepared
from fau.face.frames import FrameAligner, align_in_worker, start_worker
from fau.language.targets import Template, build_targets, load_template
from shared.errors import UserError
from shared.io import atomic_open, atomic_path, write_json

DATASETS: tuple[str, ...] = ("bp4d", "disfa", "fpara")
DEFAULT_AUS: dict[str, tuple[int, ...]] = {"bp4d": BP4D_AUS, "disfa": DISFA_AUS}
JOURNAL = ".prepare_journal.jsonl"
JPEG_QUALITY = 95


#: file a SynFACS raw tree carries; its prepared data is marked synthetic (no paper comparison)
SYNTHETIC_MARKER = "synfacs_truth.json"


def load_raw(dataset: str, root: Path, aus: Sequence[int] | None,
             gender_csv: Path | None = None, frames_dir: str | None = None,
             frame_base: int | None = None, label_align: str | None = None) -> RawDataset:
    """Run the loader of `dataset` on `root` (`aus` None = every AU column, BP4D layout only;
    `frames_dir` renames the frame folder of the BP4D/DISFA layouts; `frame_base` (None = detect)
    and `label_align` (None = ``au1``) are DISFA's, `fau.data.disfa`)."""
    if dataset != "disfa" and (frame_base is not None or label_align is not None):
        raise UserError("--frame-base and --label-align are for --dataset disfa only")
    if dataset == "bp4d":
        return load_bp4d(root, aus=aus, frames_dir=frames_dir or BP4D_FRAMES_DIR)
    if dataset == "disfa":
        if aus is None:
            raise UserError("--aus all is only for the BP4D layout; DISFA needs an explicit AU list")
        return load_disfa(root, aus=aus, gender_csv=gender_csv, frames_dir=frames_dir,
                          frame_base=frame_base, label_align=label_align or "au1")
    if dataset == "fpara":
        return load_fpara(root)
    raise UserError(f"unknown dataset {dataset!r} (choose from {', '.join(DATASETS)})")


def select_frames(frames: list[RawFrame], limit: int | None) -> list[RawFrame]:
    """`limit` frames evenly spaced over the sorted list (so every subject can appear), or all."""
    if limit is None or limit >= len(frames):
        return frames
    if limit < 1:
        raise UserError(f"--limit must be at least 1, got {limit}")
    picks = np.unique(np.linspace(0, len(frames) - 1, limit).round().astype(int))
    return [frames[i] for i in picks]


def fold_spec(dataset: str, root: Path, subjects: set[str],
              folds_file: Path | None) -> tuple[folds_mod.FoldSpec, str]:
    """Fold source, first found: `folds_file`, ``ROOT/folds.yaml``, the shipped published list
    (bp4d/disfa, when it names at least one subject present), else a seeded 3-way subject split."""
    base = root if root.is_dir() else root.parent
    if folds_file is not None:
        if not folds_file.is_file():
            raise UserError(f"{folds_file}: fold file not found")
        return folds_mod.load_fold_spec(folds_file), str(folds_file)
    if (base / "folds.yaml").is_file():
        return folds_mod.load_fold_spec(base / "folds.yaml"), str(base / "folds.yaml")
    if dataset in ("bp4d", "disfa"):
        spec = folds_mod.shipped_fold_spec(dataset)
        if spec.subjects() & subjects:
            return spec, f"published {dataset} lists (fau/data/folds/{dataset}.yaml)"
    parts = folds_mod.split_subjects(sorted(subjects))
    return folds_mod.spec_from_parts(dataset, parts), "generated (seeded subject split)"


class Journal:
    """Append-only record of processed frames (module docstring); a torn last line is ignored."""

    def __init__(self, path: Path, options: dict, fresh: bool = False) -> None:
        self.path = path
        self.entries: dict[str, dict] = {}
        header = {"options": options}
        if path.is_file() and not fresh:
            lines = path.read_text(encoding="utf-8").splitlines()
            if lines and _loads(lines[0]) == header:
                for line in lines[1:]:
                    entry = _loads(line)
                    if entry is not None:
                        self.entries[entry["key"]] = entry
        if not self.entries:
            with atomic_open(path, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(header) + "\n")
        self.handle = open(path, "a", encoding="utf-8")

    def add(self, entry: dict) -> None:
        """Record one processed frame (flushed at once, so a crash loses at most this line)."""
        self.entries[entry["key"]] = entry
        self.handle.write(json.dumps(entry) + "\n")
        self.handle.flush()

    def close(self) -> None:
        """Close the journal file."""
        self.handle.close()


def _loads(line: str) -> dict | None:
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


def _write_jpeg(path: Path, image: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="JPEG", quality=JPEG_QUALITY)


def input_identity(frame: RawFrame, root: Path) -> dict:
    """What a journalled frame was made from (module docstring): image path relative to `root`,
    its size and mtime in nanoseconds, and a hash of the raw landmarks (None without)."""
    try:
        image = frame.image.relative_to(root).as_posix()
    except ValueError:
        image = str(frame.image)
    try:
        stat = frame.image.stat()
        size, mtime = stat.st_size, stat.st_mtime_ns
    except OSError:
        size = mtime = None
    points = None
    if frame.landmarks is not None:
        data = np.ascontiguousarray(frame.landmarks, dtype=np.float32).tobytes()
        points = hashlib.sha1(data).hexdigest()[:16]
    return {"image": image, "size": size, "mtime_ns": mtime, "landmarks": points}


@contextlib.contextmanager
def aligned_results(todo: list[RawFrame], aligner: FrameAligner, workers: int) -> Iterator[Iterator]:
    """`aligner` applied to `todo`, in order: here, or in `workers` processes (``spawn``: no state shared
    with the parent's thread pools; they import only `fau.face.frames`) that each load the detector once;
    the pool ends with the block."""
    if workers <= 1 or len(todo) < 2:
        yield (aligner(frame) for frame in todo)
        return
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    pool = context.Pool(min(workers, len(todo)), initializer=start_worker,
                        initargs=(aligner.align, aligner.size, aligner.box_enlarge))
    try:
        # small chunks keep the processes busy to the end and the results arriving in order
        yield pool.imap(align_in_worker, todo, chunksize=max(1, min(8, len(todo) // (4 * workers))))
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def process_frames(frames: list[RawFrame], root: Path, out: Path, aligner: FrameAligner,
                   journal: Journal, progress: bool, workers: int = 1) -> Iterator[tuple[RawFrame, dict]]:
    """Yield (frame, journal entry) for every frame in order, reusing journalled work whose input is
    unchanged (module docstring); a redone journalled frame's entry has ``"retried": True``.

    With `workers` > 1 the detection and alignment of the frames to do run in that many processes;
    crops are written and journalled here, in frame order, so the outputs and the journal are the
    bytes one process writes.
    """
    plan = []
    for frame in frames:
        identity = input_identity(frame, root)
        entry = journal.entries.get(frame.key)
        reuse = (entry is not None and entry.get("input") == identity
                 and (entry["status"] == "skip" or (out / entry["path"]).is_file()))
        plan.append((frame, identity, entry, reuse))
    todo = [frame for frame, _, _, reuse in plan if not reuse]
    with aligned_results(todo, aligner, workers) as results:
        for frame, identity, entry, reuse in tqdm(plan, desc="prepare", unit="frame", disable=not progress):
            if reuse:
                yield frame, {**entry, "resumed": True}
                continue
            retried = entry is not None
            result = next(results)
            if isinstance(result, str):
                entry = {"key": frame.key, "status": "skip", "reason": result, "input": identity}
            else:
                crop, landmarks, source = result
                rel = crop_relpath(frame.subject, frame.sequence, frame.frame)
                _write_jpeg(out / rel, crop)
                entry = {"key": frame.key, "status": "ok", "path": rel, "source": source,
                         "landmarks": np.round(landmarks.astype(np.float64), 3).tolist(),
                         "input": identity}
            journal.add(entry)
            yield frame, {**entry, "retried": retried}


def _fold_statistics(fold: folds_mod.Fold, table: pd.DataFrame, raw: RawDataset) -> dict:
    """Fold file content: subjects, frame counts, training-subject weights and prior."""
    split = table["subject"].map(fold.split_of)
    train = table[split == "train"]
    record = {**fold.to_dict(),
              "frames": {s: int((split == s).sum()) for s in ("train", "val", "test")}}
    if raw.aus:
        labels = train[list(raw.columns)].to_numpy(dtype=np.int8)
        known = bool(len(labels)) and bool((labels >= 0).any())
        record["class_weights"] = (dict(zip(raw.columns, class_weights(labels).round(6).tolist()))
                                   if known else None)
        record["prior_aus"] = list(raw.columns)
        record["prior"] = cooccurrence_prior(labels).round(6).tolist() if known else None
        record["prior_p"] = conditional_agreement(labels).round(6).tolist() if known else None
    else:
        grades = train["grade"].to_numpy()
        weights = grade_weights(grades, len(GRADES)).round(6).tolist() if len(grades) else None
        record["class_weights"] = dict(zip(GRADES, weights)) if weights else None
    return record


def prepare(
    dataset: str,
    root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    aus: Sequence[int] | None | str = "default",
    limit: int | None = None,
    align: bool = True,
    size: int = 200,
    box_enlarge: float = 2.9,
    template: str | os.PathLike | None = None,
    gender_csv: str | os.PathLike | None = None,
    pau_yaml: str | os.PathLike | None = None,
    folds_file: str | os.PathLike | None = None,
    frames_dir: str | None = None,
    frame_base: int | str | None = None,
    label_align: str | None = None,
    fresh: bool = False,
    progress: bool = True,
    workers: int = 1,
) -> dict:
    """Prepare `dataset` from the raw tree `root` into `out` (layout: `fau.data.table`).

    `aus`: ``"default"`` (the dataset's evaluated AUs), None (BP4D layout: every AU column present,
    e.g. SynFACS's 15) or an explicit AU list. `limit` keeps that many frames, evenly spaced.
    `align=False` writes the frames resized to `size` (for already aligned faces). `frames_dir`
    replaces the layout's frame folder name (``images`` / ``Images_LeftCamera``). DISFA only:
    `frame_base` 0, 1 or None/``"auto"`` (detect) and `label_align` ``au1`` (default) or
    ``intersection`` (`fau.data.disfa`). `fresh` ignores the journal of an earlier run (module
    docstring). `workers` processes detect and align (same bytes as one). Returns the summary that is also written to ``out/summary.json``.
    """
    start = time.time()
    root, out = Path(root), Path(out)
    if not root.exists():
        raise UserError(f"{root}: raw dataset root not found")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    if size < 16:
        raise UserError(f"--size must be at least 16, got {size}")
    if not (np.isfinite(box_enlarge) and box_enlarge > 0):
        raise UserError(f"--box-enlarge must be a positive number, got {box_enlarge}")
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1, got {limit}")
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r} (choose from {', '.join(DATASETS)})")
    chosen = DEFAULT_AUS.get(dataset) if aus == "default" else aus
    raw = load_raw(dataset, root, chosen, Path(gender_csv) if gender_csv else None, frames_dir,
                   None if frame_base == "auto" else frame_base, label_align)
    if not raw.frames:
        raise UserError(f"{root}: no usable frames (skipped: {dict(raw.skips) or 'none'})")
    frames = select_frames(raw.frames, limit)
    lang_template = load_template(template) if raw.aus else None
    pau_defs = load_pau_definitions(pau_yaml) if dataset == "fpara" else None
    spec, fold_source = fold_spec(dataset, root, {f.subject for f in raw.frames},
                                  Path(folds_file) if folds_file else None)

    out.mkdir(parents=True, exist_ok=True)
    options = {"dataset": dataset, "columns": list(raw.columns), "align": align, "size": size,
               "box_enlarge": box_enlarge, "root": str(root.resolve())}
    journal = Journal(out / JOURNAL, options, fresh=fresh)
    skips: Counter = Counter({k: n for k, n in raw.skips.items() if k not in WARNING_REASONS})
    sources: Counter = Counter()
    rows, landmarks, resumed, retried = [], [], 0, 0
    try:
        for frame, entry in process_frames(frames, root, out,
                                           FrameAligner(align, size, box_enlarge), journal,
                                           progress, workers):
            resumed += bool(entry.get("resumed"))
            retried += bool(entry.get("retried"))
            if entry["status"] == "skip":
                skips[entry["reason"]] += 1
                continue
            sources[entry["source"]] += 1
            rows.append([entry["path"], frame.subject, frame.sequence, frame.frame, frame.gender,
                         *frame.labels.tolist()])
            landmarks.append(np.asarray(entry["landmarks"], dtype=np.float32))
    finally:
        journal.close()
    if not rows:
        raise UserError(f"{root}: every frame was skipped ({dict(skips)})")
    table = pd.DataFrame(rows, columns=[*BASE_COLUMNS, *raw.columns])
    lm = np.stack(landmarks).astype(np.float32)

    folds = spec.folds()
    for fold in folds:
        write_json(out / FOLDS_DIR / f"{fold.name}.json",
                   _fold_statistics(fold, table, raw))
    meta = {"dataset": dataset, "task": "au" if raw.aus else "paralysis",
            "columns": list(raw.columns), "aus": list(raw.aus), "crop_size": size,
            "box_enlarge": box_enlarge, "aligned": align, "landmark_points": 49,
            "folds": [f.name for f in folds], "fold_source": fold_source,
            "source_root": str(root.resolve()), "raw_layout": raw.layout,
            "synthetic": (root / SYNTHETIC_MARKER).is_file()}
    summary_extra: dict = {}
    if lang_template is not None:
        summary_extra = _write_language(out, table, raw, lang_template)
        meta["template_version"] = lang_template.version
    if pau_defs is not None:
        meta["grades"] = list(GRADES)
        meta["pau_version"] = pau_defs.version
        with atomic_path(out / "pau.yaml") as tmp:
            shutil.copyfile(pau_defs.path, tmp)
    write_prepared(out, meta, table, lm)

    in_folds = spec.subjects()
    summary = {
        "dataset": dataset,
        "frames_labelled": len(raw.frames) + raw.dropped(),
        "frames_selected": len(frames),
        "frames_kept": len(table),
        "frames_resumed": resumed,
        "frames_retried": retried,
        "skipped": dict(sorted(skips.items())),
        "warnings": {k: n for k, n in sorted(raw.skips.items()) if k in WARNING_REASONS},
        "landmark_source": dict(sorted(sources.items())),
        "raw_layout": raw.layout,
        "frames_per_subject": raw.per_subject,
        "frame_mismatch": list(raw.messages),
        "subjects": int(table["subject"].nunique()),
        "subjects_without_fold": sorted(set(table["subject"]) - in_folds),
        "fold_source": fold_source,
        **summary_extra,
        "seconds": round(time.time() - start, 2),
    }
    write_json(out / "summary.json", summary)
    return summary


def _write_language(out: Path, table: pd.DataFrame, raw: RawDataset, template: Template) -> dict:
    """Write ``language.jsonl`` + the template copy; AUs the template lacks get no sentences."""
    covered = [a for a in raw.aus if a in template.aus]
    columns = [f"AU{a}" for a in covered]
    targets = build_targets(table[columns].to_numpy(dtype=np.int8), covered,
                            table["gender"].tolist(), template)
    with atomic_open(out / LANGUAGE_FILE, "w", encoding="utf-8") as handle:
        for target in targets:
            handle.write(json.dumps(target, ensure_ascii=False) + "\n")
    with atomic_path(out / "language_template.yaml") as tmp:
        shutil.copyfile(template.path, tmp)
    return {"language_aus_without_template": [f"AU{a}" for a in raw.aus if a not in template.aus]}
