"""Nearest-neighbour backends behind one interface: exact chunked matmul and FAISS flat / IVF / HNSW / IVF-PQ.

l2-normalised embeddings are searched by inner product (= cosine; docs/retrieval.md).  The exact
backend multiplies the queries by the gallery in row chunks (float32 arithmetic even when the
gallery is stored as float16, or memory-mapped from the index folder) and keeps a running top-k, so
memory stays bounded for any gallery.  FAISS (``faiss-cpu``) gives ``flat`` (exact inner product),
``ivf`` (inverted file over k-means cells, ``nprobe`` cells visited per query), ``hnsw`` (graph
search, ``ef_search`` candidates) and ``ivfpq``, the one whose memory stays bounded at 10⁷ × 1,024:

    ivfpq = PCA with a random rotation (d -> `pq_dim`, uncentred so inner products are kept)
            -> inverted file over `nlist` k-means cells -> product quantiser (`pq_m` bytes a row)
            -> the best `rerank` candidates re-scored by exact dot products with the stored rows.

In memory it holds `pq_m` code bytes and an 8-byte id per row plus the centroids (10⁷ rows at the
defaults: 32 + 8 bytes a row = 400 MB, against 41 GB of float32 vectors); the full vectors stay in
the index folder's memory-mapped ``vectors`` file and only the rows of each query's shortlist are
read.  Training follows the FAISS guidelines: k-means over a random sample of the first rows added
(`train_size`, default 40 points per cell: FAISS warns below 39), not over the whole gallery.

`choose_backend` picks by gallery size: exact up to `AUTO_EXACT_MAX` items (exact matmul search is
the reference up to about 10⁶ items), IVF-PQ above; any backend can be forced.  Every backend
returns (scores, ids) arrays of shape (Q, k), best first; ids are gallery rows; rows missing because
the gallery holds fewer than k items (or an approximate search found fewer) have id -1.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Callable, Protocol

import numpy as np
import torch

from shared.errors import UserError

BACKENDS = ("exact", "flat", "ivf", "hnsw", "ivfpq")
AUTO_EXACT_MAX = 1_000_000  # exact matmul up to ~10⁶ items; beyond, IVF-PQ (ours: bounded memory, see above)
TRAIN_PER_CELL = 40  # k-means training points per IVF cell (FAISS: at least 39, 30-256 recommended)
PCA_TRAIN_MAX = 32_768  # ours: rows for the PCA (a 1,024-d covariance is well estimated from far fewer)
PQ_TRAIN_MAX = 16_384  # ours: product-quantiser training rows (64 per code word; more only slows training)
KMEANS_ITERATIONS = 10  # ours: k-means iterations for the coarse quantiser and the PQ code books
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
    pq_dim: int = 0  # IVF-PQ: PCA output dimension; 0 = min(d, 256) (ours: 4x less work for 1,024-d rows)
    pq_m: int = 0  # IVF-PQ: code bytes a row; 0 = pq_dim / 8 (8-d sub-vectors, 8 bits each)
    rerank: int = 100  # IVF-PQ: shortlist re-scored by exact dot products (ours; at least k)
    train_size: int = 0  # IVF-PQ: training sample; 0 = 40 per cell (FAISS guideline)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "BackendSpec":
        return cls(**data)

    def validate(self) -> "BackendSpec":
        """One-line error for a parameter no backend can use (the command-line flags land here)."""
        for name in ("nlist", "pq_dim", "pq_m", "train_size"):
            if getattr(self, name) < 0:
                raise UserError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be 0 (automatic) or positive")
        for name in ("nprobe", "hnsw_m", "ef_construction", "ef_search", "rerank"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be at least 1")
        return self


def choose_backend(count: int, override: str = "auto") -> str:
    """The backend kind for a gallery of `count` items: `override` unless it is ``auto``."""
    if override == "auto":
        return "exact" if count <= AUTO_EXACT_MAX else "ivfpq"
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
                block = _tensor(chunk[start : start + self.chunk_rows]).to(self.device)
                local = torch.topk(q @ block.float().T, min(k, block.shape[0]), dim=1, sorted=False)
                merged = torch.cat([best_scores, local.values], dim=1)
                merged_ids = torch.cat([best_ids, local.indices + (offset + start)], dim=1)
                top = torch.topk(merged, min(k, merged.shape[1]), dim=1, sorted=True)
                best_scores, best_ids = top.values, torch.gather(merged_ids, 1, top.indices)
            offset += len(chunk)
        return _pad(best_scores.cpu().numpy(), best_ids.cpu().numpy(), k)


class FaissBackend:
    """FAISS inner-product index: ``flat``, ``ivf``, ``hnsw`` or ``ivfpq`` (trained on the first rows added).

    `stored` returns the gallery rows added so far (an array or a memory map); ``ivfpq`` re-ranks its
    shortlist with them.  Without it (a bare backend), ``ivfpq`` returns its approximate scores.
    """

    def __init__(self, dim: int, spec: BackendSpec, stored: Callable[[], np.ndarray] | None = None) -> None:
        import faiss

        self.faiss, self.dim, self.spec, self.stored = faiss, int(dim), spec, stored
        self.index = None

    def _create(self, vectors: np.ndarray):
        faiss, spec = self.faiss, self.spec
        if spec.kind == "ivfpq":
            return self._create_ivfpq(vectors)
        first = np.ascontiguousarray(vectors, dtype=np.float32)
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

    def _create_ivfpq(self, vectors: np.ndarray):
        """PCA (uncentred, rotated) -> IVF -> PQ, trained on a random sample of `vectors` (module doc)."""
        faiss, spec = self.faiss, self.spec
        shape = ivfpq_shape(self.dim, len(vectors), spec)
        parts = [f"IVF{shape['nlist']}", f"PQ{shape['pq_m']}x{shape['pq_bits']}"]
        if shape["pq_dim"] < self.dim:
            parts.insert(0, f"PCAR{shape['pq_dim']}")
        index = faiss.index_factory(self.dim, ",".join(parts), faiss.METRIC_INNER_PRODUCT)
        sample = np.ascontiguousarray(vectors[training_rows(len(vectors), shape["train_size"])], dtype=np.float32)
        if shape["pq_dim"] < self.dim:
            # PCA of {x, -x}: zero mean, so the projection keeps inner products (no centring bias)
            head = sample[:PCA_TRAIN_MAX]
            faiss.downcast_VectorTransform(index.chain.at(0)).train(np.concatenate([head, -head]))
        ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
        ivf.cp.niter = KMEANS_ITERATIONS
        ivf.pq.cp.niter = KMEANS_ITERATIONS
        ivf.pq.cp.max_points_per_centroid = max(1, PQ_TRAIN_MAX // (1 << shape["pq_bits"]))
        index.train(sample)
        return index

    def add(self, vectors: np.ndarray) -> None:
        if self.index is None and len(vectors):
            self.index = self._create(vectors)  # trained on these rows (IVF-PQ: on a sample of them)
        for start in range(0, len(vectors), EXACT_CHUNK_ROWS):  # float32 copies one chunk at a time
            self.index.add(np.ascontiguousarray(vectors[start : start + EXACT_CHUNK_ROWS], dtype=np.float32))

    def _ivf(self):
        return self.faiss.extract_index_ivf(self.index)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.index is None:
            return _pad(np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64), k)
        if self.spec.kind in ("ivf", "ivfpq"):
            ivf = self._ivf()
            ivf.nprobe = min(self.spec.nprobe, ivf.nlist)
        elif self.spec.kind == "hnsw":
            self.index.hnsw.efSearch = max(self.spec.ef_search, k)
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if self.spec.kind == "ivfpq" and self.stored is not None:
            _, shortlist = self.index.search(q, max(k, self.spec.rerank))
            return rerank_exact(q, shortlist, self.stored(), k)
        scores, ids = self.index.search(q, k)
        return scores.astype(np.float32), ids.astype(np.int64)

    def serialize(self) -> np.ndarray:
        """The FAISS index as bytes (uint8 array), for saving beside the vectors."""
        return self.faiss.serialize_index(self.index)

    def deserialize(self, blob: np.ndarray) -> None:
        self.index = self.faiss.deserialize_index(np.asarray(blob, dtype=np.uint8))


def ivfpq_shape(dim: int, count: int, spec: BackendSpec) -> dict[str, int]:
    """The IVF-PQ sizes for `count` training candidates: PCA dimension, cells, code bytes, bits, sample.

    Small galleries get fewer cells (`ivf_cells`) and fewer bits per code (at least 39 training
    points per code word), so a toy index trains without FAISS warnings.
    """
    pq_dim = min(dim, spec.pq_dim or 256)
    pq_m = spec.pq_m or max(1, pq_dim // 8)
    if pq_dim % pq_m:
        raise UserError(f"--pq-m {pq_m} must divide the PCA dimension {pq_dim}")
    nlist = ivf_cells(count, spec.nlist)
    train_size = min(count, spec.train_size or max(TRAIN_PER_CELL * nlist, 39 * 256))
    pq_bits = int(max(1, min(8, math.floor(math.log2(max(2, train_size // 39))))))
    return {"pq_dim": pq_dim, "pq_m": pq_m, "nlist": nlist, "pq_bits": pq_bits, "train_size": train_size}


def training_rows(count: int, size: int, seed: int = 0) -> np.ndarray:
    """Sorted row numbers of a reproducible random training sample of `size` out of `count`."""
    if size >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, size, replace=False))


def rerank_exact(queries: np.ndarray, shortlist: np.ndarray, stored: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Re-score each query's shortlist (Q, R) with exact dot products against `stored` rows; keep the top k.

    Only the shortlisted rows are read (from an array or a memory map), once each, in file order.
    """
    valid = shortlist >= 0
    rows = np.unique(shortlist[valid])
    vectors = np.asarray(stored[rows], dtype=np.float32)  # (U, d): the union of the shortlists
    position = np.searchsorted(rows, np.where(valid, shortlist, rows[0] if len(rows) else 0))
    scores = np.einsum("qd,qrd->qr", queries, vectors[position]) if len(rows) else np.zeros(shortlist.shape, np.float32)
    scores = np.where(valid, scores, -np.inf).astype(np.float32)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    best_scores = np.take_along_axis(scores, order, axis=1)
    best_ids = np.where(np.isfinite(best_scores), np.take_along_axis(shortlist, order, axis=1), -1)
    return _pad(best_scores, best_ids.astype(np.int64), k)


