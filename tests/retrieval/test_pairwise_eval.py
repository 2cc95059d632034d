"""Exact pairwise evaluation with HiRE: tiles equal one-pair-at-a-time scores, a 32-pair overfit, HiRE*
as the mean of the two saved matrices, and `retrieval train` + `retrieval evaluate` end to end."""

import json

import numpy as np
import pytest
import torch

from retrieval.cli import main
from retrieval.evaluation import evaluate_protocol
from retrieval.evaluation.similarity import pairwise_similarity
from retrieval.explain import export_explanations
from retrieval.synth.generate import generate
from shared.checkpoint import load_checkpoint
from .model_batches import single_thread  # noqa: F401 (autouse fixture)
from .test_hire import NAMES, hire, hire_images, hire_texts


def _blocks(batch: dict, sizes: list[int]) -> list[dict]:
    out, start = [], 0
    for size in sizes:
        out.append({k: v[start:start + size] for k, v in batch.items()})
        start += size
    return out


def _trim(texts: dict) -> dict:
    """A caption batch cut to its own longest caption (different blocks get different lengths)."""
    longest = int(texts["attention_mask"].sum(1).max())
    return {k: v[:, :longest] for k, v in texts.items()}


@pytest.mark.parametrize("name", NAMES)
def test_tile_scorer_equals_one_pair_at_a_time(name):
    model = hire(name).eval()
    images = hire_images(5, valid=torch.tensor([8, 6, 8, 4, 7]))
    texts = hire_texts(7, max_len=9)
    image_blocks = _blocks(images, [2, 3])
    text_blocks = [_trim(b) for b in _blocks(texts, [3, 1, 3])]
    tiled = pairwise_similarity(model, image_blocks, text_blocks, tile=(2, 3), progress=False)
    budget = pairwise_similarity(model, image_blocks, text_blocks, progress=False)
    single = np.empty((5, 7), dtype=np.float32)
    with torch.inference_mode():
        for i in range(5):
            fi = model.encode_images({k: v[i:i + 1] for k, v in images.items()})
            for j in range(7):
                ft = model.encode_texts(_trim({k: v[j:j + 1] for k, v in texts.items()}))
                single[i, j] = float(model.score_pairs(fi, ft))
    np.testing.assert_allclose(tiled, single, atol=1e-5, rtol=0)
    np.testing.assert_allclose(budget, single, atol=1e-5, rtol=0)


def test_overfits_32_pairs_to_r1_100():
    torch.manual_seed(0)
    model = hire("hire_i2t", word_mask_rate=0.0, dropout=0.0)
    model.loss.margin = 0.2
    batch = {"images": hire_images(32, seed=3), "texts": hire_texts(32, seed=4), "image_ids": torch.arange(32)}
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(60):
        losses = model.training_losses(model(batch), batch)
        optimizer.zero_grad()
        losses["total"].backward()
        optimizer.step()
    sims = pairwise_similarity(model, [batch["images"]], [batch["texts"]], progress=False)
    assert np.array_equal(sims.argmax(axis=1), np.arange(32))  # i2t R@1 = 100
    assert np.array_equal(sims.argmax(axis=0), np.arange(32))  # t2i R@1 = 100


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("synscenes_hire")
    generate(root, n_train=32, n_dev=8, n_test=12, seed=3, progress=False)
    return root


def _check_explanation(report: dict, name: str) -> None:
    """HiRE export: strongest VSSG edges (weights in (0, 1]) and top word–region pairs per caption."""
    assert report["model"] == name and report["direction"] == name[-3:] and report["graph"] and report["boxes"]
    for image in report["images"]:
        edges = [e["weight"] for e in image["graph_edges"]]
        assert edges == sorted(edges, reverse=True) and all(0 < w <= 1 for w in edges)
        assert all(e["from"] != e["to"] and len(e["boxes"]) == 2 for e in image["graph_edges"])
        assert len(image["captions"]) == 5
        for caption in image["captions"]:
            weights = [p["weight"] for p in caption["top_pairs"]]
            assert len(weights) == 5 and weights == sorted(weights, reverse=True) and -1 <= caption["score"] <= 1
            assert all(p["word"] not in ("[CLS]", "[SEP]") and 0 <= p["region"] < 36 for p in caption["top_pairs"])


def test_train_evaluate_and_hire_star_ensemble(scenes, tmp_path, capsys):
    """`retrieval train` + `retrieval evaluate` for hire_i2t and hire_t2i (tiny), then HiRE* = the mean."""
    sims = {}
    for name in NAMES:
        run = tmp_path / name
        assert main(["train", "--model", name, "--data", str(scenes), "--out", str(run), "--no-progress",
                     "train.epochs=1", "train.batch_size=16"]) == 0
        _, meta = load_checkpoint(run / "best")
        assert meta["model"] == name and "dev" in meta
        assert main(["evaluate", "--checkpoint", str(run / "best.safetensors"), "--data", str(scenes),
                     "--save-sims", str(tmp_path / f"{name}.npy"), "--json", str(tmp_path / f"{name}.json")]) == 0
        report = json.loads((tmp_path / f"{name}.json").read_text())
        sims[name] = np.load(tmp_path / f"{name}.npy")
        assert report["images"] == 12 and sims[name].shape == (12, 60) and "hard" in report
        assert report["metrics"]["rsum"] == pytest.approx(evaluate_protocol(sims[name], "full")["rsum"])
        _check_explanation(export_explanations(run / "best.safetensors", scenes, "test", [0, 3], progress=False), name)
    assert "hire_i2t on synscenes test" in capsys.readouterr().out
    assert main(["evaluate", "--ensemble", *(str(tmp_path / f"{n}.npy") for n in NAMES), "--protocol", "full",
                 "--json", str(tmp_path / "star.json")]) == 0
    star = json.loads((tmp_path / "star.json").read_text())
    mean = (sims["hire_i2t"] + sims["hire_t2i"]) / 2
    expected = evaluate_protocol(mean, "full")
    assert {k: star[k] for k in expected} == pytest.approx(expected)
