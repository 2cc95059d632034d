import pytest
import torch

from shared.layers import (
    MLP,
    GraphConvolution,
    MultiHeadGraphAttention,
    RelationalGraphConvolution,
    l2_normalize,
    masked_max,
    masked_mean,
    masked_softmax,
    normalize_adjacency,
)


def test_masked_reductions_ignore_padding_and_never_nan():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 3)
    mask = torch.tensor([[1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    changed = x.clone()
    changed[0, 2:] = 100.0
    assert torch.allclose(masked_mean(x, mask)[0], x[0, :2].mean(0))
    assert torch.equal(masked_mean(x, mask)[0], masked_mean(changed, mask)[0])
    assert torch.equal(masked_max(x, mask)[0], masked_max(changed, mask)[0])
    assert torch.equal(masked_mean(x, mask)[1], torch.zeros(3))
    weights = masked_softmax(x[..., 0], mask)
    assert torch.allclose(weights[0].sum(), torch.tensor(1.0)) and torch.all(weights[0, 2:] == 0)
    assert torch.all(weights[1] == 0) and not torch.isnan(weights).any()


def test_l2_normalize_unit_norm_and_zero_safe():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    out = l2_normalize(x)
    assert torch.allclose(out[0], torch.tensor([0.6, 0.8])) and torch.equal(out[1], torch.zeros(2))


def test_mlp_per_token_shapes():
    mlp = MLP(8, 16, 4, num_layers=2)
    assert mlp(torch.randn(3, 8)).shape == (3, 4)
    assert mlp(torch.randn(3, 5, 8)).shape == (3, 5, 4)
    with pytest.raises(ValueError):
        MLP(8, 16, 4, num_layers=0)


def test_multihead_gat_matches_explicit_per_head_computation():
    torch.manual_seed(0)
    gat = MultiHeadGraphAttention(in_dim=6, attn_dim=8, heads=2, out_dim=6)
    x = torch.randn(2, 4, 6)
    out, attention = gat(x)
    q, k, v = gat.query(x), gat.key(x), gat.value(x)
    heads = []
    for h in range(2):
        sl = slice(4 * h, 4 * h + 4)
        attn = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / 2.0, dim=-1)
        heads.append(attn @ v[..., sl])
    expected = torch.relu(gat.combine(torch.cat(heads, dim=-1)))
    assert torch.allclose(out, expected, atol=1e-6)
    assert attention.shape == (2, 2, 4, 4)
    assert torch.allclose(attention.sum(-1), torch.ones(2, 2, 4))
    assert not hasattr(gat, "last_attention")


def test_gat_adjacency_mask_blocks_non_neighbours():
    torch.manual_seed(0)
    gat = MultiHeadGraphAttention(in_dim=4, attn_dim=8, heads=4)
    x = torch.randn(1, 3, 4)
    adjacency = torch.tensor([[1, 1, 0], [1, 1, 0], [0, 0, 1]])
    out, attention = gat(x, adjacency)
    moved = x.clone()
    moved[0, 2] += 5.0
    assert torch.allclose(gat(moved, adjacency)[0][0, :2], out[0, :2], atol=1e-6)
    assert torch.all(attention[..., :2, 2] == 0)


def test_gcn_and_normalisation():
    adj = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert torch.allclose(normalize_adjacency(adj, "sym"), torch.full((2, 2), 0.5))
    assert torch.allclose(normalize_adjacency(adj, "row").sum(-1), torch.ones(2))
    with pytest.raises(ValueError):
        normalize_adjacency(adj, "bogus")
    gcn = GraphConvolution(3, 5)
    assert gcn(torch.randn(4, 2, 3), adj).shape == (4, 2, 5)
    assert gcn(torch.randn(4, 2, 3), adj.expand(4, 2, 2)).shape == (4, 2, 5)


def test_relational_gcn_uses_each_relation_and_gradients_flow():
    torch.manual_seed(0)
    rgcn = RelationalGraphConvolution(3, 4, num_relations=2, activation=False)
    x = torch.randn(2, 5, 3, requires_grad=True)
    adjacency = torch.zeros(2, 2, 5, 5)
    adjacency[:, 0, 0, 1] = 1.0
    out = rgcn(x, adjacency)
    expected_row0 = rgcn.self_weight(x[:, 0]) + x[:, 1] @ rgcn.relation_weights[0]
    assert torch.allclose(out[:, 0], expected_row0, atol=1e-6)
    assert torch.allclose(out[:, 2], rgcn.self_weight(x[:, 2]), atol=1e-6)
    out.sum().backward()
    assert rgcn.relation_weights.grad[0].abs().sum() > 0 and x.grad is not None
    with pytest.raises(ValueError, match="relation slices"):
        rgcn(x, torch.zeros(2, 3, 5, 5))
