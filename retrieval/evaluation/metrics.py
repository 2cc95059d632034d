"""Retrieval metrics and test protocols (Recall@K and rSum: Ge, 2024, PhD thesis, §2.3.3, Eq. 2.1).

A similarity matrix is (N_img, C·N_img): caption j belongs to image j // C (C = 5 captions per
image).  Ranks come from the shared kernel `shared.metrics.positive_ranks`: image→text takes the
best of an image's C captions, text→image the caption's single image.  Ties are pessimistic: the
rank is the number of negatives scoring >= the best positive, so a tie with a negative is a miss
and a constant (collapsed) matrix scores 0 everywhere (chance or below); the public argsort loop
gives the same ranks when scores are distinct.  A matrix holding NaN or ±inf is refused with a
one-line `UserError` naming its source (`source=`, e.g. the ``.npy`` file).

Metrics per direction: R@K = 100·mean(rank < K) for K = 1, 5, 10; medr = floor(median(rank)) + 1;
meanr = mean(rank) + 1 (the VSE++/SCAN convention with 0-based ranks).  rSum is the sum of the
six recalls (Eq. 2.1); mR = rSum / 6.

Protocols: `f30k` (1,000 images × 5,000 captions), `coco5k` (5,000 × 25,000 in one pass),
`coco1k` (the 5K matrix cut into 5 consecutive folds of 1,000 images / 5,000 captions; every
metric is averaged over the folds and rSum is computed from the averaged recalls, not copied from
the SCAN-lineage print, which shows 2 × the i2t recall sum) and `full` (any N × C·N matrix in one
pass; used for SynScenes and validation subsets).  The thesis reports "5-folder 1K and full 5K
test sets" (thesis §2.3.3).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from shared.errors import UserError
from shared.metrics.ranking import check_finite, positive_ranks

RECALL_KS = (1, 5, 10)
METRIC_KEYS = (
    "i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum",
    "i2t_medr", "i2t_meanr", "t2i_medr", "t2i_meanr",
)
RECALL_KEYS = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10")


@dataclasses.dataclass(frozen=True)
class EvalProtocol:
    """A test protocol: how many images the matrix must have and how many folds to average."""

    name: str
    n_images: int | None  # required image count; None accepts any
    n_folds: int = 1
    captions_per_image: int = 5


PROTOCOLS: dict[str, EvalProtocol] = {
    "f30k": EvalProtocol("f30k", 1000),
    "coco1k": EvalProtocol("coco1k", 5000, n_folds=5),
    "coco5k": EvalProtocol("coco5k", 5000),
    "full": EvalProtocol("full", None),
}


def i2t_positives(n_images: int, captions_per_image: int = 5) -> np.ndarray:
    """(N, C) caption indices of each image: row i = [C·i, …, C·i + C − 1]."""
    return np.arange(n_images * captions_per_image, dtype=np.int64).reshape(n_images, captions_per_image)


def t2i_positives(n_images: int, captions_per_image: int = 5) -> np.ndarray:
    """(C·N,) image index of each caption: j // C."""
    return np.arange(n_images * captions_per_image, dtype=np.int64) // captions_per_image


def rank_summary(ranks: np.ndarray) -> dict[str, float]:
    """R@1/5/10 (percent), medr = floor(median)+1 and meanr = mean+1 of 0-based ranks."""
    ranks = np.asarray(ranks)
    out = {f"r{k}": float(100.0 * np.mean(ranks < k)) for k in RECALL_KS}
    out["medr"] = float(math.floor(np.median(ranks)) + 1)
    out["meanr"] = float(np.mean(ranks) + 1)
    return out


CHUNK_ELEMENTS = 2**22
#: relative score spread at or below which a matrix counts as collapsed (`is_collapsed`; ours): 1e-4
#: is ~840 float32 ulps of the largest score, room for the rounding of embeddings that are equal up
#: to float noise, and orders of magnitude below the spread of any model that ranks (cosine scores
#: of a working model spread over ~0.1-1 of their magnitude)
COLLAPSE_RTOL = 1e-4


