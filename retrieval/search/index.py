"""A searchable gallery of two-tower embeddings: build, add, save, load, search (docs/retrieval.md).

An index folder holds

    manifest.json          format, save id, the data files of that save, kind (images | captions),
                           model name, checkpoint path (absolute, and relative to the index folder)
                           and SHA-256, dimension, count, dtype, backend, SHA-256 of every data file,
                           code version
    vectors.<save>.npy     (count, dim) l2-normalised embeddings, float32 or float16
    items.<save>.jsonl     one JSON object per row: id ↔ image path / split index (images) or caption text
    faiss.<save>.index     the serialised FAISS index (FAISS backends only)

A save writes its data files under a fresh save id (each atomically), then replaces the manifest
(the commit point, one atomic rename) and only then deletes the files of earlier saves.  A crash at
any moment therefore leaves the previous manifest with its own, untouched files (the old index
loads) or the new manifest with all of its files: never a mixed set.  Loading verifies the
checksums, shapes and dtype and searching checks the query model against the manifest; each problem
is a one-line `UserError`.  The checkpoint is found from any working directory: by its absolute
path, else relative to the index folder (an index moved together with its checkpoint).
Building encodes each image once, in chunks saved under ``OUT/.partial`` so an interrupted build
resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from retrieval.data.precomp import PrecompSplit, load_split, resolve_precomp_dir
from retrieval.search.backends import BackendSpec, choose_backend, make_backend
from retrieval.search.encoder import Retriever, file_sha256
from shared.distributed import barrier
from shared.errors import UserError
from shared.io import atomic_open, write_json, write_npy
from shared.training import progress as progress_bar
from shared.version import __version__

FORMAT = 2  # 2: per-save file names listed in the manifest ("files"); 1 (fixed names) is still read
READABLE_FORMATS = (1, 2)
MANIFEST, VECTORS, ITEMS, FAISS_FILE, PARTIAL = "manifest.json", "vectors.npy", "items.jsonl", "faiss.index", ".partial"
DATA_ROLES = {"vectors": VECTORS, "items": ITEMS, "faiss": FAISS_FILE}  # role -> format-1 file name
KINDS = ("images", "captions")
DTYPES = ("float32", "float16")
BUILD_CHUNK = 4096  # ours: images per resumable chunk of a build
NORM_TOLERANCE = 1e-2  # rows must be l2-normalised (float16 storage rounds to ~1e-3)


@dataclass
class SearchResult:
    """Top-k of every query: `scores` (Q, k) float32 and `ids` (Q, k) int64 rows (-1 = none), best first.

    `pool` is how many items each list was cut from (an int, or one per query; None = unknown,
    taken as larger than the list): held-out ranking needs it to count unlisted items that may tie
    the cut-off score (`retrieval.search.rerank.list_ranks`).
    """

    scores: np.ndarray
    ids: np.ndarray
    items: list[list[dict[str, Any]]]
    pool: int | np.ndarray | None = None

    def hits(self, query: int) -> list[dict[str, Any]]:
        """The hits of one query as dicts: rank, row, score and the row's metadata."""
        return [{"rank": r + 1, "row": int(i), "score": float(s), **item}
                for r, (i, s, item) in enumerate(zip(self.ids[query], self.scores[query], self.items[query]))
                if i >= 0]


