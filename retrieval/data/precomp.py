"""Pre-computed region features in the SCAN / VSE∞ "precomp" layout: find, validate, memory-map.

Sources: docs/retrieval.md (visual inputs)

Two public layouts hold the same files:

* SCAN:  ``DATA/{name}_precomp/{split}_ims.npy``
* VSE∞:  ``DATA/{name}/precomp/{split}_ims.npy``

Per split: ``{split}_ims.npy`` (N, 36, 2048) float32, ``{split}_caps.txt`` (5 consecutive lines per
image, caption j belongs to image j // 5), optional ``{split}_ids.txt`` and optional side arrays
(``SIDE_ARRAYS``) plus a visual scene-graph file ``{split}_scene_graphs.jsonl``.  An image gallery made
from raw photos (`retrieval features`) has ``{split}_paths.txt`` (source image per image) and may have
no caption file; it then loads with no captions.

Two row layouts of ``{split}_ims.npy`` are known (`rows_per_image`):

* one row per image (rows × 5 = captions): every split of the public COCO package and F30K train/test;
* one row per caption (rows = captions): the released F30K ``dev`` split (5,070 rows for the 5,070
  captions of 1,014 images).  The public loaders (kuanghuei/SCAN, fartashf/vsepp, woodfrog/vse_infty
  ``PrecompDataset``) set ``im_div = 1`` when rows = captions and keep every 5th image embedding at
  evaluation, i.e. the row of image i is row 5·i.  We require the 5
  rows of each image to be bitwise identical (the file repeats each image 5 times) and refuse the file
  otherwise, since then rows 5·i … 5·i+4 are not one image and the N × 5N protocol is undefined; the
  split then exposes rows[::5] (one image per 5 captions), with ``PrecompSplit.feature_layout`` =
  ``"per_caption"``.  Side arrays, ids and scene graphs may have either one entry per image or one per
  row; per-row entries are collapsed the same way.

Every array is checked for NaN/inf over all the rows the split exposes, streamed in bounded chunks of
the memory map (`check_rows`).

How a path given by the user is resolved (`resolve_precomp_dir`):

1. a folder that itself holds ``*_caps.txt`` (or a gallery's ``*_paths.txt``) is the precomp folder; its
   dataset name is the folder name without ``_precomp`` (SCAN), the parent's name when the folder is called
   ``precomp`` (VSE∞), else the folder name;
2. otherwise ``DATA/{name}_precomp`` or ``DATA/{name}/precomp`` (also ``DATA/precomp``) is looked for;
   without ``name`` exactly one such folder must exist.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from shared.errors import UserError
from shared.io import open_npy

KNOWN_SPLITS = ("train", "dev", "test", "testall")
CAPTIONS_PER_IMAGE = 5
DEV_MAX_IMAGES = 1000
NUM_REGIONS = 36
FEATURE_DIM = 2048
GRID_SIDE = 7  # the 3SHNet grid variant: 7 × 7 backbone cells over the whole picture (thesis §8.3.1)
GRID_CELLS = GRID_SIDE * GRID_SIDE
SEG_CLASSES = 133
SEG_GRID = 7
SEG_MAP_SIZE = 64
FULL_CHECK_CHUNK_BYTES = 64 * 2**20  # ours: bytes of the memory map read at a time by `check_rows`
GALLERY_PATHS = "paths.txt"  # {split}_paths.txt: one source image path per image (an image-only gallery)

# side array name -> symbolic shape after the image axis (sizes filled in by `load_split`; "box" = 4 or more)
SIDE_ARRAYS: dict[str, tuple[str, ...]] = {
    "boxes": ("regions", "box"),
    "image_sizes": ("2",),
    "grid": ("grid", "dim"),
    "segmentations": ("classes", "seg_grid", "seg_grid"),
    "seg_maps": ("seg_map", "seg_map"),
    "cat_onehots": ("classes",),
}


@dataclass(frozen=True)
class PrecompDir:
    """A folder holding one dataset's per-split precomp files."""

    path: Path
    name: str
    layout: Literal["scan", "vse_infty", "flat"]

    def file(self, split: str, suffix: str) -> Path:
        """Path of ``{split}_{suffix}`` in this folder (e.g. ``suffix='ims.npy'``)."""
        return self.path / f"{split}_{suffix}"

    def splits(self) -> list[str]:
        """Splits that have a caption file: known splits in protocol order, then others sorted."""
        found = {p.name[: -len("_caps.txt")] for p in self.path.glob("*_caps.txt")}
        return [s for s in KNOWN_SPLITS if s in found] + sorted(found - set(KNOWN_SPLITS))


