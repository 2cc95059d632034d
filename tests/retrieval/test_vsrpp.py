"""VSR++ (docs/retrieval.md): pairwise checks, the S_G + μ·S_L fusion, the caption loss, train + evaluate."""

import pytest
import torch

from shared.config import load_config

from retrieval.models import build_model
from retrieval.models.vsrpp import scan_t2i_scores

from . import pairwise_checks as checks
from .model_batches import CONFIGS, VOCAB, image_batch, pair_batch, single_thread, text_batch  # noqa: F401 (autouse fixture)


def vsrpp(seed: int = 0, **overrides) -> torch.nn.Module:
    config = load_config(CONFIGS / "vsrpp_tiny.yaml")
    config["model"].update(overrides)
    torch.manual_seed(seed)
    return build_model("vsrpp", config, vocab_size=VOCAB)


VARIANTS = {"default": {}, "options": {"text_rnn": "gru", "global_text": "last", "local_pooling": "lse"}}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_shapes_and_padding(variant):
    model = vsrpp(**VARIANTS[variant])
    checks.check_shapes(model)
    checks.check_padding_never_changes_a_score(model)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_tile_scores_equal_one_pair_at_a_time(variant):
    checks.check_tile_equals_one_pair_at_a_time(vsrpp(**VARIANTS[variant]))


def test_gradients_reach_every_parameter():
    checks.check_gradients_reach_every_parameter(vsrpp())


def test_fusion_is_global_plus_mu_local_and_global_branch_is_two_tower():
    model = vsrpp(mu=2.0).eval()
    images = model.encode_images(image_batch(3, regions=5))
    texts = model.encode_texts(text_batch(4, max_len=6))
    with torch.no_grad():
        s_g, s_l = model.similarity_parts(images, texts)
        assert torch.allclose(model.forward_sim(images, texts), s_g + 2.0 * s_l, atol=1e-6)
        g_i = model.global_image_embeddings(image_batch(3, regions=5))
        g_t = model.global_text_embeddings(text_batch(4, max_len=6))
    assert torch.allclose(g_i @ g_t.T, s_g, atol=1e-6)
    assert torch.allclose(g_i.norm(dim=1), torch.ones(3), atol=1e-5)


def test_local_score_matches_scan_with_explicit_contexts():
    """The Gram-matrix form of S_L equals SCAN t2i computed with materialised attended contexts."""
    g = torch.Generator().manual_seed(3)
    regions = torch.nn.functional.normalize(torch.randn(2, 5, 8, generator=g), dim=-1)
    words = torch.nn.functional.normalize(torch.randn(3, 4, 8, generator=g), dim=-1)
    region_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], dtype=torch.bool)
    word_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
    regions, words = regions * region_mask.unsqueeze(-1), words * word_mask.unsqueeze(-1)
    fast = scan_t2i_scores(regions, region_mask, words, word_mask, smooth=9.0)
    for i in range(2):
        for t in range(3):
            v, w = regions[i, region_mask[i]], words[t, word_mask[t]]
            attn = torch.nn.functional.normalize(torch.nn.functional.leaky_relu(w @ v.T, 0.1), dim=0)
            context = torch.softmax(9.0 * attn, dim=1) @ v
            expected = torch.nn.functional.cosine_similarity(w, context, dim=1).mean()
            assert fast[i, t] == pytest.approx(float(expected), abs=1e-5)


def test_caption_loss_is_logged_and_weighted():
    model = vsrpp(aux_weights={"caption": 0.5}).train()
    batch = pair_batch(4)
    terms = model.training_losses(model(batch), batch)
    assert {"rank", "caption", "total"} <= set(terms) and terms["caption"] > 0
    assert torch.allclose(terms["total"], terms["rank"] + 0.5 * terms["caption"])
    loss_fusion = vsrpp(fusion="loss").train()
    terms = loss_fusion.training_losses(loss_fusion(batch), batch)
    assert {"rank", "local_rank", "caption"} <= set(terms)
    assert torch.allclose(terms["total"], terms["rank"] + terms["local_rank"] + terms["caption"])


def test_bad_option_is_a_value_error():
    with pytest.raises(Exception, match="local_pooling"):
        vsrpp(local_pooling="max")


def test_imc_option():
    config = load_config(CONFIGS / "vsrpp_tiny.yaml")
    config["loss"]["imc"] = {"lam": 1.0, "measure": "l1", "band": "code"}
    checks.check_imc_term(build_model("vsrpp", config, vocab_size=VOCAB))


def test_overfits_a_32_pair_batch():
    caption = load_config(CONFIGS / "vsrpp_tiny.yaml")["model"]["caption"]
    checks.check_overfits_32_pairs(vsrpp(caption={**caption, "input_dropout": 0.0, "rnn_dropout": 0.0}))


def test_train_then_evaluate(tmp_path):
    checks.check_train_then_evaluate("vsrpp", "vsrpp_tiny", checks.synscenes(tmp_path / "scenes"), tmp_path)
