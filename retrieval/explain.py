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

import numpy as np
import torch
from torch.utils.data import DataLoader

from retrieval.data.pairs import CaptionStream, TextEncoding, check_image_inputs, collate_images, image_item
from retrieval.data.precomp import GRID_SIDE, PrecompDir, PrecompSplit, load_split, resolve_precomp_dir
from retrieval.models import load_model
from retrieval.evaluation.similarity import compute_similarity
from retrieval.parsing.cache import ParseCache
from retrieval.parsing.referral_tree import LEAF_NODES, NULL, NUM_NODES, RELATION_NODES, TreeDictionaries
from shared.errors import UserError
from shared.explain import can_explain, explain
from shared.io import write_json

DEFAULT_IMAGES = 10
TOP_CELLS = 5
TOP_CAPTIONS = 5
TOP_PAIRS = 5   # HiRE word–region pairs per caption
TOP_EDGES = 10  # HiRE VSSG edges per image


def _select_images(images: Sequence[int] | None, n_images: int, where: str) -> list[int]:
    """The requested image indices (default: the first ten), each checked against the split size."""
    if images is None:
        return list(range(min(DEFAULT_IMAGES, n_images)))
    chosen = [int(i) for i in images]
    if not chosen:
        raise UserError(f"--images: no image index given for {where}")
    bad = [i for i in chosen if not 0 <= i < n_images]
    if bad:
        raise UserError(f"--images: index {bad[0]} is out of range for {where} ({n_images} images, 0..{n_images - 1})")
    return chosen


def _image_batch(model: torch.nn.Module, split: PrecompSplit, indices: Sequence[int]) -> dict[str, torch.Tensor]:
    keys = model.image_inputs()
    return collate_images([image_item(split, i, keys) for i in indices])


def caption_scores(model: torch.nn.Module, split: PrecompSplit, indices: Sequence[int], text: TextEncoding,
                   batch_size: int, progress: bool) -> np.ndarray:
    """(len(indices), n_captions) scores of the selected images against every caption of the split,
    with the evaluator's similarity (`retrieval.evaluation.compute_similarity`, docs/retrieval.md)."""
    captions = CaptionStream(split.captions, text)
    loader = DataLoader(captions, batch_size=batch_size, collate_fn=captions.collate)
    images = [_image_batch(model, split, indices[start:start + batch_size])
              for start in range(0, len(indices), batch_size)]
    with torch.inference_mode():
        return compute_similarity(model, images, loader, progress=progress)


