"""The IMC network (the IMC thesis Ch. 5): shapes, padding, the IMC loss terms, and it learns."""

from __future__ import annotations

import torch

from retrieval.models import MODELS, build_model

from .model_batches import single_thread  # noqa: F401 (autouse fixture)

VOCAB = 40


def tiny(**overrides):
    config = MODELS.load_config("imc", None)
    config["model"].update(overrides)
    torch.manual_seed(0)
    return build_model("imc", config, vocab_size=VOCAB)


def batch(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 8, (n,), generator=g)
    tokens = torch.randint(4, VOCAB, (n, 7), generator=g) * (torch.arange(7) < lengths.unsqueeze(1))
    return {"images": {"grid": torch.randn(n, 49, 2048, generator=g)},
            "texts": {"tokens": tokens, "lengths": lengths}, "image_ids": torch.arange(n)}


def test_paper_config_sizes_and_loss():
    config = MODELS.load_config("imc", "f30k")
    model = build_model("imc", config, vocab_size=VOCAB)
    assert model.region_fc.in_features == 2048 and model.region_fc.out_features == 1024
    assert model.text_encoder.rnn.bidirectional and model.text_encoder.rnn.hidden_size == 1024
    assert config["loss"]["imc"] == {"lam": 1.0, "measure": "l1", "band": "code", "mu_down": 0.05, "mu_up": 0.5}
    terms = model.training_losses(model(batch(4)), batch(4))
    assert {"rank", "imc_image", "imc_text", "total"} <= set(terms) and torch.isfinite(terms["total"])


def test_padding_does_not_change_a_caption():
    model = tiny().eval()
    data = batch(3)
    padded = {"tokens": torch.cat([data["texts"]["tokens"], torch.zeros(3, 4, dtype=torch.long)], 1),
              "lengths": data["texts"]["lengths"]}
    with torch.no_grad():
        assert torch.allclose(model.embed_texts(data["texts"]), model.embed_texts(padded), atol=1e-6)
        assert torch.allclose(model.embed_images(data["images"]).norm(dim=1), torch.ones(3))


def test_learns_a_16_pair_batch_above_chance():
    model = tiny().train()
    data = batch(16, seed=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(80):
        optimizer.zero_grad()
        model.training_losses(model(data), data)["total"].backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        sims = model.embed_images(data["images"]) @ model.embed_texts(data["texts"]).T
    r1 = (sims.argmax(dim=1) == torch.arange(16)).float().mean().item()
    assert r1 > 0.5  # chance is 1/16
