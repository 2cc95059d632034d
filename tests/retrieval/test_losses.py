"""Ranking losses: max-hinge by hand, sum-of-hinges warm-up, same-image masking, IMC bands and λ = 0."""

import math

import pytest
import torch

from retrieval.losses import IMCSettings, RankingLoss, intra_modal_constraint, triplet_ranking_loss
from shared.errors import UserError

SCORES = torch.tensor([[0.9, 0.5, 0.1], [0.3, 0.6, 0.55], [0.2, 0.8, 0.7]])


def _hand_pair():
    """images = I and texts = S^T give images @ texts^T = S with the positives on the diagonal."""
    return torch.eye(3), SCORES.T.clone()


def test_max_hinge_matches_hand_computation():
    images, texts = _hand_pair()
    i2t, t2i = triplet_ranking_loss(images, texts, margin=0.2, hardest=True)
    # rows: [0, max(.2+.55-.6), max(.2+.8-.7)] ; columns: [0, max(.2+.5-.6, .2+.8-.6), .2+.55-.7]
    assert i2t.item() == pytest.approx(0.15 + 0.30)
    assert t2i.item() == pytest.approx(0.40 + 0.05)


def test_sum_of_hinges_and_warmup_switch():
    images, texts = _hand_pair()
    i2t, t2i = triplet_ranking_loss(images, texts, margin=0.2, hardest=False)
    assert i2t.item() == pytest.approx(0.15 + 0.30)
    assert t2i.item() == pytest.approx(0.10 + 0.40 + 0.05)
    loss = RankingLoss(warmup_sum_epochs=1)
    assert loss(images, texts)["rank"].item() == pytest.approx(1.0)
    loss.set_epoch(1)
    assert loss(images, texts)["rank"].item() == pytest.approx(0.9)


def test_same_image_captions_are_not_negatives():
    images, texts = _hand_pair()
    i2t, t2i = triplet_ranking_loss(images, texts, 0.2, True, image_ids=torch.tensor([0, 1, 1]))
    assert i2t.item() == pytest.approx(0.0)
    assert t2i.item() == pytest.approx(0.10)


@pytest.mark.parametrize("measure", ["cosine", "l1", "l2", "msd"])
@pytest.mark.parametrize("band", ["push", "code", "literal"])
def test_imc_lambda_zero_is_plain_max_hinge_exactly(measure, band):
    torch.manual_seed(0)
    raw_i, raw_t = torch.randn(16, 8, requires_grad=True), torch.randn(16, 8, requires_grad=True)
    grads = []
    totals = []
    for imc in (None, IMCSettings(lam=0.0, measure=measure, band=band)):
        loss = RankingLoss(imc=imc)
        terms = loss(torch.nn.functional.normalize(raw_i, dim=1), torch.nn.functional.normalize(raw_t, dim=1))
        total = loss.total(terms)
        totals.append(total.detach())
        grads.append(torch.autograd.grad(total, (raw_i, raw_t)))
    assert torch.equal(totals[0], totals[1])
    assert all(torch.equal(a, b) for a, b in zip(grads[0], grads[1]))


def _three_unit_vectors():
    return torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])  # cos: (0,1) .8, (1,2) .6, (0,2) 0


def test_imc_cosine_bands_by_hand():
    v = _three_unit_vectors()
    # code: similarities in (0.5, 0.95), both orders, divided by B = 3
    assert intra_modal_constraint(v, measure="cosine", band="code").item() == pytest.approx(2 * (0.8 + 0.6) / 3)
    # literal: distances 1 - cos in (0.05, 0.5): 0.2 and 0.4, both orders, no division
    assert intra_modal_constraint(v, measure="cosine", band="literal").item() == pytest.approx(2 * (0.2 + 0.4))
    # push (the default, Fig. 5.1): the same in-band pairs, each pushed out to mu_up = 0.5: (0.5 - 0.2) + (0.5 - 0.4)
    assert intra_modal_constraint(v, measure="cosine").item() == pytest.approx(2 * (0.3 + 0.1))


def test_imc_push_band_increases_intra_modal_distances():
    """A gradient step on the default band moves in-band negatives apart (Fig. 5.1), the literal one together."""
    for band, sign in (("push", 1), ("literal", -1)):
        v = _three_unit_vectors().clone().requires_grad_(True)
        before = 1 - (v[0] @ v[1]).item()
        intra_modal_constraint(torch.nn.functional.normalize(v, dim=1), measure="cosine", band=band).backward()
        with torch.no_grad():
            moved = torch.nn.functional.normalize(v - 0.1 * v.grad, dim=1)
        after = 1 - (moved[0] @ moved[1]).item()
        assert sign * (after - before) > 0