def retrieved_captions(row: np.ndarray, index: int, captions: Sequence[str], k: int = TOP_CAPTIONS) -> list[dict[str, Any]]:
    """Top-`k` captions of image `index` by its score row; caption j is ground truth when j // 5 == index (the five captions per image of the F30K / COCO layouts)."""
    order = np.argsort(-row, kind="stable")[:k]
    return [{"caption": int(j), "text": captions[j], "score": float(row[j]), "ground_truth": int(j) // 5 == index}
            for j in order]


def _attention_shape(model: torch.nn.Module, seg_shape: Sequence[int]) -> tuple[int, int]:
    """(H', W') of the VSpM key map: the Conv2d's output size on the (H, W) segmentation map (Eq. 8.5)."""
    conv = model.vspm.conv[0]
    return tuple(int((size + 2 * conv.padding[d] - conv.kernel_size[d]) // conv.stride[d] + 1)
                 for d, size in enumerate(seg_shape))


def shnet_regions(salience: np.ndarray, attention: np.ndarray, map_shape: tuple[int, int],
                  boxes: np.ndarray | None, grid: bool) -> list[dict[str, Any]]:
    """One image's regions sorted by VSeM salience α (Eq. 8.3), each with its top VSpM cells β (Eq. 8.9).

    `salience` (K,), `attention` (K, H'W'), `boxes` (K, 4) or None; grid cells carry their (row, col)
    on the 7 × 7 backbone grid instead of a box.
    """
    width = map_shape[1]
    regions = []
    for k in np.argsort(-salience, kind="stable"):
        top = np.argsort(-attention[k], kind="stable")[:TOP_CELLS]
        entry: dict[str, Any] = {"index": int(k)}
        if grid:
            entry["cell"] = [int(k) // GRID_SIDE, int(k) % GRID_SIDE]
        elif boxes is not None:
            entry["box"] = [float(x) for x in boxes[k]]
        entry["salience"] = float(salience[k])
        entry["attention"] = [{"row": int(c) // width, "col": int(c) % width, "weight": float(attention[k, c])}
                              for c in top]
        regions.append(entry)
    return regions


def _explain_shnet(model: torch.nn.Module, split: PrecompSplit, indices: Sequence[int], context: dict[str, Any]
                   ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    out = explain(model, _image_batch(model, split, indices), None, name="3shnet")
    salience = out["salience"].cpu().numpy()
    attention = out["spatial_attention"].cpu().numpy()
    map_shape = _attention_shape(model, split.seg_maps.shape[1:])
    grid = model.variant == "grid"
    boxes = None if grid or split.boxes is None else split.boxes
    header = {"variant": model.variant, "segmentation_map": list(split.seg_maps.shape[1:]),
              "attention_map": list(map_shape), "attention_stride": list(model.vspm.conv[0].stride),
              "boxes": None if grid else (split.boxes is not None)}
    images = [{"regions": shnet_regions(salience[row], attention[row], map_shape,
                                        None if boxes is None else np.asarray(boxes[i]), grid)}
              for row, i in enumerate(indices)]
    return header, images


def decode_tree(fragment_logits: torch.Tensor, relation_logits: torch.Tensor,
                dictionaries: TreeDictionaries) -> list[dict[str, Any]]:
    """The 7 referral-tree nodes (in-order 1–7) of one tree: argmax label and its softmax probability.

    Leaves 1, 3, 5, 7 use the fragment classifier W_e (Eq. 6.12), nodes 2, 4, 6 the relation classifier
    W_r (Eq. 6.13); class 0 is Null in both dictionaries (decision 'null class').
    """
    nodes: list[dict[str, Any]] = [{} for _ in range(NUM_NODES)]
    for kind, positions, logits, table in (("fragment", LEAF_NODES, fragment_logits, dictionaries.fragments),
                                          ("relation", RELATION_NODES, relation_logits, dictionaries.relations)):
        probs = torch.softmax(logits.float(), dim=-1)
        best, label = probs.max(dim=-1)
        for slot, position in enumerate(positions):
            nodes[position] = {"node": position + 1, "kind": kind, "label": table.labels[int(label[slot])],
                               "probability": float(best[slot])}
    return nodes


def ground_truth_tree(labels: np.ndarray, dictionaries: TreeDictionaries,
                      texts: Sequence[str | None] | None) -> list[dict[str, Any]]:
    """The parse cache's 7 node labels of one caption (0 = null), with the node's surface text when cached."""
    nodes = []
    for position in range(NUM_NODES):
        leaf = position in LEAF_NODES
        table = dictionaries.fragments if leaf else dictionaries.relations
        entry: dict[str, Any] = {"node": position + 1, "kind": "fragment" if leaf else "relation",
                                 "label": table.labels[int(labels[position])]}
        if texts is not None:
            entry["text"] = texts[position]
        nodes.append(entry)
    return nodes


def read_out(nodes: Sequence[dict[str, Any]]) -> str:
    """In-order reading of a decoded tree with Null nodes as ∅ (as `ReferralTree.read_out`)."""
    return " → ".join("∅" if node["label"] == NULL else node["label"] for node in nodes)


def _smfea_cache(precomp: PrecompDir, meta: dict[str, Any], model: torch.nn.Module) -> tuple[ParseCache, TreeDictionaries]:
    """The parse cache the checkpoint was trained with and its dictionaries, checked against the classifiers."""
    backend = (meta["config"].get("data") or {}).get("parser", "spacy")
    cache = ParseCache(precomp, backend)
    dictionaries = cache.load_dictionaries()
    sizes = {"fragments": model.image_tree.fragment_classifier.out_features,
             "relations": model.image_tree.relation_classifier.out_features}
    for kind, classes in sizes.items():
        have = len(getattr(dictionaries, kind))
        if have != classes:
            raise UserError(f"{cache.dictionaries_path}: {have} {kind[:-1]} labels but the checkpoint predicts "
                            f"{classes} classes (re-parse with the dictionaries the model was trained on)")
    return cache, dictionaries


def _explain_smfea(model: torch.nn.Module, split: PrecompSplit, indices: Sequence[int], context: dict[str, Any]
                   ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    cache, dictionaries = _smfea_cache(context["precomp"], context["meta"], model)
    labels_path, trees_path = cache.path(split.split, "tree_labels.npy"), cache.path(split.split, "trees.jsonl")
    labels = cache.load_tree_labels(split.split) if labels_path.is_file() else None
    if labels is not None and len(labels) != split.n_captions:
        raise UserError(f"{labels_path}: {len(labels)} caption labels for {split.n_captions} captions (re-run parse)")
    trees = cache.load_trees(split.split) if labels is not None and trees_path.is_file() else None
    text: TextEncoding = context["text"]
    image_out = explain(model, _image_batch(model, split, indices), None, name="smfea")
    images = []
    for row, i in enumerate(indices):
        visual = decode_tree(image_out["image_fragment_logits"][row], image_out["image_relation_logits"][row],
                             dictionaries)
        first = 5 * i
        captions = split.image_captions(i)
        stream = CaptionStream(captions, text)
        text_out = explain(model, _image_batch(model, split, [i]), stream.collate([stream[j] for j in range(len(stream))]),
                           name="smfea")
        entries = []
        for c, caption in enumerate(captions):
            predicted = decode_tree(text_out["text_fragment_logits"][c], text_out["text_relation_logits"][c],
                                    dictionaries)
            entry: dict[str, Any] = {"caption": first + c, "text": caption, "predicted_tree": predicted,
                                     "predicted_read_out": read_out(predicted)}
            if labels is not None:
                truth = ground_truth_tree(labels[first + c], dictionaries,
                                          None if trees is None else trees[first + c].nodes)
                entry["ground_truth_tree"] = truth
                entry["ground_truth_read_out"] = read_out(truth)
            entries.append(entry)
        images.append({"visual_tree": visual, "visual_read_out": read_out(visual), "captions": entries})
    header = {"parser": cache.backend, "ground_truth": labels is not None}
    return header, images


def hslm_caption(words: Sequence[str], gates: np.ndarray, global_gate: float, attention: np.ndarray, score: float,
                 boxes: np.ndarray | None) -> dict[str, Any]:
    """One (image, caption) pair of HSLM: every word with its SAF gate (Eq. 21, decision 'HSLM similarity head'), its share of the
    gated sum and its most-attended region (Eq. 16), plus the global-alignment gate and the score."""
    total = float(gates.sum() + global_gate)
    entries = []
    for j, word in enumerate(words):
        k = int(np.argmax(attention[j]))
        region: dict[str, Any] = {"index": k, "weight": float(attention[j, k])}
        if boxes is not None:
            region["box"] = [float(x) for x in boxes[k]]
        entries.append({"word": word, "gate": float(gates[j]), "weight": float(gates[j]) / max(total, 1e-12),
                        "top_region": region})
    return {"score": score, "global_gate": global_gate, "words": entries}


def _explain_hslm(model: torch.nn.Module, split: PrecompSplit, indices: Sequence[int], context: dict[str, Any]
                  ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    text: TextEncoding = context["text"]
    images = []
    for i in indices:
        captions = split.image_captions(i)
        stream = CaptionStream(captions, text)
        texts = stream.collate([stream[j] for j in range(len(stream))])
        details = explain(model, _image_batch(model, split, [i] * len(captions)), texts, name="hslm")
        boxes = None if split.boxes is None else np.asarray(split.boxes[i])
        entries = []
        for c, caption in enumerate(captions):
            n = int(texts["lengths"][c])
            words = text.vocab.decode(texts["tokens"][c, :n].tolist(), skip_specials=False)
            entry = hslm_caption(words, details["word_gates"][c, :n].cpu().numpy(), float(details["global_gate"][c]),
                                 details["cross_attention"][c, :n].cpu().numpy(), float(details["scores"][c]), boxes)
            entries.append({"caption": 5 * i + c, "text": caption, **entry})
        images.append({"captions": entries})
    return {"boxes": split.boxes is not None}, images


def hire_pairs(attention: np.ndarray, words: Sequence[str], direction: str, boxes: np.ndarray | None,
               k: int = TOP_PAIRS) -> list[dict[str, Any]]:
    """Top-`k` word–region pairs of one HiRE (image, caption) pair by the first local–local attention β
    (Eq. 7.9): i2t rows are regions attending over words, t2i rows words over regions; [CLS]/[SEP] skipped."""
    by_region = attention if direction == "i2t" else attention.T                 # (K, n words)
    inner = by_region[:, 1 : len(words) - 1]
    pairs = []
    for flat in np.argsort(-inner, axis=None, kind="stable")[:k]:
        region, word = np.unravel_index(flat, inner.shape)
        entry: dict[str, Any] = {"word": words[word + 1], "position": int(word) + 1, "region": int(region),
                                 "weight": float(inner[region, word])}
        if boxes is not None:
            entry["box"] = [float(x) for x in boxes[region]]
        pairs.append(entry)
    return pairs


def hire_edges(edges: np.ndarray, adjacency: np.ndarray, boxes: np.ndarray | None, k: int = TOP_EDGES) -> list[dict[str, Any]]:
    """The `k` strongest VSSG edges (i ≠ j) of one image with their learned, row-normalised weight E_ij (Eq. 7.6, decision 'HiRE graph normalisation')."""
    rows, cols = np.nonzero(adjacency & ~np.eye(len(adjacency), dtype=bool))
    order = np.argsort(-edges[rows, cols], kind="stable")[:k]
    out = []
    for i, j in zip(rows[order], cols[order]):
        entry: dict[str, Any] = {"from": int(i), "to": int(j), "weight": float(edges[i, j])}
        if boxes is not None:
            entry["boxes"] = [[float(x) for x in boxes[i]], [float(x) for x in boxes[j]]]
        out.append(entry)
    return out


def _explain_hire(model: torch.nn.Module, split: PrecompSplit, indices: Sequence[int], context: dict[str, Any]
                  ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    text: TextEncoding = context["text"]
    images = []
    for i in indices:
        captions = split.image_captions(i)
        batch = _image_batch(model, split, [i] * len(captions))
        stream = CaptionStream(captions, text)
        texts = stream.collate([stream[j] for j in range(len(stream))])
        details = explain(model, batch, texts, name=model.name)
        edges = details["edges"][0].cpu().numpy() if "edges" in details else None
        scores = details["scores"]
        attention = details["attention"][:, 0].cpu().numpy()                   # first interaction step
        boxes = None if split.boxes is None else np.asarray(split.boxes[i])
        entries = []
        for c, caption in enumerate(captions):
            n = int(texts["attention_mask"][c].sum())
            words = text.tokenizer.convert_ids_to_tokens(texts["input_ids"][c, :n].tolist())
            pair_attention = attention[c][:, :n] if model.direction == "i2t" else attention[c][:n]
            entries.append({"caption": 5 * i + c, "text": caption, "score": float(scores[c]),
                            "top_pairs": hire_pairs(pair_attention, words, model.direction, boxes)})
        entry: dict[str, Any] = {"captions": entries}
        if edges is not None:
            entry["graph_edges"] = hire_edges(edges, batch["region_graph"][0].numpy(), boxes)
        images.append(entry)
    return {"direction": model.direction, "graph": model.graph is not None, "boxes": split.boxes is not None}, images


EXPLAINERS: dict[str, Callable[..., tuple[dict[str, Any], list[dict[str, Any]]]]] = {
    "3shnet": _explain_shnet,
    "smfea": _explain_smfea,
    "hslm": _explain_hslm,
    "hire_i2t": _explain_hire,
    "hire_t2i": _explain_hire,
}


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
    indices = _select_images(images, data.n_images, where)
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
