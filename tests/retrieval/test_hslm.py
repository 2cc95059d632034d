"""HSLM (docs/retrieval.md): pairwise checks, the ablation options, word gates, train + evaluate."""

import json

import pytest
import torch

from shared.config import load_config

from retrieval.explain import export_explanations
from retrieval.models import build_model
from retrieval.models.hslm import WordSelfAttention

from . import pairwise_checks as checks
from .model_batches import CONFIGS, VOCAB, image_batch, single_thread, text_batch  # noqa: F401 (autouse fixture)


def hslm(seed: int = 0, **overrides) -> torch.nn.Module:
    config = load_config(CONFIGS / "hslm_tiny.yaml")
    config["model"].update(overrides)
    torch.manual_seed(seed)
    return build_model("hslm", config, vocab_size=VOCAB)


VARIANTS = {"default": {},
            "options": {"self_attention": "softmax", "self_attention_residual": True, "cross_attention": "softmax",
                        "pool_form": "parametric", "similarity_head": "saf"}}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_shapes_and_padding(variant):
    model = hslm(**VARIANTS[variant])
    checks.check_shapes(model)
    checks.check_padding_never_changes_a_score(model)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_tile_scores_equal_one_pair_at_a_time(variant):
    checks.check_tile_equals_one_pair_at_a_time(hslm(**VARIANTS[variant]))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_gradients_reach_every_parameter(variant):
    checks.check_gradients_reach_every_parameter(hslm(**VARIANTS[variant]))


def test_literal_self_attention_divides_by_sentence_length():
    """Eq. 6: E_f = (E_Q E_Kᵀ / M) E_V over the M valid words, no softmax."""
    torch.manual_seed(0)
    attention = WordSelfAttention(4)
    words = torch.randn(1, 5, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0]], dtype=torch.bool)
    e = words[0, :3]
    q, k, v = e @ attention.query.weight.T, e @ attention.key.weight.T, e @ attention.value.weight.T
    out, weights = attention(words * mask.unsqueeze(-1), mask)
    torch.testing.assert_close(weights[0, :3, :3], q @ k.T / 3)
    assert torch.allclose(out[0, :3], (q @ k.T / 3) @ v, atol=1e-6)
    assert torch.equal(out[0, 3:], torch.zeros(2, 4))


def test_word_gates_and_cross_attention():
    model = hslm().eval()
    texts = text_batch(4, max_len=6)
    with torch.no_grad():
        details = model.score_details(model.encode_images(image_batch(3, regions=5, valid=torch.tensor([5, 3, 2]))),
                                      model.encode_texts(texts))
    mask = torch.arange(6).unsqueeze(0) < texts["lengths"].unsqueeze(1)
    assert details["word_gates"].shape == (3, 4, 6) and details["global_gate"].shape == (3, 4)
    assert torch.all(details["word_gates"][:, ~mask] == 0) and torch.all(details["word_gates"][:, mask] > 0)
    attention = details["cross_attention"]
    assert attention.shape == (3, 4, 6, 5)
    assert torch.allclose(attention.sum(-1), torch.ones(3, 4, 6), atol=1e-5)
    assert torch.all(attention[1, :, :, 3:] == 0)  # image 1 has 3 valid regions
    assert torch.isfinite(details["scores"]).all()  # Eq. 22: S_F = FC(S_A), an unbounded score
    saf = hslm(similarity_head="saf").eval()
    with torch.no_grad():
        scores = saf.score_details(saf.encode_images(image_batch(3, regions=5)), saf.encode_texts(texts))["scores"]
    assert torch.all((0 <= scores) & (scores <= 1))  # SAF: sigmoid score


def test_imc_option():
    config = load_config(CONFIGS / "hslm_tiny.yaml")
    config["loss"]["imc"] = {"lam": 1.0, "measure": "l1", "band": "code"}
    checks.check_imc_term(build_model("hslm", config, vocab_size=VOCAB))


def test_overfits_a_32_pair_batch():
    checks.check_overfits_32_pairs(hslm())


def test_train_evaluate_and_export_word_gates(tmp_path):
    data = checks.synscenes(tmp_path / "scenes")
    run = checks.check_train_then_evaluate("hslm", "hslm_tiny", data, tmp_path)
    report = export_explanations(run["best"], data, "test", images=[0, 3], out=tmp_path / "explain.json", progress=False)
    assert json.loads((tmp_path / "explain.json").read_text())["model"] == "hslm"
    first = report["images"][0]
    assert first["index"] == 0 and len(first["captions"]) == 5 and len(first["retrieved"]) == 5
    caption = first["captions"][0]
    words = [w["word"] for w in caption["words"]]
    assert words[0] == "<start>" and words[-1] == "<end>" and words[1] == caption["text"].split()[0].lower()
    total = sum(w["weight"] for w in caption["words"]) + caption["global_gate"] / (
        sum(w["gate"] for w in caption["words"]) + caption["global_gate"])
    assert total == pytest.approx(1.0, abs=1e-5)
    assert all(0 <= w["top_region"]["index"] < 36 and len(w["top_region"]["box"]) == 4 for w in caption["words"])
