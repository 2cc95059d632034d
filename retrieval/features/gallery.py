"""Walk a photo folder, extract features resumably, and write an image-gallery split in the precomp layout.

Output (docs/retrieval.md layout; shapes as `retrieval.data.precomp.SIDE_ARRAYS`)::

    OUT/{name}_precomp/{split}_ims.npy          (N, 36, 2048) float32 region features
                       {split}_boxes.npy        (N, 36, 4) float32 x0, y0, x1, y1 in original-image pixels
                       {split}_image_sizes.npy  (N, 2) int64 width, height
                       {split}_grid.npy         (N, 49, 2048) float32 7×7 grid, row-major cells
                       {split}_ids.txt          image id = path relative to --images (POSIX separators)
                       {split}_paths.txt        absolute path of each source image (marks an image gallery)
                       {split}_caps.txt         only with --captions: 5 captions per image, image order
                       {split}_features.json    extractor settings, weights, counts, skipped files
                       .features_{split}/       the resume journal: settings.json, journal.jsonl, shard_*.npz

Images are taken in sorted id order.  Each batch's results go to an atomically written shard and one
journal line per image; a rerun (same settings) extracts only images not yet in the journal, so adding
photos to the folder and rerunning is incremental.  Unreadable images get one line on stderr and are left
out.  The split files are rebuilt from the journal at the end, each written atomically.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from retrieval.data.precomp import CAPTIONS_PER_IMAGE, GRID_CELLS
from retrieval.features.extract import C5_CHANNELS, ExtractedBatch, ExtractorSettings, RegionGridExtractor
from shared.distributed import barrier
from shared.errors import UserError
from shared.io import atomic_open, atomic_path, write_json, write_npy
from shared.training import progress
from shared.version import __version__

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
JOURNAL = "journal.jsonl"
SETTINGS = "settings.json"
UNSAFE_ID_CHARACTERS = ("\n", "\r", "\t")
MAX_HELD_BATCHES = 4  # decoded images waiting for a same-size batch, in batches


def list_images(root: Path) -> list[str]:
    """Image files under `root` (recursive, hidden entries skipped) as sorted POSIX relative paths."""
    if not root.is_dir():
        raise UserError(f"--images {root}: not a directory")
    found = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.is_file():
            found.append(rel.as_posix())
    if not found:
        raise UserError(f"--images {root}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    return sorted(found)


def read_gallery_captions(path: Path, ids: Sequence[str]) -> dict[str, list[str]]:
    """``--captions FILE``: utf-8 lines ``<image id>\\t<caption>``, exactly 5 per image (blank lines ignored).

    The image id is the path relative to ``--images`` (the file name for a flat folder).  Every image
    needs 5 captions (the precomp rule caption j ↔ image j // 5, docs/retrieval.md).
    """
    if not path.is_file():
        raise UserError(f"--captions {path}: file not found")
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise UserError(f"--captions {path}: not utf-8 text ({err.reason} at byte {err.start})") from None
    known = set(ids)
    captions: dict[str, list[str]] = defaultdict(list)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        image, sep, caption = line.partition("\t")
        if not sep or not caption.strip():
            raise UserError(f"--captions {path}: line {number} is not '<image id><TAB><caption>'")
        if image not in known:
            raise UserError(f"--captions {path}: line {number} names {image!r}, which is not an image under --images")
        captions[image].append(caption.strip())
    for image in ids:
        if len(captions[image]) != CAPTIONS_PER_IMAGE:
            raise UserError(f"--captions {path}: image {image!r} has {len(captions[image])} captions, "
                            f"expected {CAPTIONS_PER_IMAGE}")
    return dict(captions)


def load_rgb(path: Path) -> torch.Tensor:
    """RGB (3, H, W) float tensor in [0, 1]; any decoding failure raises ValueError with the reason."""
    try:
        with Image.open(path) as image:
            image.load()
            array = np.asarray(image.convert("RGB"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(reason) from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


class _Photos(Dataset):
    """(id, image tensor or None, error or None) per image, decoded in DataLoader workers."""

    def __init__(self, root: Path, ids: Sequence[str]) -> None:
        self.root, self.ids = root, list(ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[str, torch.Tensor | None, str | None]:
        image_id = self.ids[index]
        if any(ch in image_id for ch in UNSAFE_ID_CHARACTERS) or image_id != image_id.strip():
            return image_id, None, "file name has leading/trailing spaces, a tab or a newline (unusable as an id)"
        try:
            return image_id, load_rgb(self.root / image_id), None
        except ValueError as err:
            return image_id, None, str(err)


def file_stamp(path: Path) -> list[int]:
    """[size, mtime_ns] of an image: a replaced photo with the same name is extracted again."""
    info = path.stat()
    return [info.st_size, info.st_mtime_ns]


def file_sha256(path: Path) -> str:
    """Hex sha256 of a (weight) file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(settings: ExtractorSettings) -> dict:
    """What makes two runs' features interchangeable: every setting and the weight file's hash (not its path)."""
    if settings.weights is not None and not settings.weights.is_file():
        raise UserError(f"config features.detector.weights {settings.weights}: file not found")
    values = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(settings).items() if k != "weights"}
    return {"settings": values, "weights_sha256": None if settings.weights is None else file_sha256(settings.weights)}