class Index:
    """Embeddings of one two-tower checkpoint with per-row metadata and a nearest-neighbour backend."""

    def __init__(self, kind: str, model: str, checkpoint: str, checkpoint_sha256: str, dim: int,
                 dtype: str = "float32", backend: str | BackendSpec = "auto", device: str = "cpu") -> None:
        if kind not in KINDS:
            raise UserError(f"index kind {kind!r}: expected one of {', '.join(KINDS)}")
        if dtype not in DTYPES:
            raise UserError(f"--dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
        self.kind, self.model, self.checkpoint, self.checkpoint_sha256 = kind, model, str(checkpoint), checkpoint_sha256
        self.dim, self.dtype, self.device = int(dim), dtype, device
        self.requested = backend if isinstance(backend, BackendSpec) else BackendSpec(kind=backend)
        self.vectors = np.zeros((0, self.dim), dtype=dtype)
        self.items: list[dict[str, Any]] = []
        self._backend = None
        self._spec: BackendSpec | None = None

    # -- contents -----------------------------------------------------------------------------
    @property
    def count(self) -> int:
        return len(self.items)

    def add(self, vectors: np.ndarray, items: Sequence[dict[str, Any]]) -> None:
        """Append rows: (n, dim) l2-normalised embeddings with one metadata dict each."""
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise UserError(f"index add: vectors of shape {vectors.shape}, expected (n, {self.dim})")
        if len(vectors) != len(items):
            raise UserError(f"index add: {len(vectors)} vectors but {len(items)} items")
        for start in range(0, len(vectors), BUILD_CHUNK * 16):  # float32 copies one block at a time
            block = vectors[start : start + BUILD_CHUNK * 16].astype(np.float32)
            if not np.isfinite(block).all():
                raise UserError("index add: NaN or inf in the embeddings")
            norms = np.linalg.norm(block, axis=1)
            if len(norms) and np.abs(norms - 1).max() > NORM_TOLERANCE:
                raise UserError(f"index add: embeddings are not l2-normalised (norm {norms[np.abs(norms - 1).argmax()]:.3f})")
        rows = vectors.astype(self.dtype)
        self.vectors = np.concatenate([self.vectors, rows], axis=0)  # also turns a loaded memory map into an array
        self.items.extend(dict(item) for item in items)
        if self._backend is not None:
            self._backend.add(rows)

    @property
    def backend_spec(self) -> BackendSpec:
        """The backend in use (``auto`` resolved by the current count)."""
        if self._spec is None:
            kind = choose_backend(self.count, self.requested.kind)
            self._spec = BackendSpec(**{**self.requested.to_json(), "kind": kind})
        return self._spec

    def _ready_backend(self):
        if self._backend is None:
            self._backend = make_backend(self.backend_spec, self.dim, self.device, stored=lambda: self.vectors)
            if self.count:
                self._backend.add(self.vectors)
        return self._backend

    # -- search -------------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int = 10) -> SearchResult:
        """Top-`k` rows by inner product (cosine) for each of the (Q, dim) queries."""
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None]
        if queries.shape[1:] != (self.dim,):
            raise UserError(f"index search: queries of dimension {queries.shape[1:]}, the index holds {self.dim}-d vectors")
        if k < 1:
            raise UserError(f"--topk {k}: must be at least 1")
        scores, ids = self._ready_backend().search(queries, k)
        items = [[self.items[i] if i >= 0 else {} for i in row] for row in ids]
        return SearchResult(scores, ids, items, pool=self.count)

    def check_model(self, retriever: Retriever) -> None:
        """One-line error unless `retriever` is the checkpoint the index was built with."""
        if retriever.name != self.model:
            raise UserError(f"index built with model {self.model!r}, but {retriever.checkpoint} is {retriever.name!r}")
        if retriever.sha256 != self.checkpoint_sha256:
            raise UserError(f"index built from checkpoint sha256 {self.checkpoint_sha256[:12]}…, but {retriever.checkpoint} "
                            f"has {retriever.sha256[:12]}… (rebuild the index)")

    def encode_queries(self, retriever: Retriever, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of text queries with the index's own model (checked)."""
        self.check_model(retriever)
        return retriever.encode_texts(texts)

    # -- persistence --------------------------------------------------------------------------
    def manifest(self, save_id: str, files: dict[str, str], checksums: dict[str, str],
                 root: Path | None = None) -> dict[str, Any]:
        """The manifest of a save: `files` maps role (vectors, items, faiss) to file name."""
        checkpoint = os.path.abspath(self.checkpoint)
        relative = os.path.relpath(checkpoint, os.path.abspath(root)) if root is not None else None
        return {"format": FORMAT, "save_id": save_id, "files": files, "kind": self.kind, "model": self.model,
                "checkpoint": checkpoint, "checkpoint_relative": relative,
                "checkpoint_sha256": self.checkpoint_sha256, "dim": self.dim, "count": self.count, "dtype": self.dtype,
                "backend": self.backend_spec.to_json(), "requested_backend": self.requested.kind,
                "checksums": checksums, "code_version": __version__}

    def save(self, path: str | Path) -> Path:
        """Write the index folder: data files under a new save id, then the manifest, then old files go.

        The manifest's atomic replacement is the only step that switches the folder from the old
        index to the new one, so an interrupted save never leaves a mixed set that loads.
        """
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        save_id = uuid.uuid4().hex[:12]
        files = {"vectors": f"vectors.{save_id}.npy", "items": f"items.{save_id}.jsonl"}
        write_npy(out / files["vectors"], np.asarray(self.vectors))
        with atomic_open(out / files["items"], "w", encoding="utf-8") as handle:
            for item in self.items:
                handle.write(json.dumps(item, ensure_ascii=False) + "\n")
        if self.backend_spec.kind != "exact" and self.count:
            files["faiss"] = f"faiss.{save_id}.index"
            write_npy(out / files["faiss"], self._ready_backend().serialize())
        checksums = {name: file_sha256(out / name) for name in files.values()}
        write_json(out / MANIFEST, self.manifest(save_id, files, checksums, out))
        remove_stale_files(out, set(files.values()))
        return out

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "Index":
        """Read and verify an index folder (checksums, shape, dtype); problems are one-line errors.

        The vectors are memory-mapped (read-only): an approximate backend keeps only its compressed
        codes in memory and reads the rows of a shortlist from the file.
        """
        root = Path(path)
        manifest = read_manifest(root)
        files = data_files(root, manifest)
        for name, digest in manifest["checksums"].items():
            file = root / name
            if not file.is_file():
                raise UserError(f"index {root}: {name} is missing")
            if file_sha256(file) != digest:
                raise UserError(f"index {root}: checksum mismatch in {name} (corrupted or changed since it was built)")
        try:
            spec = BackendSpec.from_json(manifest["backend"])
            index = cls(manifest["kind"], manifest["model"], manifest["checkpoint"], manifest["checkpoint_sha256"],
                        int(manifest["dim"]), manifest["dtype"], spec, device)
        except (TypeError, ValueError) as err:
            raise UserError(f"index {root}: {MANIFEST} has an invalid entry ({err})") from None
        index.checkpoint = find_checkpoint(root, manifest)
        index.requested = BackendSpec(**{**manifest["backend"], "kind": manifest.get("requested_backend", "auto")})
        index._spec = spec
        vectors_file, items_file = root / files["vectors"], root / files["items"]
        try:
            vectors = np.load(vectors_file, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as err:
            raise UserError(f"index {root}: {vectors_file.name} is not a readable array ({str(err).splitlines()[0]})") from None
        if vectors.shape != (manifest["count"], manifest["dim"]):
            raise UserError(f"index {root}: {vectors_file.name} has shape {vectors.shape}, the manifest says "
                            f"({manifest['count']}, {manifest['dim']})")
        if str(vectors.dtype) != manifest["dtype"]:
            raise UserError(f"index {root}: {vectors_file.name} is {vectors.dtype}, the manifest says {manifest['dtype']}")
        lines = items_file.read_text(encoding="utf-8").splitlines()
        if len(lines) != manifest["count"]:
            raise UserError(f"index {root}: {items_file.name} has {len(lines)} rows, the manifest says {manifest['count']}")
        index.vectors, index.items = vectors, [json.loads(line) for line in lines]
        if "faiss" in files:
            backend = make_backend(index._spec, index.dim, device, stored=lambda: index.vectors)
            backend.deserialize(np.load(root / files["faiss"], allow_pickle=False))
            index._backend = backend
        return index

    def checkpoint_for(self, override: str | Path | None = None) -> str:
        """The checkpoint to encode queries with: `override`, else the manifest's (found or a one-line error)."""
        if override:
            return str(override)
        if not Path(self.checkpoint).is_file():
            raise UserError(f"the index's checkpoint {self.checkpoint} was not found (neither at its absolute path "
                            "nor relative to the index folder); pass --checkpoint CKPT")
        return str(self.checkpoint)

    # -- building from data ---------------------------------------------------------------------
    @classmethod
    def build(cls, retriever: Retriever, data: str | Path, split: str = "test", *, kind: str = "images",
              dtype: str = "float32", backend: str | BackendSpec = "auto", name: str | None = None,
              batch_size: int = 128, work_dir: str | Path | None = None, progress: bool = True) -> "Index":
        """Encode every image (or caption) of a precomp split once into a new index.

        With `work_dir` (the index folder), finished chunks are kept in ``work_dir/.partial`` and
        reused by a rerun with the same checkpoint and data, so a long build resumes.
        """
        retriever.require_two_tower("be indexed")
        index = cls.empty_for(retriever, kind, dtype, backend)
        index.add_split(retriever, data, split, name=name, batch_size=batch_size, work_dir=work_dir, progress=progress)
        return index

    @classmethod
    def empty_for(cls, retriever: Retriever, kind: str = "images", dtype: str = "float32",
                  backend: str | BackendSpec = "auto") -> "Index":
        """An empty index for `retriever`'s embeddings (dimension probed with one caption)."""
        retriever.require_two_tower("be indexed")
        dim = int(retriever.encode_texts(["a"]).shape[1])
        return cls(kind, retriever.name, str(retriever.checkpoint), retriever.sha256, dim, dtype, backend,
                   str(retriever.device))

    def add_split(self, retriever: Retriever, data: str | Path, split: str = "test", *, name: str | None = None,
                  batch_size: int = 128, work_dir: str | Path | None = None, progress: bool = True,
                  rank: int = 0, world: int = 1, chunk: int | None = None) -> int | None:
        """Append every image (images index) or caption (captions index) of a split; returns the count added.

        Under torchrun (`rank` of `world`) the image chunks are shared out over the ranks
        (`encode_resumable`); only rank 0 adds them and returns the count (the others return None)."""
        self.check_model(retriever)
        precomp = resolve_precomp_dir(data, name)
        source = load_split(precomp, split, feature_dim=None, dev_max_images=None)
        if self.kind == "captions":
            if rank != 0:
                return None
            vectors = retriever.encode_texts(source.captions, batch_size, progress)
            items = caption_items(source)
        else:
            vectors = encode_resumable(retriever, source, batch_size, work_dir, progress, rank, world, chunk)
            if vectors is None:
                return None
            items = image_items(source)
        self.add(vectors, items)
        return len(items)

    def add_captions(self, retriever: Retriever, captions: Sequence[str], source: str, batch_size: int = 128,
                     progress: bool = True) -> int:
        """Append a caption bank given as strings (e.g. a text file, one caption a line)."""
        self.check_model(retriever)
        if self.kind != "captions":
            raise UserError("captions can only be added to a captions index (build it with --captions)")
        start = self.count
        self.add(retriever.encode_texts(captions, batch_size, progress),
                 [{"caption": start + j, "text": text, "source": source} for j, text in enumerate(captions)])
        return len(captions)


def read_manifest(root: Path) -> dict[str, Any]:
    """The manifest of an index folder, checked for the keys and format this code reads."""
    file = root / MANIFEST
    if not file.is_file():
        raise UserError(f"index {root}: not an index folder ({MANIFEST} not found)")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"index {root}: {MANIFEST} is not valid JSON ({err})") from None
    needed = ("format", "kind", "model", "checkpoint", "checkpoint_sha256", "dim", "count", "dtype", "backend", "checksums")
    missing = [key for key in needed if key not in manifest]
    if missing:
        raise UserError(f"index {root}: {MANIFEST} lacks {', '.join(missing)}")
    if manifest["format"] not in READABLE_FORMATS:
        raise UserError(f"index {root}: format {manifest['format']} is not supported "
                        f"(this code reads {', '.join(map(str, READABLE_FORMATS))})")
    return manifest


def data_files(root: Path, manifest: dict[str, Any]) -> dict[str, str]:
    """Role (vectors, items, faiss) -> file name of the save the manifest describes."""
    if manifest["format"] == 1:
        return {role: name for role, name in DATA_ROLES.items() if role != "faiss" or name in manifest["checksums"]}
    files = manifest.get("files")
    if not isinstance(files, dict) or not {"vectors", "items"} <= set(files) or not set(files) <= set(DATA_ROLES):
        raise UserError(f"index {root}: {MANIFEST} has no valid 'files' entry")
    unchecked = [name for name in files.values() if name not in manifest["checksums"]]
    if unchecked:
        raise UserError(f"index {root}: {MANIFEST} lists {unchecked[0]} without a checksum")
    return dict(files)


def remove_stale_files(root: Path, keep: set[str]) -> None:
    """Delete data files of earlier (or interrupted) saves: anything named like one that `keep` lacks."""
    for file in root.iterdir():
        name = file.name
        is_data = name in DATA_ROLES.values() or any(
            name.startswith(stem + ".") and name.endswith(suffix)
            for stem, suffix in (("vectors", ".npy"), ("items", ".jsonl"), ("faiss", ".index")))
        if is_data and name not in keep and file.is_file():
            file.unlink()


def find_checkpoint(root: Path, manifest: dict[str, Any]) -> str:
    """The manifest's checkpoint as a path that exists from here, if any; else the recorded path.

    Tried in order: the recorded path (absolute since format 2; a format-1 relative path is taken
    from the working directory), the path relative to the index folder (the index and its checkpoint
    moved together), and a format-1 relative path taken from the index folder.
    """
    recorded = str(manifest["checkpoint"])
    candidates = [Path(recorded)]
    relative = manifest.get("checkpoint_relative")
    if relative:
        candidates.append(root / relative)
    if not Path(recorded).is_absolute():
        candidates.append(root / recorded)
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate.resolve()) if not candidate.is_absolute() else str(candidate)
    return recorded