def _is_precomp_folder(path: Path) -> bool:
    return path.is_dir() and (any(path.glob("*_caps.txt")) or any(path.glob(f"*_{GALLERY_PATHS}")))


def _describe(path: Path) -> PrecompDir:
    if path.name.endswith("_precomp") and len(path.name) > len("_precomp"):
        return PrecompDir(path, path.name[: -len("_precomp")], "scan")
    if path.name == "precomp":
        return PrecompDir(path, path.parent.name, "vse_infty")
    return PrecompDir(path, path.name, "flat")


def resolve_precomp_dir(data: str | Path, name: str | None = None) -> PrecompDir:
    """Find the precomp folder for `data` (a dataset root or the precomp folder itself).

    Implements the SCAN and VSE∞ layouts of docs/retrieval.md; see the module docstring for
    the resolution order.
    """
    root = Path(data)
    if not root.is_dir():
        raise UserError(f"--data {root}: not a directory")
    if _is_precomp_folder(root):
        found = _describe(root.resolve())
        return found if name is None else PrecompDir(found.path, name, found.layout)
    if name is not None:
        candidates = [root / f"{name}_precomp", root / name / "precomp"]
    else:
        candidates = sorted(root.glob("*_precomp")) + sorted(root.glob("*/precomp")) + [root / "precomp"]
    hits = [c for c in candidates if _is_precomp_folder(c)]
    if not hits:
        wanted = f"{name}_precomp/ or {name}/precomp/" if name else "NAME_precomp/ or NAME/precomp/"
        raise UserError(f"--data {root}: no precomp dataset found (expected {wanted} holding SPLIT_caps.txt)")
    if len(hits) > 1:
        names = ", ".join(str(h.relative_to(root)) for h in hits)
        raise UserError(f"--data {root}: several datasets ({names}); pass a dataset name or point at one")
    found = _describe(hits[0].resolve())
    return found if name is None else PrecompDir(found.path, name, found.layout)


def read_captions(path: Path) -> list[str]:
    """Read a ``{split}_caps.txt`` file as utf-8 text, one stripped caption per line.

    Captions are decoded here, never ``str()``-ed from bytes: the py2→py3 port bug of the SCAN lineage
    tokenised the ``b'...'`` repr (docs/retrieval.md).
    """
    if not path.is_file():
        raise UserError(f"{path}: caption file not found")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not utf-8 text ({err.reason} at byte {err.start})") from None
    captions = [line.strip() for line in text.splitlines()]
    for number, caption in enumerate(captions, start=1):
        if not caption:
            raise UserError(f"{path}: line {number} is an empty caption")
    return captions


def rows_per_image(n_rows: int, n_captions: int, caps_path: Path, ims_path: Path) -> int:
    """Feature rows per image: 1 (rows × 5 = captions) or 5 (one row per caption, the F30K dev layout).

    Caption j belongs to image j // 5 in both layouts (the public loaders' ``im_div`` rule, e.g.
    kuanghuei/SCAN ``data.py``); any other count is a one-line error naming both counts and the known layouts.
    """
    if n_captions == CAPTIONS_PER_IMAGE * n_rows:
        return 1
    if n_captions == n_rows and n_rows % CAPTIONS_PER_IMAGE == 0:
        return CAPTIONS_PER_IMAGE
    per_caption = f"{n_rows}" if n_rows % CAPTIONS_PER_IMAGE == 0 else f"a multiple of {CAPTIONS_PER_IMAGE}"
    raise UserError(
        f"{caps_path}: {n_captions} captions for {n_rows} images in {ims_path.name}; known layouts: "
        f"{CAPTIONS_PER_IMAGE * n_rows} captions ({CAPTIONS_PER_IMAGE} per image, one feature row each) or "
        f"{per_caption} (one feature row per caption, 5 rows per image: F30K dev)"
    )


