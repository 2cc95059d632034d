"""Output shapes of every registered retrieval model (tiny configs) and the evaluator protocol."""

import pytest
import torch

from shared.errors import UserError

from retrieval.evaluation.similarity import TwoTowerModel, compute_similarity
from retrieval.models import MODELS, build_model

from .model_batches import single_thread  # noqa: F401 (autouse fixture)
from .model_batches import TINY, image_batch, pair_batch, text_batch, tiny_model

B = 4


@pytest.mark.parametrize("key", sorted(TINY))
def test_embeddings_are_unit_vectors_of_the_joint_dim(key):
    model = tiny_model(key).eval()
    with torch.no_grad():
        images, texts = model.embed_images(image_batch(B)), model.embed_texts(text_batch(B + 1))
    assert images.shape == (B, 64) and texts.shape == (B + 1, 64)
    assert torch.allclose(images.norm(dim=1), torch.ones(B), atol=1e-5)
    assert torch.allclose(texts.norm(dim=1), torch.ones(B + 1), atol=1e-5)
    assert isinstance(model, TwoTowerModel)


def test_registry_names_and_errors():
    assert MODELS.names() == ["3shnet", "hire_i2t", "hire_t2i", "hslm", "imc", "smfea", "vse_gpo", "vsepp", "vsrpp"]
    with pytest.raises(UserError, match="unknown retrieval model"):
        build_model("nope", {})
    with pytest.raises(UserError, match=r"config model: unknown key\(s\) 'embed_dimm'"):
        build_model("smfea", {"model": {"embed_dimm": 8}}, vocab_size=400)
    with pytest.raises(UserError, match="vocab_size"):
        build_model("vsepp", MODELS.load_config("vsepp"))


def test_smfea_named_outputs():
    model = tiny_model("smfea").train()
    out = model(pair_batch(B))
    for side in ("image", "text"):
        assert out[side]["fragment_logits"].shape == (B, 4, 65)
        assert out[side]["relation_logits"].shape == (B, 3, 17)
        assert out[side]["concept_scores"].shape == (B, 16)
        assert torch.allclose(out[side]["concept_scores"].sum(dim=1), torch.ones(B), atol=1e-5)
    losses = model.training_losses(out, pair_batch(B))
    assert set(losses) == {"rank_i2t", "rank_t2i", "rank", "tree_ce", "tree_kl", "cac_kl", "total"}
    assert all(torch.isfinite(v) for v in losses.values())


@pytest.mark.parametrize("key,tokens,keys", [("3shnet", 8, 32 * 32), ("3shnet_grid", 49, 32 * 32), ("3shnet_code", 8, 64 * 64)])
def test_shnet_salience_and_spatial_attention(key, tokens, keys):
    model = tiny_model(key).eval()
    with torch.no_grad():
        out = model.image_outputs(image_batch(B))
    assert out["salience"].shape == (B, tokens)
    assert ((out["salience"] > 0) & (out["salience"] < 1)).all()
    if key == "3shnet_code":  # softmax salience (Fig. 8.4 variant) sums to one over the regions
        assert torch.allclose(out["salience"].sum(1), torch.ones(B), atol=1e-5)
    assert out["spatial_attention"].shape == (B, tokens, keys)  # stride 2 (paper default) or 1 (code) on 64 x 64
    assert torch.allclose(out["spatial_attention"].sum(-1), torch.ones(B, tokens), atol=1e-5)


def test_similarity_through_the_evaluator():
    model = tiny_model("vsepp")
    sims = compute_similarity(model, [image_batch(3), image_batch(2, seed=5)], [text_batch(4), text_batch(6, seed=7)])
    assert sims.shape == (5, 10) and sims.dtype.name == "float32"
    assert abs(sims).max() <= 1.0 + 1e-5


def test_smfea_tree_labels_must_fit_the_dictionaries():
    model = tiny_model("smfea", num_fragments=8)
    batch = pair_batch(B)
    out = model(batch)
    with pytest.raises(ValueError, match="num_fragments"):
        model.training_losses(out, batch)
    del batch["texts"]["tree_labels"]
    with pytest.raises(KeyError, match="tree_labels"):
        model.training_losses(out, batch)
