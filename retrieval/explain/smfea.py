"""SMFEA export: the predicted referral-tree nodes of the image and of its captions (thesis Eq. 6.12–6.13),
beside the parse cache's ground truth."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from retrieval.data.pairs import CaptionStream, TextEncoding
from retrieval.data.precomp import PrecompDir, PrecompSplit
from retrieval.explain.common import image_batch
from retrieval.parsing.cache import ParseCache
from retrieval.parsing.referral_tree import LEAF_NODES, NULL, NUM_NODES, RELATION_NODES, TreeDictionaries
from shared.errors import UserError
from shared.explain import explain


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
    image_out = explain(model, image_batch(model, split, indices), None, name="smfea")
    images = []
    for row, i in enumerate(indices):
        visual = decode_tree(image_out["image_fragment_logits"][row], image_out["image_relation_logits"][row],
                             dictionaries)
        first = 5 * i
        captions = split.image_captions(i)
        stream = CaptionStream(captions, text)
        text_out = explain(model, image_batch(model, split, [i]), stream.collate([stream[j] for j in range(len(stream))]),
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
