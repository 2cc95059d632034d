"""Predict AUs (probabilities, active AUs, explanations) for every face of photos or folders.

``fau predict photo.jpg photos/ --checkpoint runs/algrnet/best.safetensors --json out.json --csv out.csv
--overlay out/overlays`` reads the files given and every image under the folders given (recursively,
sorted), and writes one record per image (the JSON schema of `fau.predict`; ``.jsonl`` writes JSON
Lines), one CSV row per face, and with ``--overlay`` one PNG per face (`fau.predict_overlay`) showing
the model's own attention maps (``model.explain``; a model that does not explain is refused by name).
Without --json/--csv the records are printed as JSON Lines.

A missing, unreadable, truncated or non-image file is reported on stderr and as an ``error``
record, and the batch goes on; the exit status is 1 if any file failed. A photo without a face
gives an empty face list (a note on stderr, not a failure).

Resume: each finished image is appended to ``.<OUT>.journal.jsonl`` beside the first output, with
the run's settings in its first line. A rerun with the same settings skips the images journalled
without error (failed ones are retried); ``--overwrite`` starts afresh. The outputs are written
atomically from all records at the end. An interrupted run writes what it finished only into an
output that does not exist yet or that an interrupted run of the same journal wrote: a finished
output of an earlier run (other settings, other images) stays as it was until a complete new one
replaces it. Overlays are drawn into ``DIR/.pending/`` and moved into DIR when the run completes,
for the same reason.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

HELP = "AU probabilities and explanations for every face of photos or folders"

#: file name endings read when walking a folder (an explicit file argument is tried whatever its name)
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files and/or folders (searched recursively)")
    parser.add_argument("--checkpoint", required=True, help="model checkpoint (.safetensors with its .json)")
    parser.add_argument("--json", default=None, help="write the records here (.json list, or .jsonl lines)")
    parser.add_argument("--csv", default=None, help="write one row per face here")
    parser.add_argument("--overlay", default=None, metavar="DIR", help="write one PNG per face into DIR")
    parser.add_argument("--device", default="auto", help="auto (cuda → cpu), cpu, cuda, cuda:N")
    parser.add_argument("--threshold", default=None, metavar="FILE",
                        help="per-AU thresholds, YAML/JSON {AU12: 0.4, ...} (unlisted AUs: 0.5)")
    parser.add_argument("--explanation", default="both", choices=("generated", "template", "both"),
                        help="generated text (VL-FAU), the template text of the predicted state, or both")
    parser.add_argument("--template", default=None, help="description template YAML (default facs_v1)")
    parser.add_argument("--decoding", default="greedy", choices=("greedy", "beam"), help="text decoding (VL-FAU)")
    parser.add_argument("--min-score", type=float, default=None,
                        help="dlib face score threshold (default 0.1; 0 = dlib's own)")
    parser.add_argument("--aligned", action="store_true", help="inputs are already aligned face crops")
    parser.add_argument("--batch-size", type=int, default=32, help="images read per step (faces per forward)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per forward (default: 1 for up to 4 faces, torch's setting above)")
    parser.add_argument("--overwrite", action="store_true", help="ignore an earlier run's journal (no resume)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def find_images(paths: Sequence[str]) -> list[str]:
    """Files given, plus image files under the folders given (recursively, sorted, hidden ones left out).

    A missing path is kept: reading it gives its per-file error.
    """
    found: list[str] = []
    for path in paths:
        if not Path(path).is_dir():
            found.append(path)
            continue
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found.extend(os.path.join(root, name) for name in sorted(files)
                         if not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES))
    return list(dict.fromkeys(found))


def _key(path: str) -> str:
    return os.path.abspath(path)


class Journal:
    """Finished records of earlier runs with the same settings, and an append handle for new ones.

    `partial` holds the output files an interrupted run of this journal wrote (a ``{"partial": [...]}``
    line, the last one counts): only those, or absent files, may take a later interrupted run's records.
    """

    def __init__(self, path: Path, settings: dict[str, Any], fresh: bool) -> None:
        self.path, self.done, self.discarded = path, {}, False
        self.partial: list[str] = []
        if path.is_file() and not fresh:
            lines = path.read_text(encoding="utf-8").splitlines()
            if lines and self._parse(lines[0]) == {"settings": settings}:
                for line in lines[1:]:
                    record = self._parse(line)
                    if isinstance(record, dict) and "image" in record:
                        self.done[_key(record["image"])] = record
                    elif isinstance(record, dict) and isinstance(record.get("partial"), list):
                        self.partial = [str(p) for p in record["partial"]]
            else:
                self.discarded = True
        path.parent.mkdir(parents=True, exist_ok=True)
        keep = [json.dumps({"settings": settings})] + [json.dumps(r) for r in self.done.values()]
        keep += [json.dumps({"partial": self.partial})] if self.partial else []
        from shared.io import atomic_open

        with atomic_open(path, "w", encoding="utf-8") as handle:
            handle.write("\n".join(keep) + "\n")
        self.handle = open(path, "a", encoding="utf-8")

    @staticmethod
    def _parse(line: str) -> Any:
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            return None  # a line cut short by an interrupted run

    def finished(self, path: str) -> bool:
        """Whether `path` has a record without error."""
        record = self.done.get(_key(path))
        return record is not None and "error" not in record

    def add(self, record: dict[str, Any]) -> None:
        """Journal one finished image (flushed at once, so an interruption loses nothing)."""
        self.done[_key(record["image"])] = record
        self.handle.write(json.dumps(record) + "\n")
        self.handle.flush()

    def mark_partial(self, paths: Sequence[str]) -> None:
        """Record which output files now hold an interrupted run's records ([] after a complete run)."""
        self.partial = [os.path.abspath(p) for p in paths]
        self.handle.write(json.dumps({"partial": self.partial}) + "\n")
        self.handle.flush()

    def may_replace(self, path: str) -> bool:
        """Whether an interrupted run may write `path`: absent, or written by an interrupted run of this journal."""
        return not os.path.lexists(path) or os.path.abspath(path) in self.partial

    def close(self) -> None:
        """Close the append handle."""
        self.handle.close()