def auto_chunk(n_gallery: int) -> int:
    """Query rows per kernel chunk: at most 1,024 and at most 4M scores per chunk (the kernel's
    counting step materialises an int64 copy of the chunk: 32 MB instead of 205 MB on COCO-5K)."""
    return max(1, min(1024, CHUNK_ELEMENTS // max(1, n_gallery)))


def retrieval_ranks(
    sims: np.ndarray | torch.Tensor, captions_per_image: int = 5, chunk_size: int | None = None,
    assume_finite: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """0-based pessimistic (i2t ranks (N,), t2i ranks (C·N,)) of an (N, C·N) matrix via the shared kernel.

    `chunk_size` (query rows per kernel call) defaults to `auto_chunk` of each direction's gallery.
    `assume_finite` skips the kernel's finiteness check (the caller ran `check_finite` on `sims`).
    """
    n_images, n_captions = sims.shape
    if n_captions != captions_per_image * n_images:
        raise UserError(
            f"similarity matrix is {n_images} x {n_captions}; expected {captions_per_image} captions per image "
            f"({n_images} x {captions_per_image * n_images})"
        )
    if not assume_finite:
        check_finite(sims, "similarity matrix")
    i2t = positive_ranks(sims, i2t_positives(n_images, captions_per_image),
                         chunk_size=chunk_size or auto_chunk(n_captions), assume_finite=True)
    t2i = positive_ranks(sims.T, t2i_positives(n_images, captions_per_image),
                         chunk_size=chunk_size or auto_chunk(n_images), assume_finite=True)
    return i2t, t2i


def metrics_from_ranks(i2t_ranks: np.ndarray, t2i_ranks: np.ndarray) -> dict[str, float]:
    """The JSON record (keys `METRIC_KEYS`, recalls in percent) from the two rank vectors."""
    i2t, t2i = rank_summary(i2t_ranks), rank_summary(t2i_ranks)
    out = {f"i2t_r{k}": i2t[f"r{k}"] for k in RECALL_KS}
    out.update({f"t2i_r{k}": t2i[f"r{k}"] for k in RECALL_KS})
    out["rsum"] = rsum(out)
    out.update(i2t_medr=i2t["medr"], i2t_meanr=i2t["meanr"], t2i_medr=t2i["medr"], t2i_meanr=t2i["meanr"])
    return {key: out[key] for key in METRIC_KEYS}


def evaluate_sims(
    sims: np.ndarray | torch.Tensor, captions_per_image: int = 5, chunk_size: int | None = None,
    source: str = "similarity matrix", assume_finite: bool = False,
) -> dict[str, float]:
    """All metrics of one (N, C·N) matrix in one pass (R@K, rSum, medr, meanr).

    A NaN or ±inf score is a one-line `UserError` naming `source` (skipped with `assume_finite`).
    """
    if not assume_finite:
        check_finite(sims, source)
    return metrics_from_ranks(*retrieval_ranks(sims, captions_per_image, chunk_size, assume_finite=True))


def rsum(metrics: dict[str, float]) -> float:
    """rSum = i2t (R@1+R@5+R@10) + t2i (R@1+R@5+R@10), max 600 (Eq. 2.1)."""
    return float(sum(metrics[key] for key in RECALL_KEYS))


def mean_recall(metrics: dict[str, float]) -> float:
    """mR = mean of the six recalls = rSum / 6 (the VSR++ slides' tables)."""
    return rsum(metrics) / len(RECALL_KEYS)


def average_folds(fold_metrics: list[dict[str, float]]) -> dict[str, float]:
    """COCO-1K averaging ("the average results of 5 folds of 1K test images", thesis §2.3.3): mean of
    every metric over the folds, and rSum recomputed from the averaged recalls (equal to the mean of
    per-fold rSums)."""
    if not fold_metrics:
        raise ValueError("average_folds needs at least one fold")
    out = {key: float(np.mean([fold[key] for fold in fold_metrics])) for key in METRIC_KEYS}
    out["rsum"] = rsum(out)
    return out


def resolve_protocol(protocol: str | EvalProtocol) -> EvalProtocol:
    """Look up a protocol by name (`f30k`, `coco1k`, `coco5k`, `full`) or pass one through."""
    if isinstance(protocol, EvalProtocol):
        return protocol
    if protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[protocol]


def protocol_folds(sims: np.ndarray | torch.Tensor, protocol: str | EvalProtocol) -> list[tuple[slice, slice]]:
    """The (image slice, caption slice) of every fold after checking the matrix shape."""
    proto = resolve_protocol(protocol)
    n_images, n_captions = sims.shape
    cpi = proto.captions_per_image
    if proto.n_images is not None and n_images != proto.n_images:
        raise UserError(
            f"protocol {proto.name} needs {proto.n_images} images x {cpi * proto.n_images} captions, "
            f"got a {n_images} x {n_captions} matrix"
        )
    if n_captions != cpi * n_images or n_images % proto.n_folds:
        raise UserError(
            f"protocol {proto.name} needs an N x {cpi}N matrix with N divisible by {proto.n_folds}, "
            f"got {n_images} x {n_captions}"
        )
    size = n_images // proto.n_folds
    return [(slice(f * size, (f + 1) * size), slice(f * size * cpi, (f + 1) * size * cpi)) for f in range(proto.n_folds)]


def evaluate_folds(
    sims: np.ndarray | torch.Tensor, protocol: str | EvalProtocol, chunk_size: int | None = None,
    source: str = "similarity matrix",
) -> list[dict[str, float]]:
    """Per-fold metric records of a protocol (one record unless the protocol has folds).

    The whole matrix must be finite, also outside the fold blocks (one-line `UserError` naming `source`).
    """
    proto = resolve_protocol(protocol)
    folds = protocol_folds(sims, proto)
    check_finite(sims, source)
    return [
        evaluate_sims(sims[rows, cols], proto.captions_per_image, chunk_size, assume_finite=True)
        for rows, cols in folds
    ]


def evaluate_protocol(
    sims: np.ndarray | torch.Tensor, protocol: str | EvalProtocol, chunk_size: int | None = None,
    source: str = "similarity matrix",
) -> dict[str, float]:
    """Metrics of a saved/computed matrix under a protocol; folds averaged as in `average_folds`.

    `source` names the matrix (a file, an epoch's dev split) in the error raised for NaN / ±inf.
    """
    return average_folds(evaluate_folds(sims, protocol, chunk_size, source))


def is_collapsed(lo: float, hi: float, rtol: float = COLLAPSE_RTOL) -> bool:
    """True when every score lies in [lo, hi] with hi - lo <= rtol · max(|lo|, |hi|).

    A model whose embeddings collapsed (every image and every caption mapped to one vector each)
    gives one score for every pair (bitwise equal dot products in practice), while a trained or
    even a freshly initialised model spreads its scores over a sizeable fraction of their
    magnitude.  An all-zero matrix (0 <= 0) is collapsed.  A collapse onto a common score near 0
    can leave rounding noise above the tolerance; such a matrix ranks by noise and scores about
    chance under the pessimistic kernel, so it is not flattered either.  `lo, hi` come from
    `shared.metrics.check_finite` or `score_range`.
    """
    return hi - lo <= rtol * max(abs(lo), abs(hi))


def format_table(metrics: dict[str, float], title: str = "") -> str:
    """A plain-text table of the record (plus mR) for terminals and logs."""
    lines = [title] if title else []
    lines.append(f"{'':6}{'R@1':>8}{'R@5':>8}{'R@10':>8}{'medr':>8}{'meanr':>9}")
    for direction in ("i2t", "t2i"):
        recalls = "".join(f"{metrics[f'{direction}_r{k}']:8.2f}" for k in RECALL_KS)
        lines.append(
            f"{direction:6}{recalls}{metrics[f'{direction}_medr']:8.1f}{metrics[f'{direction}_meanr']:9.2f}"
        )
    lines.append(f"rSum {metrics['rsum']:.2f}   mR {mean_recall(metrics):.2f}")
    return "\n".join(lines)
