"""Padded regions and padded words never change a score (eval mode; image and text towers)."""

import pytest
import torch

from .model_batches import single_thread  # noqa: F401 (autouse fixture)
from .model_batches import TINY, image_batch, text_batch, tiny_model

REGION_MODELS = ["smfea", "3shnet", "vsepp", "vse_gpo"]


@pytest.mark.parametrize("key", REGION_MODELS)
def test_padded_regions_do_not_change_image_embeddings(key):
    model = tiny_model(key).eval()
    valid = torch.tensor([5, 3, 8])
    padded = image_batch(3, regions=8, valid=valid)
    garbage = {k: v.clone() for k, v in padded.items()}
    garbage["regions"][~garbage["region_mask"]] = 1e3 * torch.randn(int((~garbage["region_mask"]).sum()), 2048)
    with torch.no_grad():
        a, b = model.embed_images(padded), model.embed_images(garbage)
        singles = [model.embed_images({**{k: v[i : i + 1] for k, v in padded.items()},
                                       "regions": padded["regions"][i : i + 1, : int(valid[i])],
                                       "region_mask": padded["region_mask"][i : i + 1, : int(valid[i])]})
                   for i in range(3)]
    assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(a, torch.cat(singles), atol=1e-5)


@pytest.mark.parametrize("key", sorted(TINY))
def test_padded_words_do_not_change_caption_embeddings(key):
    model = tiny_model(key).eval()
    texts = text_batch(5, max_len=7)
    longer = {k: v.clone() for k, v in texts.items()}
    for name in ("tokens", "input_ids", "attention_mask"):
        fill = torch.randint(5, 60, (5, 4)) if name == "tokens" else torch.zeros(5, 4, dtype=texts[name].dtype)
        if name == "input_ids":
            fill = torch.randint(1000, 2000, (5, 4))
        longer[name] = torch.cat([texts[name], fill], dim=1)
    with torch.no_grad():
        assert torch.allclose(model.embed_texts(texts), model.embed_texts(longer), atol=1e-5)


@pytest.mark.parametrize("key,no_dropout", [
    ("smfea", {"attention_dropout": 0.0}),
    ("3shnet", {"region_dropout": 0.0, "seg_dropout": 0.0}),
    ("vse_gpo", {"region_dropout": 0.0}),
])
def test_padding_is_invisible_in_training_mode_statistics(key, no_dropout):
    """Per-token MLPs/BatchNorms see valid regions only, so train-mode embeddings ignore padding too."""
    model = tiny_model(key, **no_dropout).train()
    padded = image_batch(3, regions=8, valid=torch.tensor([5, 3, 8]))
    garbage = {k: v.clone() for k, v in padded.items()}
    garbage["regions"][~garbage["region_mask"]] = 7.0
    assert torch.allclose(model.embed_images(padded), model.embed_images(garbage), atol=1e-5)


def test_gpo_ignores_item_order_and_padding():
    from retrieval.layers import GPO

    torch.manual_seed(0)
    gpo = GPO(8, 8)
    x = torch.randn(2, 6, 4)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    shuffled = x[:, [3, 1, 0, 2, 4, 5]]
    garbage = x.clone()
    garbage[0, 4:] = 99.0
    out = gpo(x, mask)
    assert torch.allclose(out, gpo(shuffled, mask), atol=1e-6)
    assert torch.allclose(out, gpo(garbage, mask), atol=1e-6)
    assert torch.allclose(out[:1], gpo(x[:1, :4], None), atol=1e-6)
    assert torch.allclose(gpo.position_weights(mask.sum(1), 6).sum(1), torch.ones(2))


def test_positional_encoding_sin_on_even_cos_on_odd_channels():
    from retrieval.layers.blocks import sinusoidal_positional_encoding

    table = sinusoidal_positional_encoding(5, 4, start=1)
    p = torch.arange(1, 6, dtype=torch.float32)
    assert torch.allclose(table[:, 0], torch.sin(p)) and torch.allclose(table[:, 1], torch.cos(p))
    assert torch.allclose(table[:, 2], torch.sin(p / 100.0)) and torch.allclose(table[:, 3], torch.cos(p / 100.0))