def image_path(split: PrecompSplit, image_id: str) -> str | None:
    """The picture of an image when the dataset keeps it beside the features (SynScenes: images/{id:06d}.png)."""
    if not image_id.isdigit():
        return None
    candidate = split.directory.parent / "images" / f"{int(image_id):06d}.png"
    return str(candidate) if candidate.is_file() else None


def image_items(split: PrecompSplit) -> list[dict[str, Any]]:
    """Row metadata of every image of a split: id, split index, source folder and picture path."""
    items = []
    for i in range(split.n_images):
        image_id = split.ids[i] if split.ids is not None else str(i)
        item = {"id": image_id, "index": i, "split": split.split, "data": str(split.directory)}
        path = image_path(split, image_id)
        if path is not None:
            item["path"] = path
        items.append(item)
    return items


def caption_items(split: PrecompSplit) -> list[dict[str, Any]]:
    """Row metadata of every caption of a split: its text and its image (caption j ↔ image j // 5)."""
    ids = split.ids
    return [{"caption": j, "text": text, "image": int(j) // 5, "image_id": ids[j // 5] if ids else str(j // 5),
             "split": split.split, "data": str(split.directory)} for j, text in enumerate(split.captions)]


def encode_resumable(retriever: Retriever, split: PrecompSplit, batch_size: int, work_dir: str | Path | None,
                     progress: bool, rank: int = 0, world: int = 1, chunk: int | None = None) -> np.ndarray | None:
    """Image embeddings of a split in chunks of `chunk` images (default `BUILD_CHUNK`); with `work_dir`, chunks persist for a resume.

    Under torchrun (`rank` of `world`, `work_dir` required) rank r encodes chunks r, r + world, …
    into the shared ``.partial`` folder; after a barrier rank 0 reads every chunk and returns the
    embeddings (the others return None).  Each chunk is encoded with the same rows and batch size
    as in one process, so the index files are the same."""
    n, chunk = split.n_images, chunk or BUILD_CHUNK
    starts = list(range(0, n, chunk))
    if world > 1 and work_dir is None:
        raise ValueError("a sharded build keeps its chunks in work_dir")
    partial = None if work_dir is None else Path(work_dir) / PARTIAL
    if partial is not None and rank == 0:
        key = {"checkpoint_sha256": retriever.sha256, "data": str(split.directory), "split": split.split, "count": n,
               "chunk": chunk}
        state = partial / "state.json"
        if state.is_file() and json.loads(state.read_text(encoding="utf-8")) != key:
            shutil.rmtree(partial)
        partial.mkdir(parents=True, exist_ok=True)
        write_json(state, key)
    barrier()  # rank 0 has prepared the chunk folder
    chunks = []
    mine = [(number, start) for number, start in enumerate(starts) if number % world == rank]
    for number, start in progress_bar(mine, "encode image chunks", enabled=progress and rank == 0 and len(mine) > 1):
        file = None if partial is None else partial / f"{number:06d}.npy"
        if file is not None and file.is_file():
            chunks.append(np.load(file))
            continue
        rows = range(start, min(n, start + chunk))
        vectors = retriever.encode_images(split, batch_size, progress=progress and rank == 0, indices=rows)
        if file is not None:
            write_npy(file, vectors)
        chunks.append(vectors)
    if world > 1:
        barrier()  # every rank's chunks are on disk
        if rank != 0:
            return None
        chunks = [np.load(partial / f"{number:06d}.npy") for number in range(len(starts))]
    if partial is not None:
        shutil.rmtree(partial)
    return np.concatenate(chunks, axis=0) if chunks else np.zeros((0, 0), np.float32)

