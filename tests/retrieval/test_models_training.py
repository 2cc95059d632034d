"""Training behaviour of every model: gradients reach every parameter, a 32-pair batch is memorised."""

import pytest
import torch

from retrieval.layers.cac import concept_adjacency

from .model_batches import single_thread  # noqa: F401 (autouse fixture)
from .model_batches import TINY, pair_batch, tiny_model

NO_DROPOUT = {
    "smfea": {},
    "smfea_spec": {"attention_dropout": 0.0},
    "3shnet": {"region_dropout": 0.0, "seg_dropout": 0.0},
    "3shnet_code": {"region_dropout": 0.0, "seg_dropout": 0.0},
    "3shnet_grid": {"region_dropout": 0.0, "seg_dropout": 0.0},
    "vsepp": {},
    "vse_gpo": {"region_dropout": 0.0},
}


@pytest.mark.parametrize("key", sorted(TINY))
def test_gradients_reach_every_parameter(key):
    model = tiny_model(key).train()
    batch = pair_batch(6)
    out = model(batch)
    losses = model.training_losses(out, batch)
    losses["total"].backward()
    missing = [name for name, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not torch.any(p.grad != 0))]
    assert not missing, missing


def _recall_at_1(model, batch) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        sims = model.embed_images(batch["images"]) @ model.embed_texts(batch["texts"]).T
    model.train()
    target = torch.arange(sims.shape[0])
    return (sims.argmax(1) == target).float().mean().item(), (sims.argmax(0) == target).float().mean().item()


@pytest.mark.parametrize("key", sorted(TINY))
def test_overfits_a_32_pair_batch(key):
    model = tiny_model(key, **NO_DROPOUT[key]).train()
    model.set_epoch(1)  # past the sum-of-hinges warm-up
    batch = pair_batch(32, regions=8, max_len=8)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    recalls = (0.0, 0.0)
    for step in range(1, 121):
        out = model(batch)
        loss = model.training_losses(out, batch)["total"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 5 == 0:
            recalls = _recall_at_1(model, batch)
            if recalls == (1.0, 1.0):
                break
    assert recalls == (1.0, 1.0), f"R@1 i2t/t2i {recalls} after {step} steps"


def test_smfea_concept_graph_from_training_captions():
    model = tiny_model("smfea")
    words = ["<pad>", "<start>", "<end>", "<unk>", "a", "dog", "ball", "man", "red", "the"] + [f"w{i}" for i in range(54)]
    captions = [[4, 5, 6], [9, 5, 6, 8], [7, 6], [5, 8], [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26]]
    model.prepare_corpus(captions, words)
    ids = model.concepts.concept_ids.tolist()
    assert ids[:3] == [5, 6, 8] and 4 not in ids and 9 not in ids  # most frequent content words; "a"/"the" skipped
    adjacency = model.concepts.adjacency
    assert adjacency[0, 1] > 0 and adjacency[3, 0] == 0  # dog–ball co-occur; dog never with w0
    assert (adjacency.diagonal() > 0).all() and (adjacency >= 0).all()


def test_concept_adjacency_follows_conditional_probabilities():
    """P(j|i) = n_ij / n_i: 2/2 = 1 passes the 0.3 threshold, 2/8 = 0.25 rescales to 5^0.23 − 5^−0.02 ≈ 0.48 and
    passes too; 1/8 rescales to ≈ 0.22 and does not.  Column re-weighting then the symmetric D^-1/2 normalisation."""
    pairs = torch.tensor([[0.0, 2.0, 1.0], [2.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    nums = torch.tensor([8.0, 2.0, 1.0])
    adjacency = concept_adjacency(pairs, nums)
    rescaled = 5 ** (pairs / nums.unsqueeze(1) - 0.02) - 5 ** -0.02
    binary = (rescaled >= 0.3).float()
    a = binary * 0.25 / (binary.sum(0, keepdim=True) + 1e-6) + torch.eye(3)
    d = torch.diag(a.sum(1).pow(-0.5))
    assert torch.allclose(adjacency, (a @ d).T @ d, atol=1e-6)
    assert binary[1, 0] == 1 and binary[2, 0] == 1 and binary[0, 1] == 1 and binary[0, 2] == 0
