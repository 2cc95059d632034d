"""Similarity from the two model interfaces: sharded == unsharded, tiles from a memory budget."""

import numpy as np
import pytest
import torch

from retrieval.evaluation.similarity import (
    FeatureBank, PairwiseModel, TwoTowerModel, compute_similarity, pairwise_similarity, tile_shape,
    two_tower_similarity,
)


class ToyTwoTower(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.img = torch.nn.Linear(6, 4)
        self.txt = torch.nn.Linear(5, 4)

    def embed_images(self, batch):
        return torch.nn.functional.normalize(self.img(batch), dim=-1)

    def embed_texts(self, batch):
        return torch.nn.functional.normalize(self.txt(batch), dim=-1)


class ToyCrossAttention(torch.nn.Module):
    """SCAN-like t2i scorer: words attend over regions; masked mean of word-context cosines.
    Dropout makes train mode visibly different, so the evaluator must switch to eval."""

    def __init__(self, dim=8):
        super().__init__()
        torch.manual_seed(1)
        self.proj = torch.nn.Linear(dim, dim)
        self.drop = torch.nn.Dropout(0.5)
        self.calls = 0

    def encode_images(self, batch):
        return self.drop(self.proj(batch))  # (B, K, D)

    def encode_texts(self, batch):
        return {"words": self.drop(self.proj(batch["words"])), "lengths": batch["lengths"]}

    def forward_sim(self, images, captions):
        self.calls += 1
        words, lengths = captions["words"], captions["lengths"]  # (Bt, L, D), (Bt,)
        att = torch.einsum("itkd,tld->itlk", images[:, None].expand(-1, words.shape[0], -1, -1), words)
        context = torch.einsum("itlk,ikd->itld", torch.softmax(4 * att, dim=-1), images)
        cos = torch.nn.functional.cosine_similarity(context, words[None].expand_as(context), dim=-1)  # (Bi, Bt, L)
        mask = (torch.arange(words.shape[1])[None] < lengths[:, None]).float()[None]
        return (cos * mask).sum(-1) / lengths[None].float()


def text_batches(rng, sizes=(3, 5, 4), dim=8):
    """Caption batches padded to their own maximum length (lengths differ across batches)."""
    batches, raw = [], []
    for b in sizes:
        lengths = rng.integers(2, 7, size=b)
        words = torch.zeros(b, int(lengths.max()), dim)
        for i, n in enumerate(lengths):
            w = torch.as_tensor(rng.standard_normal((n, dim)), dtype=torch.float32)
            words[i, :n] = w
            raw.append(w)
        batches.append({"words": words, "lengths": torch.as_tensor(lengths)})
    return batches, raw


def test_protocols_are_runtime_checkable():
    assert isinstance(ToyTwoTower(), TwoTowerModel) and not isinstance(ToyTwoTower(), PairwiseModel)
    assert isinstance(ToyCrossAttention(), PairwiseModel)
    with pytest.raises(TypeError):
        compute_similarity(object(), [], [])


def test_two_tower_chunked_equals_unchunked_and_brute_force():
    model = ToyTwoTower()
    gen = torch.Generator().manual_seed(3)
    images = [torch.randn(4, 6, generator=gen) for _ in range(3)]
    texts = [torch.randn(7, 5, generator=gen) for _ in range(2)]
    small = two_tower_similarity(model, images, texts, chunk_size=5)
    whole = compute_similarity(model, images, texts, chunk_size=10_000)
    with torch.no_grad():
        ref = model.embed_images(torch.cat(images)) @ model.embed_texts(torch.cat(texts)).T
    assert small.dtype == np.float32 and small.shape == (12, 14)
    np.testing.assert_allclose(small, whole, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(small, ref.numpy(), rtol=1e-6, atol=1e-6)


def test_pairwise_tiled_equals_unsharded_and_per_pair_reference():
    rng = np.random.default_rng(4)
    model = ToyCrossAttention()
    model.train()
    images = [torch.as_tensor(rng.standard_normal((n, 5, 8)), dtype=torch.float32) for n in (4, 3)]
    texts, raw = text_batches(rng)
    tiled = pairwise_similarity(model, images, texts, tile=(2, 3))
    assert model.training, "the evaluator must restore the training flag"
    whole = pairwise_similarity(model, images, texts, tile=(7, 12))
    np.testing.assert_allclose(tiled, whole, rtol=1e-5, atol=1e-6)
    model.eval()
    with torch.no_grad():
        all_images = torch.cat(images)
        ref = np.array([
            [model.forward_sim(model.encode_images(all_images[i : i + 1]),
                               model.encode_texts({"words": w[None], "lengths": torch.tensor([len(w)])})).item()
             for w in raw]
            for i in range(len(all_images))
        ])
    np.testing.assert_allclose(tiled, ref, rtol=1e-5, atol=1e-6)


def test_tiles_come_from_the_memory_budget():
    rng = np.random.default_rng(5)
    model = ToyCrossAttention()
    images = [torch.as_tensor(rng.standard_normal((10, 5, 8)), dtype=torch.float32)]
    texts, _ = text_batches(rng, sizes=(6, 6, 8))
    model.pair_bytes = 1000
    model.calls = 0
    budgeted = pairwise_similarity(model, images, texts, memory_budget_mb=12_000 / 2**20)  # 12 pairs per tile
    bi, bt = tile_shape(10, 20, 1000, 12_000)
    assert bi * bt <= 12 and (bi, bt) == (3, 4)
    assert model.calls == int(np.ceil(10 / bi) * np.ceil(20 / bt))
    np.testing.assert_allclose(budgeted, pairwise_similarity(model, images, texts, memory_budget_mb=64), rtol=1e-5, atol=1e-6)


def test_tile_shape_bounds():
    assert tile_shape(5, 7, 10, 10**9) == (5, 7)
    assert tile_shape(100, 100, 10**9, 1) == (1, 1)
    bi, bt = tile_shape(2, 1000, 4, 4000)
    assert bi == 2 and bt == 500


def test_feature_bank_joins_chunks_with_padding():
    a = {"words": torch.ones(2, 3, 1), "lengths": torch.tensor([3, 2])}
    b = {"words": 2 * torch.ones(2, 5, 1), "lengths": torch.tensor([5, 4])}
    bank = FeatureBank([a, b])
    tile = bank.take(1, 4)
    assert len(bank) == 4 and tile["words"].shape == (3, 5, 1)
    assert tile["lengths"].tolist() == [2, 5, 4]
    assert tile["words"][0, 3:].abs().sum() == 0 and tile["words"][1].sum() == 10