def overlay_name(image: str, face: int) -> str:
    """``sub__dir__photo.jpg.face0.png``: the image path flattened, so names never collide."""
    flat = "__".join(part for part in Path(os.path.normpath(image)).parts if part not in ("/", ".."))
    return f"{flat}.face{face}.png"


def csv_rows(records: Iterable[dict[str, Any]], labels: Sequence[str], kind: str = "active") -> Iterable[list[Any]]:
    """One row per face (an image without faces or with an error gives one row with no face); `kind`
    ``grade`` for a paralysis checkpoint (a probability per grade and the predicted grade)."""
    yield ["image", "face", "x0", "y0", "x1", "y1", "score", *labels, kind, "global_description",
           "template_global", "error"]
    for record in records:
        if not record["faces"]:
            yield [record["image"], "", "", "", "", "", "", *([""] * len(labels)), "", "", "", record.get("error", "")]
        for index, face in enumerate(record["faces"]):
            generated = (face.get("description") or {}).get("global", "")
            template = (face.get("template_description") or {}).get("global", "")
            values = face["grades"] if "grades" in face else face["aus"]
            label = face["grade"] if "grades" in face else " ".join(face["active"])
            yield [record["image"], index, *face["box"], face["score"] if face["score"] is not None else "",
                   *(values[n] for n in labels), label, generated, template, ""]


def write_outputs(records: list[dict[str, Any]], labels: Sequence[str], json_path: str | None,
                  csv_path: str | None) -> None:
    """Write the records as JSON (list, or lines for .jsonl) and CSV, each atomically."""
    import csv

    from shared.io import atomic_open, write_json

    if json_path:
        if json_path.endswith(".jsonl"):
            with atomic_open(json_path, "w", encoding="utf-8") as handle:
                handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        else:
            write_json(json_path, records)
    if csv_path:
        with atomic_open(csv_path, "w", newline="", encoding="utf-8") as handle:
            grades = any("grades" in face for record in records for face in record["faces"])
            csv.writer(handle).writerows(csv_rows(records, labels, "grade" if grades else "active"))


class Overlays:
    """Overlay PNGs drawn into ``DIR/.pending/`` and moved into DIR only when the run completes, so an
    interrupted run never replaces the overlays of an earlier finished one (module docstring)."""

    PENDING = ".pending"

    def __init__(self, folder: str, resume: bool) -> None:
        import shutil

        self.folder = Path(folder)
        self.pending = self.folder / self.PENDING
        if not resume and self.pending.is_dir():
            shutil.rmtree(self.pending)   # unfinished overlays of another run: never a finished output
        self.pending.mkdir(parents=True, exist_ok=True)

    def path(self, image: str, face: int) -> tuple[Path, Path]:
        """(where to draw it now, where it ends up)."""
        name = overlay_name(image, face)
        return self.pending / name, self.folder / name

    def publish(self) -> None:
        """Move every drawn overlay into the folder (each an atomic rename) and drop the pending folder."""
        for path in sorted(self.pending.iterdir()):
            os.replace(path, self.folder / path.name)
        self.pending.rmdir()


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    checkpoint = Path(args.checkpoint).resolve()
    stat = checkpoint.stat() if checkpoint.is_file() else None
    return {"checkpoint": str(checkpoint), "checkpoint_mtime": stat.st_mtime if stat else None,
            "threshold": str(Path(args.threshold).resolve()) if args.threshold else None,
            "explanation": args.explanation, "template": args.template, "decoding": args.decoding,
            "aligned": args.aligned, "min_score": args.min_score}