def ivf_cells(count: int, requested: int) -> int:
    """IVF cell count: `requested`, or 4·√N; never more than N / 39 (FAISS wants ≥ 39 points per cell)."""
    wanted = requested if requested > 0 else int(4 * math.sqrt(max(count, 1)))
    return max(1, min(wanted, count // 39))


def make_backend(spec: BackendSpec, dim: int, device: str | torch.device = "cpu",
                 stored: Callable[[], np.ndarray] | None = None) -> Backend:
    """A fresh backend for `spec` (vectors are added by the index; `stored` gives them back for re-ranking)."""
    if spec.kind == "exact":
        return ExactBackend(device)
    if spec.kind in ("flat", "ivf", "hnsw", "ivfpq"):
        return FaissBackend(dim, spec, stored)
    raise UserError(f"backend {spec.kind!r}: expected one of {', '.join(BACKENDS)}")


def _tensor(rows: np.ndarray) -> torch.Tensor:
    """`rows` as a tensor without a copy; a read-only memory map (a loaded index) is only read."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(rows))


def _pad(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad (Q, k') results to (Q, k) with score -inf and id -1."""
    missing = k - scores.shape[1]
    if missing <= 0:
        return scores.astype(np.float32), ids.astype(np.int64)
    q = scores.shape[0]
    return (np.concatenate([scores, np.full((q, missing), -np.inf, np.float32)], axis=1).astype(np.float32),
            np.concatenate([ids, np.full((q, missing), -1, np.int64)], axis=1))
