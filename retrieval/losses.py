"""Ranking losses of the retrieval models: VSE++ max-of-hinges triplet and the IMC loss.

* `triplet_ranking_loss` — bidirectional hinge triplet (docs/retrieval.md; VSE++, Faghri et al.):
  margin 0.2, hardest in-batch negative per anchor (max of hinges) or the sum over negatives
  (sum of hinges, used for the 3SHNet code's first-epoch warm-up, decision 'hardest negatives').
* `intra_modal_constraint` — IMC(V) of the IMC thesis (Chen 2023) Eq. 5.4 with three band readings
  (decision 'IMC band'): ``band="push"`` (the default: §5.1 / Fig. 5.1 — intra-modal negatives whose
  distance δ lies in the band (μ_down, μ_up) are pushed apart, Σ (μ_up − δ)), ``band="code"`` (the
  authors' public code: cosine-similarity band, or row-normalised distances with row-0 rank-quantile
  thresholds) and ``band="literal"`` (Eq. 5.4 as printed: Σ δ over the band, which pulls pairs together).  Both directions of each pair count, masks carry no
  gradient, captions of the same image are not masked (the authors' code).
* `RankingLoss` — the module every model uses: MH (or SH) + λ·IMC(I) + λ·IMC(T) (Eq. 5.3), with λ = 0
  reproducing plain MH exactly.
* `ExtraScores` — HiRE's extra cross-modal negatives (the thesis §7.5.1, "we also add some negative
  samples from another modality for each query with the same number as the batch size"): the scores of
  each in-batch anchor against K items of the other modality drawn from outside the batch
  (`retrieval.data.negatives`), appended to the anchor's negatives by `RankingLoss.from_scores`.

Negatives across ranks.  Under DDP (``torchrun``) each rank gathers the embeddings of every rank with
`shared.distributed.all_gather_with_grad` and scores its *local* anchors against the *global* batch:
image anchors against all captions, caption anchors against all images, and the IMC terms of its
local items against all items of the same modality.  The sum of the ranks' losses is therefore the
single-process loss of the global batch (anchors split across ranks); gradients flow back to the rank
that produced each embedding, and DDP's gradient averaging divides the result by the world size
(a constant factor).  In a single process the gather is the identity.  Every rank must hold the same
number of pairs (use ``drop_last=True``).  The code band of IMC with L1/L2/MSD takes its quantile
thresholds from the first *local* row, so under DDP it differs slightly from one process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from shared.config import bounded, from_dict
from shared.distributed import all_gather_concat, all_gather_with_grad

IMC_MEASURES = ("cosine", "l1", "l2", "msd")
IMC_BANDS = ("push", "code", "literal")


def _rank_offset(local: int, gathered: int) -> int:
    """Index of this rank's first row inside a gathered tensor (0 without a process group)."""
    if gathered == local:
        return 0
    return torch.distributed.get_rank() * local


def _positive_mask(local: int, total: int, offset: int, device: torch.device,
                   ids: torch.Tensor | None = None, all_ids: torch.Tensor | None = None) -> torch.Tensor:
    """(local, total) bool: True where column j is a positive of anchor i (its own pair, or the same image)."""
    rows = torch.arange(local, device=device)
    mask = torch.zeros(local, total, dtype=torch.bool, device=device)
    mask[rows, rows + offset] = True
    if ids is not None and all_ids is not None:
        mask |= ids.view(-1, 1) == all_ids.view(1, -1)
    return mask


def hinge_costs(scores: torch.Tensor, positive_scores: torch.Tensor, positives: torch.Tensor,
                margin: float, hardest: bool) -> torch.Tensor:
    """Σ_anchors of [margin − s(a, p) + s(a, n)]_+ over negatives n (max over n if `hardest`).

    `scores` (A, C) anchor × candidate, `positive_scores` (A,) the anchor's positive score,
    `positives` (A, C) bool marks candidates that are not negatives.
    """
    cost = (margin + scores - positive_scores.view(-1, 1)).clamp(min=0).masked_fill(positives, 0.0)
    return cost.max(dim=1).values.sum() if hardest else cost.sum()


