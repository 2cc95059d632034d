"""Interpretability exports of trained retrieval models as JSON: `retrieval explain`.

For each selected image of a split:

* 3SHNet (docs/retrieval.md; the thesis Eq. 8.1–8.10): every region (or grid cell) with its box
  (from ``{split}_boxes.npy`` when present), its VSeM salience α_i (Eq. 8.2–8.3) and the five
  VSpM attention cells with the largest β_ij (Eq. 8.7–8.9) as (row, col) on the downsampled
  segmentation map (cell (r, c) starts at pixel (r·stride, c·stride) of the 64 × 64 map), regions
  sorted by α (largest first).
* SMFEA (docs/retrieval.md; the thesis Eq. 6.12–6.13): the VCS-Tree's predicted label of each of
  the 7 referral-tree nodes (argmax of the node classifier, decoded through the parse cache's
  dictionaries, with its softmax probability) and, for each of the image's 5 captions, the TCS-Tree's
  predicted nodes beside the ground-truth labels of the parse cache (when the split was parsed).
* HSLM (docs/retrieval.md; HSLM paper Eq. 16, 21): for each of the image's 5 captions, every word with its
  SAF gate (the word's weight in the learned similarity), its share of the gated sum and the region it
  attends most (sigmoid cross-attention), plus the global-alignment gate and the pair's score.
* HiRE (docs/retrieval.md; the thesis Eq. 7.6, 7.9): the image's ten strongest VSSG edges with their
  learned, row-normalised weights E_ij, and for each of its 5 captions the pair's score and the five
  word–region pairs with the largest first local–local attention β (i2t: regions over words; t2i:
  words over regions).
* Every exported model: the image's top-5 retrieved captions over the whole split (cosine of the
  model's embeddings, the evaluator's similarity), each flagged when it is one of the image's own.

Every model's tensors come from its ``explain(images, texts)`` through `shared.explain.explain`; models
without one (the VSE++ / VSE∞ baselines, VSR++) are refused by name in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from retrieval.data.pairs import check_image_inputs
from retrieval.data.precomp import load_split, resolve_precomp_dir
from retrieval.explain.common import caption_scores, retrieved_captions, select_images
from retrieval.explain.hire import _explain_hire
from retrieval.explain.hslm import _explain_hslm
from retrieval.explain.shnet import _explain_shnet, shnet_regions
from retrieval.explain.smfea import _explain_smfea
from retrieval.models import load_model
from shared.errors import UserError
from shared.explain import can_explain
from shared.io import write_json

EXPLAINERS: dict[str, Callable[..., tuple[dict[str, Any], list[dict[str, Any]]]]] = {
    "3shnet": _explain_shnet,
    "smfea": _explain_smfea,
    "hslm": _explain_hslm,
    "hire_i2t": _explain_hire,
    "hire_t2i": _explain_hire,
}

__all__ = ["EXPLAINERS", "export_explanations", "shnet_regions"]


def export_explanations(checkpoint: str | Path, data_dir: str | Path, split: str = "test",
                        images: Sequence[int] | None = None, out: str | Path | None = None, name: str | None = None,
                        device: str = "cpu", batch_size: int = 128, progress: bool = True) -> dict[str, Any]:
    """Interpretability export of a 3SHNet or SMFEA checkpoint on `split` (module docstring); JSON to `out`."""
    model, meta, text = load_model(checkpoint, device)
    exporter = EXPLAINERS.get(meta["model"])
    if exporter is None or not can_explain(model):
        raise UserError(f"{checkpoint}: model {meta['model']!r} does not explain its outputs "
                        f"(models that do: {', '.join(sorted(EXPLAINERS))})")
    precomp = resolve_precomp_dir(data_dir, name)
    data = load_split(precomp, split, feature_dim=None, dev_max_images=None)
    where = f"{precomp.path} {split}"
    check_image_inputs(data, model.image_inputs(), where)
    indices = select_images(images, data.n_images, where)
    header, details = exporter(model, data, indices, {"meta": meta, "text": text, "precomp": precomp})
    sims = caption_scores(model, data, indices, text, batch_size, progress)
    report: dict[str, Any] = {"model": meta["model"], "checkpoint": str(checkpoint), "dataset": precomp.name,
                              "split": split, **header, "images": []}
    for row, (i, detail) in enumerate(zip(indices, details)):
        entry: dict[str, Any] = {"index": i}
        if data.ids is not None:
            entry["id"] = data.ids[i]
        entry.update(detail)
        entry["retrieved"] = retrieved_captions(sims[row], i, data.captions)
        report["images"].append(entry)
    if out is not None:
        write_json(out, report)
    return report
