"""Nearest-neighbour backends behind one interface: exact chunked matmul and FAISS flat / IVF / HNSW.

docs/retrieval.md: l2-normalised embeddings are searched by inner product (= cosine).  The
exact backend multiplies the queries by the gallery in row chunks (float32 arithmetic even when the
gallery is stored as float16) and keeps a running top-k, so memory stays bounded for any gallery.
FAISS (``faiss-cpu``) gives ``flat`` (exact inner product), ``ivf`` (inverted file over k-means
cells, ``nprobe`` cells visited per query) and ``hnsw`` (graph search, ``ef_search`` candidates).

`choose_backend` picks by gallery size: exact up to `AUTO_EXACT_MAX` items (the design's "exact
matmul search up to ~10⁶ items"), HNSW above; any backend can be forced.  Every backend returns
(scores, ids) arrays of shape (Q, k), best first; ids are gallery rows; rows missing because the
gallery holds fewer than k items (or an approximate search found fewer) have id -1.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
import torch

from shared.errors import UserError

BACKENDS = ("exact", "flat", "ivf", "hnsw")
AUTO_EXACT_MAX = 1_000_000  # ours: exact matmul up to ~10⁶ items, FAISS beyond (ours: HNSW)
EXACT_CHUNK_ROWS = 65_536  # ours: gallery rows per matmul chunk (256 MiB of 1,024-d float32)


@dataclass(frozen=True)
class BackendSpec:
    """A backend and its parameters (stored in the index manifest)."""

    kind: str = "exact"
    nlist: int = 0  # IVF cells; 0 = 4·√N (FAISS guideline), at most N / 39 so k-means has data
    nprobe: int = 16  # IVF cells visited per query (ours; the bench picks it for recall@10 ≥ 0.98)
    hnsw_m: int = 32  # HNSW graph degree (FAISS default range 16–64)
    ef_construction: int = 80  # HNSW candidates while building
    ef_search: int = 64  # HNSW candidates per query

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "BackendSpec":
        return cls(**data)


def choose_backend(count: int, override: str = "auto") -> str:
    """The backend kind for a gallery of `count` items: `override` unless it is ``auto``."""
    if override == "auto":
        return "exact" if count <= AUTO_EXACT_MAX else "hnsw"
    if override not in BACKENDS:
        raise UserError(f"--backend {override!r}: expected auto or one of {', '.join(BACKENDS)}")
    return override


class Backend(Protocol):
    """What the index asks of a backend."""

    def add(self, vectors: np.ndarray) -> None:
        """Append gallery rows (l2-normalised, float32 or float16)."""

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores float32, ids int64), each (Q, k), best first."""


class ExactBackend:
    """Inner products of the queries with every gallery row, in chunks, on `device` (s = q·v).

    Each chunk keeps only its own top-k before merging with the running top-k, so the extra memory
    is one (Q, chunk) score block.
    """

    def __init__(self, device: str | torch.device = "cpu", chunk_rows: int = EXACT_CHUNK_ROWS) -> None:
        self.device, self.chunk_rows = torch.device(device), int(chunk_rows)
        self.chunks: list[np.ndarray] = []

    def add(self, vectors: np.ndarray) -> None:
        self.chunks.append(np.asarray(vectors))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32)).to(self.device)
        best_scores = torch.full((q.shape[0], 0), -math.inf, device=self.device)
        best_ids = torch.zeros((q.shape[0], 0), dtype=torch.long, device=self.device)
        offset = 0
        for chunk in self.chunks:
            for start in range(0, len(chunk), self.chunk_rows):
                block = torch.from_numpy(np.ascontiguousarray(chunk[start : start + self.chunk_rows])).to(self.device)
                local = torch.topk(q @ block.float().T, min(k, block.shape[0]), dim=1, sorted=False)
                merged = torch.cat([best_scores, local.values], dim=1)
                merged_ids = torch.cat([best_ids, local.indices + (offset + start)], dim=1)
                top = torch.topk(merged, min(k, merged.shape[1]), dim=1, sorted=True)
                best_scores, best_ids = top.values, torch.gather(merged_ids, 1, top.indices)
            offset += len(chunk)
        return _pad(best_scores.cpu().numpy(), best_ids.cpu().numpy(), k)


class FaissBackend:
    """FAISS inner-product index: ``flat``, ``ivf`` (trained on the first rows added) or ``hnsw``."""

    def __init__(self, dim: int, spec: BackendSpec) -> None:
        import faiss

        self.faiss, self.dim, self.spec = faiss, int(dim), spec
        self.index = None

    def _create(self, first: np.ndarray):
        faiss, spec = self.faiss, self.spec
        if spec.kind == "flat":
            return faiss.IndexFlatIP(self.dim)
        if spec.kind == "hnsw":
            index = faiss.IndexHNSWFlat(self.dim, spec.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = spec.ef_construction
            return index
        nlist = ivf_cells(len(first), spec.nlist)
        self.quantizer = faiss.IndexFlatIP(self.dim)  # the IVF index borrows it: keep it alive
        index = faiss.IndexIVFFlat(self.quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(first)
        return index

    def add(self, vectors: np.ndarray) -> None:
        rows = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.index is None:
            self.index = self._create(rows)
        self.index.add(rows)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.index is None:
            return _pad(np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64), k)
        if self.spec.kind == "ivf":
            self.index.nprobe = min(self.spec.nprobe, self.index.nlist)
        elif self.spec.kind == "hnsw":
            self.index.hnsw.efSearch = max(self.spec.ef_search, k)
        scores, ids = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return scores.astype(np.float32), ids.astype(np.int64)

    def serialize(self) -> np.ndarray:
        """The FAISS index as bytes (uint8 array), for saving beside the vectors."""
        return self.faiss.serialize_index(self.index)

    def deserialize(self, blob: np.ndarray) -> None:
        self.index = self.faiss.deserialize_index(np.asarray(blob, dtype=np.uint8))


def ivf_cells(count: int, requested: int) -> int:
    """IVF cell count: `requested`, or 4·√N; never more than N / 39 (FAISS wants ≥ 39 points per cell)."""
    wanted = requested if requested > 0 else int(4 * math.sqrt(max(count, 1)))
    return max(1, min(wanted, count // 39))


def make_backend(spec: BackendSpec, dim: int, device: str | torch.device = "cpu") -> Backend:
    """A fresh backend for `spec` (vectors are added by the index)."""
    if spec.kind == "exact":
        return ExactBackend(device)
    if spec.kind in ("flat", "ivf", "hnsw"):
        return FaissBackend(dim, spec)
    raise UserError(f"backend {spec.kind!r}: expected one of {', '.join(BACKENDS)}")


def _pad(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad (Q, k') results to (Q, k) with score -inf and id -1."""
    missing = k - scores.shape[1]
    if missing <= 0:
        return scores.astype(np.float32), ids.astype(np.int64)
    q = scores.shape[0]
    return (np.concatenate([scores, np.full((q, missing), -np.inf, np.float32)], axis=1).astype(np.float32),
            np.concatenate([ids, np.full((q, missing), -1, np.int64)], axis=1))