def _check_shape(array: np.ndarray, path: Path, expected: Sequence[int | None], what: str) -> None:
    shape = tuple(array.shape)
    ok = len(shape) == len(expected) and all(e is None or e == s for e, s in zip(expected, shape))
    if not ok:
        want = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise UserError(f"{path}: {what} has shape {shape}, expected {want}")


def check_rows(array: np.ndarray, path: Path, *, finite: bool = True, repeat: int = 1,
               chunk_bytes: int = FULL_CHECK_CHUNK_BYTES) -> None:
    """Stream every row of `array` in chunks of about `chunk_bytes` (bounded memory over a memory map).

    `finite`: reject NaN/inf, naming the first bad row.  `repeat` > 1: each group of `repeat`
    consecutive rows must be bitwise identical (the one-row-per-caption layout, module docstring).
    """
    n = len(array)
    check_finite = finite and array.dtype.kind in "fc"
    if n == 0 or (not check_finite and repeat == 1):
        return
    row_bytes = max(1, array[0].nbytes)
    step = max(1, chunk_bytes // (row_bytes * repeat)) * repeat
    for start in range(0, n, step):
        block = np.asarray(array[start : start + step]).reshape(min(step, n - start), -1)
        if check_finite:
            good = np.isfinite(block).all(axis=1)
            if not good.all():
                raise UserError(f"{path}: NaN or inf values in row {start + int(np.argmin(good))}")
        if repeat > 1:
            bits = block.view(f"u{block.dtype.itemsize}") if block.dtype.kind == "f" else block
            groups = bits.reshape(-1, repeat, bits.shape[1])
            same = (groups == groups[:, :1]).all(axis=(1, 2))
            if not same.all():
                first = start + repeat * int(np.argmin(same))
                raise UserError(
                    f"{path}: one row per caption, but rows {first}-{first + repeat - 1} (image {first // repeat}) "
                    f"differ; this layout must repeat each image's features for its {repeat} captions"
                )


def _collapse(items: list, repeat: int, path: Path, unit: str) -> list:
    """Entries given `repeat` times per image → one per image; the `repeat` copies must be equal."""
    if repeat == 1:
        return items
    for start in range(0, len(items), repeat):
        group = items[start : start + repeat]
        if any(entry != group[0] for entry in group):
            raise UserError(f"{path}: {unit} {start + 1}-{start + repeat} (image {start // repeat}) differ; "
                            f"expected {repeat} copies of one image's entry")
    return items[::repeat]


def _read_ids(path: Path, n_images: int) -> list[str]:
    """One id per image; a file with one id per caption (5 equal lines per image) is collapsed."""
    try:
        ids = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not utf-8 text ({err.reason} at byte {err.start})") from None
    if len(ids) == CAPTIONS_PER_IMAGE * n_images and n_images != len(ids):
        ids = _collapse(ids, CAPTIONS_PER_IMAGE, path, "lines")
    if len(ids) != n_images:
        raise UserError(f"{path}: {len(ids)} ids for {n_images} images")
    return ids


def _read_paths(path: Path, n_images: int) -> list[str]:
    try:
        paths = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not utf-8 text ({err.reason} at byte {err.start})") from None
    if len(paths) != n_images:
        raise UserError(f"{path}: {len(paths)} image paths for {n_images} images")
    return paths


def read_scene_graphs(path: Path, n_images: int | None, n_regions: int) -> list[list[tuple[int, str, int]]]:
    """Read ``{split}_scene_graphs.jsonl``: one ``{"edges": [[subj_region, "rel", obj_region], ...]}`` per image.

    `n_images` None: any number of records (the caller checks the count).
    The visual scene graph feeds HiRE's semantic edges (docs/retrieval.md#hire).
    """
    graphs: list[list[tuple[int, str, int]]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not utf-8 text ({err.reason} at byte {err.start})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            edges = [(int(s), str(r), int(o)) for s, r, o in record["edges"]]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise UserError(f"{path}: line {number} is not a scene-graph record ({err})") from None
        for s, _, o in edges:
            if not (0 <= s < n_regions and 0 <= o < n_regions):
                raise UserError(f"{path}: line {number} has region index outside 0..{n_regions - 1}")
        graphs.append(edges)
    if n_images is not None and len(graphs) != n_images:
        raise UserError(f"{path}: {len(graphs)} scene graphs for {n_images} images")
    return graphs


@dataclass
class PrecompSplit:
    """One split of a precomp dataset: memory-mapped arrays, captions and the caption→image map.

    `images` and every side array hold one row per image whatever the file layout; `feature_layout`
    records the layout of ``{split}_ims.npy``: ``"per_image"`` or ``"per_caption"`` (F30K dev as
    released, 5 identical rows per image, read as rows[::5]).
    """

    name: str
    split: str
    directory: Path
    images: np.ndarray
    captions: list[str]
    ids: list[str] | None = None
    paths: list[str] | None = None
    boxes: np.ndarray | None = None
    image_sizes: np.ndarray | None = None
    grid: np.ndarray | None = None
    segmentations: np.ndarray | None = None
    seg_maps: np.ndarray | None = None
    cat_onehots: np.ndarray | None = None
    scene_graphs: list[list[tuple[int, str, int]]] | None = None
    truncated_from: int | None = field(default=None)
    feature_layout: Literal["per_image", "per_caption"] = "per_image"

    @property
    def n_images(self) -> int:
        return int(self.images.shape[0])

    @property
    def n_captions(self) -> int:
        return len(self.captions)

    @property
    def caption_image(self) -> np.ndarray:
        """Image index of every caption: caption j belongs to image j // 5 (docs/retrieval.md)."""
        return np.arange(self.n_captions, dtype=np.int64) // CAPTIONS_PER_IMAGE

    def image_captions(self, index: int) -> list[str]:
        """The 5 captions of image `index`."""
        start = CAPTIONS_PER_IMAGE * index
        return self.captions[start : start + CAPTIONS_PER_IMAGE]

    def array_file(self, attr: str) -> Path:
        """The file an image array attribute was read from (``images`` → ``{split}_ims.npy``)."""
        return self.directory / f"{self.split}_{'ims' if attr == 'images' else attr}.npy"

    def side_arrays(self) -> dict[str, np.ndarray]:
        """The optional side arrays present in this split, by name."""
        found = {name: getattr(self, name) for name in SIDE_ARRAYS}
        return {name: value for name, value in found.items() if value is not None}


def load_split(
    data: str | Path | PrecompDir,
    split: str,
    *,
    name: str | None = None,
    feature_dim: int | None = FEATURE_DIM,
    num_regions: int | None = NUM_REGIONS,
    max_images: int | None = None,
    dev_max_images: int | None = DEV_MAX_IMAGES,
    finite_check: Literal["full", "none"] = "full",
) -> PrecompSplit:
    """Load and validate one split (docs/retrieval.md).

    Arrays are memory-mapped (``mmap_mode='r'``).  `max_images` truncates any split; when it is None the
    ``dev`` split is truncated to `dev_max_images` (1,000 images = 5,000 captions, as the public code
    validates), pass ``dev_max_images=None`` for the full dev set.  `feature_dim=None` / `num_regions=None`
    accept any feature size / number of regions (real BUTD data: 2048 / 36).  Both row layouts of the
    module docstring load, as one row per image.  ``finite_check="full"`` streams every kept row of every
    float array for NaN/inf (`check_rows`); ``"none"`` skips it (the per-caption layout's repeated
    rows are verified either way).  Every malformed input raises a one-line `UserError` naming the file.
    """
    if feature_dim is not None and feature_dim <= 0:
        raise UserError(f"feature_dim must be positive, got {feature_dim}")
    if finite_check not in ("full", "none"):
        raise ValueError(f"finite_check must be 'full' or 'none', got {finite_check!r}")
    where = data if isinstance(data, PrecompDir) else resolve_precomp_dir(data, name)
    ims_path = where.file(split, "ims.npy")
    caps_path = where.file(split, "caps.txt")
    if not caps_path.is_file() and not ims_path.is_file():
        known = ", ".join(where.splits()) or "none"
        raise UserError(f"{where.path}: no split {split!r} (found: {known})")
    images = open_npy(ims_path)
    _check_shape(images, ims_path, (None, num_regions, feature_dim), "region features")
    if images.dtype not in (np.float32, np.float16):
        raise UserError(f"{ims_path}: dtype {images.dtype}, expected float32 (or float16)")
    n_rows = int(images.shape[0])
    paths_path = where.file(split, GALLERY_PATHS)
    captioned = caps_path.is_file() or not paths_path.is_file()  # only a gallery may come without captions
    captions = read_captions(caps_path) if captioned else []
    repeat = rows_per_image(n_rows, len(captions), caps_path, ims_path) if captioned else 1
    n_all = n_rows // repeat
    paths = _read_paths(paths_path, n_all) if paths_path.is_file() else None
    n_regions = int(images.shape[1])

    ids_path = where.file(split, "ids.txt")
    ids = _read_ids(ids_path, n_all) if ids_path.is_file() else None
    sizes = {
        "regions": n_regions, "box": None, "2": 2, "grid": GRID_CELLS, "dim": feature_dim,
        "classes": SEG_CLASSES, "seg_grid": SEG_GRID, "seg_map": SEG_MAP_SIZE,
    }
    side: dict[str, tuple[np.ndarray, int]] = {}  # name -> (array as stored, rows per image)
    for key, tail in SIDE_ARRAYS.items():
        path = where.file(split, f"{key}.npy")
        if not path.is_file():
            continue
        array = open_npy(path)
        per_row = repeat if repeat > 1 and array.shape[0] == n_rows else 1
        _check_shape(array, path, (n_all * per_row, *[sizes[t] for t in tail]), key)
        if array.dtype.kind not in "fiub":
            raise UserError(f"{path}: dtype {array.dtype} is not numeric")
        if key == "boxes" and array.shape[-1] < 4:
            raise UserError(f"{path}: boxes need at least 4 columns (x0, y0, x1, y1), got {array.shape[-1]}")
        side[key] = (array[..., :4] if key == "boxes" else array, per_row)
    sg_path = where.file(split, "scene_graphs.jsonl")
    scene_graphs = None
    if sg_path.is_file():
        graphs = read_scene_graphs(sg_path, None, n_regions)
        if repeat > 1 and len(graphs) == n_rows:
            graphs = _collapse(graphs, repeat, sg_path, "lines")
        if len(graphs) != n_all:
            raise UserError(f"{sg_path}: {len(graphs)} scene graphs for {n_all} images")
        scene_graphs = graphs

    limit = max_images if max_images is not None else (dev_max_images if split == "dev" else None)
    if limit is not None and limit <= 0:
        raise UserError(f"max_images must be positive, got {limit}")
    n = n_all if limit is None else min(n_all, limit)
    kept: dict[str, np.ndarray] = {}
    for key, (array, per_row) in [("images", (images, repeat)), *side.items()]:
        rows = array[: n * per_row]
        check_rows(rows, ims_path if key == "images" else where.file(split, f"{key}.npy"),
                   finite=finite_check == "full", repeat=per_row)
        kept[key] = rows[::per_row] if per_row > 1 else rows
    return PrecompSplit(
        name=where.name,
        split=split,
        directory=where.path,
        captions=captions[: CAPTIONS_PER_IMAGE * n],
        ids=None if ids is None else ids[:n],
        paths=None if paths is None else paths[:n],
        scene_graphs=None if scene_graphs is None else scene_graphs[:n],
        truncated_from=n_all if n < n_all else None,
        feature_layout="per_caption" if repeat > 1 else "per_image",
        **kept,
    )


def load_split_captions(data: str | Path | PrecompDir, split: str, *, name: str | None = None) -> list[str]:
    """All captions of a split, checked against the row count of ``{split}_ims.npy`` (no truncation)."""
    where = data if isinstance(data, PrecompDir) else resolve_precomp_dir(data, name)
    caps_path = where.file(split, "caps.txt")
    ims_path = where.file(split, "ims.npy")
    captions = read_captions(caps_path)
    rows_per_image(int(open_npy(ims_path).shape[0]), len(captions), caps_path, ims_path)
    return captions