def test_imc_l1_code_band_uses_row_normalised_quantiles():
    v = torch.tensor([[0.0], [1.0], [3.0]])  # L1 distances 1, 3, 2
    # rows scaled to unit norm; row 0 sorted [0, 1, 3]/√10 → s_down = 0 (index 0), s_up = 3/√10 (index round(1.5) = 2)
    expected = (1 / math.sqrt(10) + 1 / math.sqrt(5) + 2 / math.sqrt(5) + 3 / math.sqrt(13) + 2 / math.sqrt(13)) / 3
    assert intra_modal_constraint(v, measure="l1", band="code").item() == pytest.approx(expected)
    # literal band on the raw distances: keep 0.5 < δ < 2.5 → 1 and 2, both orders
    assert intra_modal_constraint(v, measure="l2", band="literal", mu_down=0.5, mu_up=2.5).item() == pytest.approx(6.0)


def test_imc_terms_are_logged_and_weighted_by_lambda():
    v = _three_unit_vectors()
    loss = RankingLoss(imc=IMCSettings(lam=0.5, measure="cosine", band="code"))
    terms = loss(v, v.flip(0))
    assert set(terms) == {"rank_i2t", "rank_t2i", "rank", "imc_image", "imc_text", "imc"}
    assert terms["imc"].item() == pytest.approx(0.5 * (terms["imc_image"] + terms["imc_text"]).item())
    assert loss.total(terms).item() == pytest.approx((terms["rank"] + terms["imc"]).item())


def test_imc_settings_reject_bad_values():
    with pytest.raises(ValueError):
        IMCSettings(measure="cos")
    with pytest.raises(ValueError):
        IMCSettings(band="absolute")
    with pytest.raises(UserError, match=r"^config loss: unknown key\(s\) 'margn'"):
        RankingLoss.from_config({"margn": 0.2})
    with pytest.raises(UserError, match=r"^config loss.imc: "):
        RankingLoss.from_config({"imc": {"measure": "cos"}})


@pytest.mark.parametrize("world", [2, 4])
def test_negatives_gathered_across_ranks_match_one_process(monkeypatch, world):
    """Emulated ranks: each scores its local anchors against the gathered global batch.  The ranks'
    losses sum to the one-process loss and their gradient (what all_gather_with_grad back-propagates,
    tested in tests/shared) equals the one-process gradient (MH + cosine IMC, code band)."""
    import retrieval.losses as losses

    torch.manual_seed(0)
    images = torch.nn.functional.normalize(torch.randn(8, 5), dim=1).requires_grad_()
    texts = torch.nn.functional.normalize(torch.randn(8, 5), dim=1).requires_grad_()
    loss = RankingLoss(imc=IMCSettings(lam=1.0, measure="cosine", band="code"))
    local = 8 // world

    def objective(terms, count):  # IMC terms are divided by the local batch: undo it to compare sums
        return terms["rank"] + count * (terms["imc_image"] + terms["imc_text"])

    single = objective(loss(images, texts), 8)
    expected = torch.autograd.grad(single, (images, texts))
    rank = {"value": 0}
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: rank["value"])
    total = torch.zeros(())
    for r in range(world):
        rank["value"] = r
        rows = slice(local * r, local * (r + 1))
        local_images, local_texts = images[rows], texts[rows]
        owners = {id(local_images): images, id(local_texts): texts}
        monkeypatch.setattr(losses, "all_gather_with_grad", lambda t, owners=owners: owners.get(id(t), t))
        total = total + objective(loss(local_images, local_texts), local)
    assert total.item() == pytest.approx(single.item(), rel=1e-6)
    got = torch.autograd.grad(total, (images, texts))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got, expected))


@pytest.mark.parametrize("hardest", [True, False])
@pytest.mark.parametrize("mask", [True, False])
def test_score_matrix_loss_equals_embedding_loss(hardest, mask):
    """Pairwise models train on a (B, B) score matrix; the terms equal the embedding path on S = I·Tᵀ."""
    gen = torch.Generator().manual_seed(0)
    images = torch.nn.functional.normalize(torch.randn(6, 8, generator=gen), dim=1)
    texts = torch.nn.functional.normalize(torch.randn(6, 8, generator=gen), dim=1)
    ids = torch.tensor([0, 0, 1, 2, 2, 3])
    loss = RankingLoss(hardest=hardest, mask_same_image=mask, imc=IMCSettings(measure="cosine"))
    expected = loss(images, texts, ids)
    got = loss.from_scores(images @ texts.T, ids, images, texts)
    assert set(got) == set(expected)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name])