def _report(record: dict[str, Any], write: Any) -> bool:
    """Print a failed or face-less image on stderr; True if it failed."""
    if "error" in record:
        write(f"fau predict: error: {record['error']}")
        return True
    if not record["faces"]:
        write(f"fau predict: {record['image']}: no face found")
    return False


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from fau.predict import MIN_SCORE, load
    from fau.predict_overlay import draw_prediction_overlay
    from shared.errors import UserError
    from shared.io import check_output

    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    check_output(args.json, "--json")
    check_output(args.csv, "--csv")
    if args.overlay:
        check_output(args.overlay, "--overlay", folder=True)
    predictor = load(args.checkpoint, args.device, thresholds=args.threshold, explanation=args.explanation,
                     explain=bool(args.overlay),
                     template=args.template, decoding=args.decoding, batch_size=args.batch_size,
                     min_score=MIN_SCORE if args.min_score is None else args.min_score, threads=args.threads)
    images = find_images(args.paths)
    if not images:
        raise UserError(f"no image files found in {', '.join(args.paths)}")
    first_output = args.json or args.csv
    journal = None
    if first_output:
        target = Path(first_output)
        journal = Journal(target.with_name(f".{target.name}.journal.jsonl"), _settings(args), args.overwrite)
    if journal is not None and journal.discarded:
        print(f"{journal.path}: made with other settings (checkpoint, thresholds, ...); starting afresh",
              file=sys.stderr)
    overlays = Overlays(args.overlay, resume=journal is not None and bool(journal.done)) if args.overlay else None
    todo = [p for p in images if journal is None or not journal.finished(p)]
    if journal is not None and len(todo) < len(images):
        print(f"resuming: {len(images) - len(todo)} of {len(images)} images already done", file=sys.stderr)
    failed = 0
    complete = False
    fresh: dict[str, dict[str, Any]] = {}
    bar = tqdm(total=len(todo), desc="predict", unit="image", disable=args.no_progress, dynamic_ncols=True)
    try:
        for start in range(0, len(todo), args.batch_size):
            chunk = todo[start: start + args.batch_size]
            for result in predictor.run(chunk, aligned=args.aligned, errors="record"):
                record = result.record()
                if overlays is not None and not result.error:
                    for index, face in enumerate(result.faces):
                        drawn, final = overlays.path(result.image, index)
                        draw_prediction_overlay(face, predictor.aus, predictor.thresholds, drawn,
                                                title=f"{result.image} face {index}")
                        record["faces"][index]["overlay"] = str(final)
                failed += _report(record, lambda m: tqdm.write(m, file=sys.stderr))
                fresh[_key(record["image"])] = record
                if journal is not None:
                    journal.add(record)
                else:
                    print(json.dumps(record, ensure_ascii=False))
            bar.update(len(chunk))
        complete = True
    finally:
        bar.close()
        if journal is not None:
            try:
                _finish_outputs(journal, images, predictor.labels, args, complete)
            finally:
                journal.close()
    if overlays is not None:
        overlays.publish()
    faces = sum(len(r["faces"]) for r in fresh.values())
    print(f"{len(todo)} images processed ({faces} faces, {failed} failed), "
          f"{len(images) - len(todo)} resumed", file=sys.stderr)
    return 1 if failed else 0


def _finish_outputs(journal: Journal, images: Sequence[str], labels: Sequence[str], args: argparse.Namespace,
                    complete: bool) -> None:
    """Write the outputs from the journal: all of them after a complete run; after an interrupted one only
    those `Journal.may_replace` allows, so an earlier finished output is never lost (module docstring)."""
    records = [journal.done[_key(p)] for p in images if _key(p) in journal.done]
    if complete:
        write_outputs(records, labels, args.json, args.csv)
        if journal.partial:
            journal.mark_partial([])
        return
    written, kept = [], []
    for path in (args.json, args.csv):
        if path:
            (written if journal.may_replace(path) else kept).append(path)
    write_outputs(records, labels, *(p if p in written else None for p in (args.json, args.csv)))
    journal.mark_partial(written)
    for path in kept:
        print(f"{path}: kept as it was (an earlier run's output); this run's finished images are in "
              f"{journal.path}, rerun the same command to finish", file=sys.stderr)