def triplet_ranking_loss(images: torch.Tensor, texts: torch.Tensor, margin: float = 0.2, hardest: bool = True,
                         image_ids: torch.Tensor | None = None, gather: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Bidirectional triplet loss (VSE++ Eq. 4–5) of aligned (B, D) embeddings; returns (i2t, t2i) costs.

    Row i of `images` is paired with row i of `texts`; the score is the dot product (cosine for
    l2-normalised embeddings).  With `image_ids` every caption/image of the same image id is
    excluded from the negatives (optional false-negative masking, our reading).
    """
    all_texts = all_gather_with_grad(texts) if gather else texts
    all_images = all_gather_with_grad(images) if gather else images
    local = images.shape[0]
    offset = _rank_offset(local, all_images.shape[0])
    all_ids = None
    if image_ids is not None:
        all_ids = all_gather_concat(image_ids) if gather else image_ids
    positives = _positive_mask(local, all_images.shape[0], offset, images.device, image_ids, all_ids)
    diagonal = (images * texts).sum(dim=1)
    i2t = hinge_costs(images @ all_texts.T, diagonal, positives, margin, hardest)
    t2i = hinge_costs(texts @ all_images.T, diagonal, positives, margin, hardest)
    return i2t, t2i


def pairwise_distance(local: torch.Tensor, others: torch.Tensor, measure: str) -> torch.Tensor:
    """δ(v_n, v_m) of Eq. 5.5–5.8 for every local row against every row of `others` (Eq. 5.8 read as Euclidean)."""
    if measure == "cosine":
        return 1.0 - F.normalize(local, dim=1) @ F.normalize(others, dim=1).T
    if measure == "l1":
        return torch.cdist(local, others, p=1)
    if measure == "l2":
        return torch.cdist(local, others, p=2)
    if measure == "msd":
        return torch.cdist(local, others, p=2).pow(2)
    raise ValueError(f"unknown IMC measure {measure!r} (choose from {', '.join(IMC_MEASURES)})")


def intra_modal_constraint(local: torch.Tensor, others: torch.Tensor | None = None, measure: str = "l1",
                           band: str = "push", mu_down: float = 0.05, mu_up: float = 0.5) -> torch.Tensor:
    """IMC(V) of Eq. 5.4 without λ, for the local rows of one modality against `others` (default: themselves).

    ``band="push"`` (the IMC thesis §5.1, Fig. 5.1: the loss "increases the intra-modal non-pair
      distance" and counts only pairs "within the boundaries"): keep μ_down < δ < μ_up among pairs
      m ≠ n and return Σ (μ_up − δ)·keep — a hinge that pushes each in-band negative out to μ_up;
      pairs closer than μ_down (near-duplicates) and farther than μ_up are left alone.

    ``band="code"`` (the IMC thesis (Chen 2023) and its public code CanonChen/IMC, ``IntraLoss``):
      cosine — C = cos − I, keep μ_up < C < 1 − μ_down, return Σ C·keep / B (minimising pushes
      in-band pairs apart); l1/l2/msd — S = D with each row scaled to unit L2 norm, thresholds are
      the values of row 0 at sorted positions round(μ_down·N) and round(μ_up·N), keep s_down < S < s_up,
      return Σ S·keep / B (minimising pulls in-band neighbours together, as the code does).
    ``band="literal"``: Eq. 5.4 as printed — keep μ_down < δ < μ_up among pairs m ≠ n and return Σ δ·keep
      (no division; only meaningful for the cosine distance, whose range is [0, 2]).
    """
    others = local if others is None else others
    count, total = local.shape[0], others.shape[0]
    offset = _rank_offset(count, total)
    self_pairs = _positive_mask(count, total, offset, local.device)
    if band in ("literal", "push"):
        delta = pairwise_distance(local, others, measure)
        with torch.no_grad():
            keep = (delta > mu_down) & (delta < mu_up) & ~self_pairs
        return (delta * keep).sum() if band == "literal" else ((mu_up - delta) * keep).sum()
    if band != "code":
        raise ValueError(f"unknown IMC band {band!r} (choose from {', '.join(IMC_BANDS)})")
    if measure == "cosine":
        sims = local @ others.T - self_pairs.to(local.dtype)
        with torch.no_grad():
            keep = (sims > mu_up) & (sims < 1.0 - mu_down)
        return (sims * keep).sum() / count
    scaled = F.normalize(pairwise_distance(local, others, measure), dim=1)
    with torch.no_grad():
        row = scaled[0].sort().values
        s_down = row[min(round(mu_down * total), total - 1)]
        s_up = row[min(round(mu_up * total), total - 1)]
        keep = (scaled > s_down) & (scaled < s_up)
    return (scaled * keep).sum() / count


class ExtraScores(NamedTuple):
    """Scores of the in-batch anchors against extra negatives of the other modality (the thesis §7.5.1).

    `i2t` (B, K): image anchor i against extra caption k; `t2i` (B, K'): caption anchor j against extra
    image k.  `text_image_ids` (K,) / `image_ids` (K',) are the image ids of the extras: an extra whose
    id equals the anchor's image id is a positive and is never counted as a negative (the sampler
    never draws one; the mask keeps the loss right for any caller).  A named tuple, so DDP finds its
    tensors in the model's outputs.
    """

    i2t: torch.Tensor
    t2i: torch.Tensor
    text_image_ids: torch.Tensor | None = None
    image_ids: torch.Tensor | None = None


def _with_extra(scores: torch.Tensor, positives: torch.Tensor, extra: torch.Tensor,
                anchor_ids: torch.Tensor | None, extra_ids: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """`scores` / `positives` (A, C) with the (A, K) extra columns appended (positives: same image id)."""
    same = torch.zeros(extra.shape, dtype=torch.bool, device=extra.device)
    if anchor_ids is not None and extra_ids is not None:
        same = anchor_ids.view(-1, 1) == extra_ids.view(1, -1)
    return torch.cat([scores, extra.to(scores.dtype)], dim=1), torch.cat([positives, same], dim=1)


@dataclass(frozen=True)
class IMCSettings:
    """λ, δ and band of the IMC term (the IMC thesis (Chen 2023): λ = 1, 0.05 / 0.5; the band of §5.1 /
    Fig. 5.1 by default (decision 'IMC band'), the authors' code band and Eq. 5.4 as printed as options)."""

    lam: float = 1.0
    measure: str = "l1"
    band: str = "push"
    mu_down: float = 0.05
    mu_up: float = 0.5

    def __post_init__(self) -> None:
        if self.measure not in IMC_MEASURES:
            raise ValueError(f"IMC measure {self.measure!r} not in {IMC_MEASURES}")
        if self.band not in IMC_BANDS:
            raise ValueError(f"IMC band {self.band!r} not in {IMC_BANDS}")
        if not 0.0 <= self.mu_down < self.mu_up:
            raise ValueError(f"IMC band needs 0 <= mu_down < mu_up, got {self.mu_down}, {self.mu_up}")


@dataclass(frozen=True)
class LossConfig:
    """The ``loss:`` section: the triplet's margin and negatives, and the optional IMC term."""

    margin: float = bounded(0.2, minimum=0.0)
    hardest: bool = True
    warmup_sum_epochs: int = bounded(0, minimum=0, doc="epochs of sum of hinges before hardest negatives")
    mask_same_image: bool = False
    imc: IMCSettings | None = None
    #: HiRE's extra cross-modal negatives per anchor (the thesis §7.5.1): "batch" = train.batch_size, an
    #: integer K, or 0 (in-batch negatives only).  Drawn by the training loader (`retrieval.data.negatives`).
    extra_negatives: int | Literal["batch"] = bounded(0, minimum=0)


class RankingLoss(nn.Module):
    """MH (hardest negatives) or SH triplet + optional IMC, gathered across ranks (module docstring).

    `warmup_sum_epochs` epochs use the sum of hinges before switching to hardest negatives
    (the public 3SHNet code, ``vse_mean_warmup_epochs=1``); call `set_epoch` every epoch.
    Returns named terms: ``rank_i2t``, ``rank_t2i``, ``rank`` and, with IMC, the unweighted
    ``imc_image`` / ``imc_text`` plus ``imc`` = λ·(IMC(I) + IMC(T)).
    """

    def __init__(self, margin: float = 0.2, hardest: bool = True, warmup_sum_epochs: int = 0,
                 imc: IMCSettings | None = None, mask_same_image: bool = False,
                 extra_negatives: int | str = 0) -> None:
        super().__init__()
        self.margin, self.hardest, self.warmup_sum_epochs = margin, hardest, warmup_sum_epochs
        self.imc, self.mask_same_image = imc, mask_same_image
        self.extra_negatives = extra_negatives
        self.epoch = 0

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> "RankingLoss":
        """Build from a config ``loss:`` section read strictly into `LossConfig` (omitted keys: defaults)."""
        c = from_dict(LossConfig, dict(config or {}), "loss", partial=True)
        return cls(c.margin, c.hardest, c.warmup_sum_epochs, c.imc, c.mask_same_image, c.extra_negatives)

    def extra_negative_count(self, batch_size: int) -> int:
        """K, the extra cross-modal negatives per anchor: ``"batch"`` → `batch_size` (the thesis §7.5.1)."""
        return int(batch_size) if self.extra_negatives == "batch" else int(self.extra_negatives)

    def set_epoch(self, epoch: int) -> None:
        """Select sum-of-hinges during the warm-up epochs, hardest negatives afterwards."""
        self.epoch = epoch

    @property
    def uses_hardest(self) -> bool:
        """Hardest negatives this epoch (False during the sum-of-hinges warm-up)."""
        return self.hardest and self.epoch >= self.warmup_sum_epochs

    def forward(self, images: torch.Tensor, texts: torch.Tensor,
                image_ids: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Named loss terms of aligned (B, D) image / caption embeddings (Eq. 5.3; §1.6)."""
        ids = image_ids if self.mask_same_image else None
        i2t, t2i = triplet_ranking_loss(images, texts, self.margin, self.uses_hardest, ids)
        out = {"rank_i2t": i2t, "rank_t2i": t2i, "rank": i2t + t2i}
        if self.imc is not None:
            s = self.imc
            imc_image = intra_modal_constraint(images, all_gather_with_grad(images), s.measure, s.band, s.mu_down, s.mu_up)
            imc_text = intra_modal_constraint(texts, all_gather_with_grad(texts), s.measure, s.band, s.mu_down, s.mu_up)
            out.update(imc_image=imc_image, imc_text=imc_text, imc=s.lam * imc_image + s.lam * imc_text)
        return out

    def from_scores(self, scores: torch.Tensor, image_ids: torch.Tensor | None = None,
                    images: torch.Tensor | None = None, texts: torch.Tensor | None = None,
                    extra: ExtraScores | None = None) -> dict[str, torch.Tensor]:
        """Named loss terms of a (B, B) in-batch score matrix of a pairwise model (row i = image i,
        column j = caption j, pair i ↔ i), the same triplet as `forward` (VSE++ Eq. 4–5; HiRE Eq. 7.13).

        Pairwise scores cannot be gathered across ranks (the features are variable-length), so under
        DDP each rank's negatives are its local batch.  `extra` appends each anchor's extra cross-modal
        negatives (the thesis §7.5.1) to its in-batch ones: the sum (or the hardest) then runs over
        B − 1 + K negatives.  IMC (Eq. 5.4) needs per-item vectors: pass the model's pooled `images` /
        `texts` (B, D) to add it.
        """
        ids = image_ids if self.mask_same_image else None
        local = scores.shape[0]
        positives = _positive_mask(local, scores.shape[1], 0, scores.device, ids, ids)
        diagonal = scores.diagonal()
        i2t_scores, i2t_positives, t2i_scores, t2i_positives = scores, positives, scores.T, positives.T
        if extra is not None:
            i2t_scores, i2t_positives = _with_extra(scores, positives, extra.i2t, image_ids, extra.text_image_ids)
            t2i_scores, t2i_positives = _with_extra(scores.T, positives.T, extra.t2i, image_ids, extra.image_ids)
        i2t = hinge_costs(i2t_scores, diagonal, i2t_positives, self.margin, self.uses_hardest)
        t2i = hinge_costs(t2i_scores, diagonal, t2i_positives, self.margin, self.uses_hardest)
        out = {"rank_i2t": i2t, "rank_t2i": t2i, "rank": i2t + t2i}
        if self.imc is not None and images is not None and texts is not None:
            s = self.imc
            imc_image = intra_modal_constraint(images, None, s.measure, s.band, s.mu_down, s.mu_up)
            imc_text = intra_modal_constraint(texts, None, s.measure, s.band, s.mu_down, s.mu_up)
            out.update(imc_image=imc_image, imc_text=imc_text, imc=s.lam * imc_image + s.lam * imc_text)
        return out

    def total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """The optimised ranking objective: rank (+ λ-weighted IMC)."""
        return terms["rank"] + terms["imc"] if "imc" in terms else terms["rank"]
