"""Random batches and tiny-config models for the retrieval model tests (fixed seeds, small shapes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from shared.config import load_config

from retrieval.models import build_model

CONFIGS = Path(__file__).resolve().parents[2] / "retrieval" / "configs"
VOCAB = 64
FRAGMENTS, RELATIONS = 64, 16  # smfea_tiny.yaml num_fragments / num_relations
TINY = {  # test id → (registry name, tiny config, model overrides)
    "smfea": ("smfea", "smfea_tiny.yaml", {}),
    "smfea_spec": ("smfea", "smfea_tiny.yaml",  # the other options of decisions 'SMFEA attention pooling', 'SMFEA tree cell' and 'SMFEA text tree residual'
                   {"attention_form": "parametric", "tree_cell": "child_sum", "text_tree_residual": False}),
    "3shnet": ("3shnet", "shnet_tiny.yaml", {}),
    "3shnet_code": ("3shnet", "shnet_tiny.yaml",  # the official code's choices (decision '3SHNet similarity', decision '3SHNet spatial resolution')
                    {"spatial_similarity": "scaled_dot", "salience_similarity": "scaled_dot", "spatial_stride": 1,
                     "salience": "softmax"}),
    "3shnet_grid": ("3shnet", "shnet_grid_tiny.yaml", {}),
    "vsepp": ("vsepp", "vsepp_tiny.yaml", {}),
    "vse_gpo": ("vse_gpo", "vse_gpo_tiny.yaml", {}),
}
#: a 2-layer 64-d random-weight BERT with the shipped MiniLM vocabulary: model mechanics need no pre-training
SMALL_BERT = {"source": None, "pretrained": False,
              "arch": {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 128},
              "layers": None, "freeze_embeddings": False}


def tiny_model(key: str, seed: int = 0, **model_overrides) -> torch.nn.Module:
    """The tiny-config model `key` (BERT towers: `SMALL_BERT`), with optional ``model:`` overrides."""
    name, file, variant = TINY[key]
    config = load_config(CONFIGS / file)
    if "bert" in config["model"]:
        config["model"]["bert"] = dict(SMALL_BERT)
    config["model"].update({**variant, **model_overrides})
    torch.manual_seed(seed)
    return build_model(name, config, vocab_size=VOCAB)


def image_batch(batch: int, regions: int = 8, valid: torch.Tensor | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    """Region/grid features, segmentation inputs and a region mask (`valid` regions per image, default all)."""
    g = torch.Generator().manual_seed(seed)
    valid = torch.full((batch,), regions) if valid is None else valid
    return {
        "regions": torch.randn(batch, regions, 2048, generator=g),
        "region_mask": torch.arange(regions).unsqueeze(0) < valid.unsqueeze(1),
        "grid": torch.randn(batch, 49, 2048, generator=g),
        "segmentations": torch.randn(batch, 133, 7, 7, generator=g),
        "seg_maps": torch.randint(0, 133, (batch, 64, 64), generator=g),
        "cat_onehots": (torch.rand(batch, 133, generator=g) > 0.9).float(),
    }


def text_batch(batch: int, max_len: int = 10, seed: int = 1) -> dict[str, torch.Tensor]:
    """GRU tokens + lengths, BERT ids + attention mask and SMFEA tree labels (layout of referral_tree)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, max_len + 1, (batch,), generator=g)
    lengths[0] = max_len
    valid = torch.arange(max_len).unsqueeze(0) < lengths.unsqueeze(1)
    tokens = torch.randint(4, VOCAB, (batch, max_len), generator=g) * valid
    input_ids = torch.randint(1000, 30000, (batch, max_len), generator=g) * valid
    leaves = torch.randint(0, FRAGMENTS + 1, (batch, 4), generator=g)
    relations = torch.randint(0, RELATIONS + 1, (batch, 3), generator=g)
    tree = torch.stack([leaves[:, 0], relations[:, 0], leaves[:, 1], relations[:, 1], leaves[:, 2], relations[:, 2], leaves[:, 3]], 1)
    return {"tokens": tokens, "lengths": lengths, "input_ids": input_ids, "attention_mask": valid.long(), "tree_labels": tree}


def pair_batch(batch: int, regions: int = 8, max_len: int = 10, seed: int = 0) -> dict:
    """An aligned training batch: image i ↔ caption i."""
    return {"images": image_batch(batch, regions, seed=seed), "texts": text_batch(batch, max_len, seed=seed + 1)}


@pytest.fixture(autouse=True)
def single_thread():
    """One intra-op thread per test: on the shared 2-core machine OpenMP oversubscription slows
    these small models by an order of magnitude; restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
