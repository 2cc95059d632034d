"""A searchable gallery of two-tower embeddings: build, add, save, load, search (docs/retrieval.md).

An index folder holds

    manifest.json   format, kind (images | captions), model name, checkpoint path and sha256,
                    dimension, count, dtype, backend, sha256 of every other file, code version
    vectors.npy     (count, dim) l2-normalised embeddings, float32 or float16
    items.jsonl     one JSON object per row: id ↔ image path / split index (images) or caption text
    faiss.index     the serialised FAISS index (FAISS backends only)

Every file is written atomically and the manifest last, so an interrupted save leaves either the old
index or a manifest whose checksums expose the mix.  Loading verifies the checksums, shapes and dtype
and searching checks the query model against the manifest; each problem is a one-line `UserError`.
Building encodes each image once, in chunks saved under ``OUT/.partial`` so an interrupted build
resumes where it stopped.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from retrieval.data.precomp import PrecompSplit, load_split, resolve_precomp_dir
from retrieval.search.backends import BackendSpec, choose_backend, make_backend
from retrieval.search.encoder import Retriever, file_sha256
from shared.errors import UserError
from shared.io import atomic_open, write_json, write_npy
from shared.training import progress as progress_bar
from shared.version import __version__

FORMAT = 1
MANIFEST, VECTORS, ITEMS, FAISS_FILE, PARTIAL = "manifest.json", "vectors.npy", "items.jsonl", "faiss.index", ".partial"
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
        if not np.isfinite(vectors).all():
            raise UserError("index add: NaN or inf in the embeddings")
        norms = np.linalg.norm(vectors.astype(np.float32), axis=1)
        if len(norms) and np.abs(norms - 1).max() > NORM_TOLERANCE:
            raise UserError(f"index add: embeddings are not l2-normalised (norm {norms[np.abs(norms - 1).argmax()]:.3f})")
        rows = vectors.astype(self.dtype)
        self.vectors = np.concatenate([self.vectors, rows], axis=0)
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
            self._backend = make_backend(self.backend_spec, self.dim, self.device)
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
    def manifest(self, checksums: dict[str, str]) -> dict[str, Any]:
        return {"format": FORMAT, "kind": self.kind, "model": self.model, "checkpoint": self.checkpoint,
                "checkpoint_sha256": self.checkpoint_sha256, "dim": self.dim, "count": self.count, "dtype": self.dtype,
                "backend": self.backend_spec.to_json(), "requested_backend": self.requested.kind,
                "checksums": checksums, "code_version": __version__}

    def save(self, path: str | Path) -> Path:
        """Write the index folder (vectors, items, FAISS index, then the manifest), each file atomically."""
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        write_npy(out / VECTORS, self.vectors)
        with atomic_open(out / ITEMS, "w", encoding="utf-8") as handle:
            for item in self.items:
                handle.write(json.dumps(item, ensure_ascii=False) + "\n")
        files = [VECTORS, ITEMS]
        if self.backend_spec.kind != "exact" and self.count:
            write_npy(out / FAISS_FILE, self._ready_backend().serialize())
            files.append(FAISS_FILE)
        elif (out / FAISS_FILE).exists():
            (out / FAISS_FILE).unlink()
        write_json(out / MANIFEST, self.manifest({name: file_sha256(out / name) for name in files}))
        return out

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "Index":
        """Read and verify an index folder (checksums, shape, dtype); problems are one-line errors."""
        root = Path(path)
        manifest = read_manifest(root)
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
        index.requested = BackendSpec(**{**manifest["backend"], "kind": manifest.get("requested_backend", "auto")})
        index._spec = spec
        try:
            vectors = np.load(root / VECTORS, allow_pickle=False)
        except (ValueError, OSError) as err:
            raise UserError(f"index {root}: {VECTORS} is not a readable array ({str(err).splitlines()[0]})") from None
        if vectors.shape != (manifest["count"], manifest["dim"]):
            raise UserError(f"index {root}: {VECTORS} has shape {vectors.shape}, the manifest says "
                            f"({manifest['count']}, {manifest['dim']})")
        if str(vectors.dtype) != manifest["dtype"]:
            raise UserError(f"index {root}: {VECTORS} is {vectors.dtype}, the manifest says {manifest['dtype']}")
        lines = (root / ITEMS).read_text(encoding="utf-8").splitlines()
        if len(lines) != manifest["count"]:
            raise UserError(f"index {root}: {ITEMS} has {len(lines)} rows, the manifest says {manifest['count']}")
        index.vectors, index.items = vectors, [json.loads(line) for line in lines]
        if FAISS_FILE in manifest["checksums"]:
            backend = make_backend(index._spec, index.dim, device)
            backend.deserialize(np.load(root / FAISS_FILE, allow_pickle=False))
            index._backend = backend
        return index

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
                  batch_size: int = 128, work_dir: str | Path | None = None, progress: bool = True) -> int:
        """Append every image (images index) or caption (captions index) of a split; returns the count added."""
        self.check_model(retriever)
        precomp = resolve_precomp_dir(data, name)
        source = load_split(precomp, split, feature_dim=None, dev_max_images=None)
        if self.kind == "captions":
            vectors = retriever.encode_texts(source.captions, batch_size, progress)
            items = caption_items(source)
        else:
            vectors = encode_resumable(retriever, source, batch_size, work_dir, progress)
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
    if manifest["format"] != FORMAT:
        raise UserError(f"index {root}: format {manifest['format']} is not supported (this code reads {FORMAT})")
    return manifest


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
                     progress: bool) -> np.ndarray:
    """Image embeddings of a split in chunks of `BUILD_CHUNK`; with `work_dir`, chunks persist for a resume."""
    n = split.n_images
    starts = list(range(0, n, BUILD_CHUNK))
    partial = None if work_dir is None else Path(work_dir) / PARTIAL
    if partial is not None:
        key = {"checkpoint_sha256": retriever.sha256, "data": str(split.directory), "split": split.split, "count": n,
               "chunk": BUILD_CHUNK}
        state = partial / "state.json"
        if state.is_file() and json.loads(state.read_text(encoding="utf-8")) != key:
            shutil.rmtree(partial)
        partial.mkdir(parents=True, exist_ok=True)
        write_json(state, key)
    chunks = []
    for number, start in enumerate(progress_bar(starts, "encode image chunks", enabled=progress and len(starts) > 1)):
        file = None if partial is None else partial / f"{number:06d}.npy"
        if file is not None and file.is_file():
            chunks.append(np.load(file))
            continue
        rows = range(start, min(n, start + BUILD_CHUNK))
        vectors = retriever.encode_images(split, batch_size, progress=progress, indices=rows)
        if file is not None:
            write_npy(file, vectors)
        chunks.append(vectors)
    if partial is not None:
        shutil.rmtree(partial)
    return np.concatenate(chunks, axis=0) if chunks else np.zeros((0, 0), np.float32)