class Journal:
    """Per-image results in atomically written shards plus an append-only JSONL index (resume state)."""

    def __init__(self, folder: Path, stamp: dict, fresh: bool, rank: int = 0) -> None:
        """Rank 0 (or a single process) owns the folder: it drops it with `fresh` and writes the
        settings stamp; under torchrun the other ranks construct theirs after a barrier.  Each rank
        appends to its own journal file and names its own shards, so ranks never write one file."""
        self.folder, self.stamp, self.rank = folder, stamp, rank
        if rank == 0:
            if fresh and folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True, exist_ok=True)
        stamp_path = folder / SETTINGS
        if stamp_path.is_file():
            if json.loads(stamp_path.read_text(encoding="utf-8")) != stamp:
                raise UserError(f"{folder}: features were extracted with other settings or weights; "
                                "rerun with --fresh (or use another --out/--split)")
        elif rank == 0:
            write_json(stamp_path, stamp)
        self.reload()
        prefix = "shard_" if rank == 0 else f"shard_r{rank}_"
        shards = [int(p.stem.rsplit("_", 1)[1]) for p in folder.glob(f"{prefix}*.npz")
                  if rank != 0 or p.stem.count("_") == 1]
        self._next = max(shards, default=-1) + 1
        self._prefix = prefix

    def reload(self) -> None:
        """Read every rank's journal lines (a line torn by a crash is skipped: its image is extracted again)."""
        self.entries: dict[str, dict] = {}
        for path in sorted(self.folder.glob("journal*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(entry, dict) and {"image", "file", "shard", "row"} <= entry.keys():
                    self.entries[entry["image"]] = entry

    def is_done(self, image_id: str, file_stamp: list[int]) -> bool:
        """True when `image_id` was extracted from a file of the same size and modification time."""
        entry = self.entries.get(image_id)
        return entry is not None and entry["file"] == file_stamp

    def add(self, image_ids: Sequence[str], file_stamps: Sequence[list[int]], batch: ExtractedBatch) -> None:
        """Write one shard (atomically), then append one durable journal line per image."""
        name = f"{self._prefix}{self._next:06d}.npz"
        self._next += 1
        with atomic_open(self.folder / name, "wb") as handle:
            np.savez(handle, features=batch.features.numpy(), boxes=batch.boxes.numpy(), grid=batch.grid.numpy(),
                     image_sizes=batch.image_sizes.numpy(), detected=batch.detected.numpy())
        entries = [{"image": image_id, "file": stamp, "shard": name, "row": row}
                   for row, (image_id, stamp) in enumerate(zip(image_ids, file_stamps))]
        journal = JOURNAL if self.rank == 0 else f"journal.rank{self.rank}.jsonl"
        with open(self.folder / journal, "a", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(e) + "\n" for e in entries))
            handle.flush()
            os.fsync(handle.fileno())
        self.entries.update({e["image"]: e for e in entries})


@dataclass
class GallerySummary:
    """What one `extract_gallery` call did."""

    precomp_dir: Path
    split: str
    n_images: int
    extracted_now: int
    resumed: int
    padded_images: int
    random_weights: bool
    seconds: float
    skipped: list[tuple[str, str]] = field(default_factory=list)


@contextlib.contextmanager
def _npy_memmap(path: Path, shape: tuple[int, ...]) -> Iterator[np.memmap]:
    """A float32 `.npy` memory map that replaces `path` only when the block succeeds."""
    with atomic_path(path) as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
        yield array
        array.flush()
        del array


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write("".join(f"{line}\n" for line in lines))


def write_split(precomp: Path, split: str, journal: Journal, ids: Sequence[str], root: Path,
                captions: dict[str, list[str]] | None, settings: ExtractorSettings) -> int:
    """Assemble the split files from the journal for `ids` (in order); returns the number of padded images."""
    n, k = len(ids), settings.num_boxes
    position = {image_id: i for i, image_id in enumerate(ids)}
    by_shard: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for image_id in ids:
        entry = journal.entries[image_id]
        by_shard[entry["shard"]].append((position[image_id], entry["row"]))
    sizes = np.zeros((n, 2), dtype=np.int64)
    detected = np.zeros(n, dtype=np.int64)
    with contextlib.ExitStack() as stack:
        ims = stack.enter_context(_npy_memmap(precomp / f"{split}_ims.npy", (n, k, C5_CHANNELS)))
        boxes = stack.enter_context(_npy_memmap(precomp / f"{split}_boxes.npy", (n, k, 4)))
        grid = stack.enter_context(_npy_memmap(precomp / f"{split}_grid.npy", (n, GRID_CELLS, C5_CHANNELS)))
        for shard, rows in by_shard.items():
            with np.load(journal.folder / shard, allow_pickle=False) as data:
                out, src = (np.array(v) for v in zip(*rows))
                ims[out], boxes[out], grid[out] = data["features"][src], data["boxes"][src], data["grid"][src]
                sizes[out], detected[out] = data["image_sizes"][src], data["detected"][src]
    write_npy(precomp / f"{split}_image_sizes.npy", sizes)
    _write_lines(precomp / f"{split}_ids.txt", ids)
    _write_lines(precomp / f"{split}_paths.txt", [str((root / i).resolve()) for i in ids])
    caps_path = precomp / f"{split}_caps.txt"
    if captions is not None:
        _write_lines(caps_path, [c for image_id in ids for c in captions[image_id]])
    elif caps_path.is_file():
        caps_path.unlink()  # captions of an earlier run no longer match this image list
    return int((detected < k).sum())


def _batches(loader: DataLoader, root: Path, batch_size: int, show_progress: bool,
             skipped: list[tuple[str, str]]) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Batches of decoded images of one size (no padding inside a batch, so an image's features do not
    depend on what it was batched with); unreadable images get one stderr line and are skipped."""
    pending: dict[tuple[int, ...], list[tuple[str, torch.Tensor]]] = defaultdict(list)
    for image_id, image, error in progress(loader, "features", enabled=show_progress, total=len(loader)):
        if error is not None:
            skipped.append((image_id, error))
            tqdm.write(f"retrieval features: skipping {root / image_id}: {error}", file=sys.stderr)
            continue
        shape = tuple(image.shape)
        pending[shape].append((image_id, image))
        if len(pending[shape]) == batch_size:
            yield pending.pop(shape)
        elif sum(map(len, pending.values())) >= MAX_HELD_BATCHES * batch_size:  # many sizes: flush partial batches
            yield from pending.values()
            pending.clear()
    yield from pending.values()


def _gather_skipped(skipped: list[tuple[str, str]], world: int) -> list[tuple[str, str]]:
    """Every rank's unreadable images, in file order (for the summary rank 0 writes)."""
    from shared.distributed import barrier, all_gather_concat

    lines = "".join(json.dumps(list(item)) + "\n" for item in skipped).encode("utf-8")
    gathered = all_gather_concat(torch.tensor(list(lines), dtype=torch.uint8))  # JSON lines, never pickles
    text = bytes(gathered.tolist()).decode("utf-8")
    return sorted(tuple(json.loads(line)) for line in text.splitlines() if line)


def extract_gallery(images: str | Path, out: str | Path, settings: ExtractorSettings, *, name: str = "gallery",
                    split: str = "test", captions: str | Path | None = None, device: torch.device | None = None,
                    batch_size: int = 2, workers: int = 0, fresh: bool = False,
                    show_progress: bool = True, rank: int = 0, world: int = 1) -> GallerySummary | None:
    """Extract region + grid features for every image under `images` into ``out/{name}_precomp/{split}_*``.

    Resumable (see the module docstring); returns a `GallerySummary`.  Bad user input (folder, captions
    file, weights, changed settings) raises a one-line `UserError`.  Under torchrun (`rank` of
    `world`) each rank extracts every `world`-th image still to do into the shared journal folder, and
    rank 0 alone writes the split files (the same files as one process) and returns the summary.
    """
    start = time.perf_counter()
    root = Path(images).expanduser()
    ids = list_images(root)
    caption_map = None if captions is None else read_gallery_captions(Path(captions), ids)
    precomp = Path(out) / f"{name}_precomp"
    stamp = fingerprint(settings)
    journal = Journal(precomp / f".features_{split}", stamp, fresh) if rank == 0 else None
    barrier()  # rank 0 has prepared the journal folder
    journal = journal or Journal(precomp / f".features_{split}", stamp, False, rank)
    stamps = {i: file_stamp(root / i) for i in ids}
    todo = [i for i in ids if not journal.is_done(i, stamps[i])]
    mine = todo[rank::world]
    skipped: list[tuple[str, str]] = []
    if todo:
        device = device or torch.device("cpu")
        extractor = RegionGridExtractor(settings).to(device)
        loader = DataLoader(_Photos(root, mine), batch_size=None, num_workers=workers)
        for batch in _batches(loader, root, batch_size, show_progress and rank == 0, skipped):
            batch_ids = [image_id for image_id, _ in batch]
            journal.add(batch_ids, [stamps[i] for i in batch_ids], extractor([im.to(device) for _, im in batch]))
    if world > 1:
        barrier()  # every rank's shards and journal lines are on disk
        skipped = _gather_skipped(skipped, world)
        if rank != 0:
            return None
        journal.reload()
    done = [i for i in ids if journal.is_done(i, stamps[i])]  # skipped images never reach the journal
    if not done:
        raise UserError(f"--images {root}: none of the {len(ids)} image files could be read")
    kept_captions = None if caption_map is None else {i: caption_map[i] for i in done}
    padded = write_split(precomp, split, journal, done, root, kept_captions, settings)
    summary = GallerySummary(precomp_dir=precomp, split=split, n_images=len(done), extracted_now=len(todo) - len(skipped),
                             resumed=len(ids) - len(todo), padded_images=padded, random_weights=settings.weights is None,
                             seconds=time.perf_counter() - start, skipped=skipped)
    write_json(precomp / f"{split}_features.json", {
        "images_dir": str(root.resolve()), "n_images": summary.n_images, "captions": caption_map is not None,
        "random_weights": summary.random_weights, "weights": None if settings.weights is None else str(settings.weights),
        "padded_images": padded,
        "skipped": [{"image": i, "reason": r} for i, r in skipped], **journal.stamp, "code_version": __version__,
    })
    return summary
