"""Two-stage search with a (test-only) pairwise model, and the SynScenes PNG explanations of 3SHNet hits."""

import json

import cv2
import faiss
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import retrieval
from retrieval.cli import main
from retrieval.data.precomp import load_split, resolve_precomp_dir
from retrieval.search.encoder import Retriever
from retrieval.search.explain import draw_hit, grid_boxes, words_of
from retrieval.search.index import Index, SearchResult
from retrieval.search.rerank import (
    NOT_LISTED, check_pairwise, list_ranks, recall_from_ranks, rerank_image_to_text, rerank_text_to_image,
)
from retrieval.synth.generate import generate
from retrieval.models import CONFIG_DIR
from retrieval.train import train
from shared.config import load_run_config
from shared.errors import UserError
from shared.metrics import positive_ranks

FAST = ["train.epochs=1", "train.batch_size=16"]


class ToyCrossAttention(nn.Module):
    """A tiny pairwise model (PairwiseModel protocol): each word attends over the regions (SCAN-style t2i)."""

    family = "pairwise"

    def __init__(self, vocab_size: int, feature_dim: int, dim: int = 8) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.regions = nn.Linear(feature_dim, dim)
        self.words = nn.Embedding(vocab_size, dim)

    def image_inputs(self):
        return ("regions", "region_mask")

    def encode_images(self, batch):
        return {"regions": F.normalize(self.regions(batch["regions"]), dim=-1)}

    def encode_texts(self, batch):
        mask = (torch.arange(batch["tokens"].shape[1])[None] < batch["lengths"][:, None]).float()
        return {"words": F.normalize(self.words(batch["tokens"]), dim=-1), "mask": mask}

    def forward_sim(self, images, texts):
        r, w, m = images["regions"], texts["words"], texts["mask"]
        attention = torch.softmax(10 * torch.einsum("ikd,tld->itlk", r, w), dim=-1)
        context = F.normalize(torch.einsum("itlk,ikd->itld", attention, r), dim=-1)
        cosine = (context * w[None]).sum(-1)
        return (cosine * m[None]).sum(-1) / m.sum(-1)[None]


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("synscenes")
    generate(root, n_train=48, n_dev=16, n_test=24, seed=5, progress=False)
    return root


@pytest.fixture(scope="module")
def runs(scenes, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return {model: train(model, scenes, load_run_config(config, CONFIG_DIR, FAST), out / model, device="cpu",
                         show_progress=False)
            for model, config in (("vsepp", "vsepp_tiny"), ("3shnet", "shnet_tiny"))}


@pytest.fixture(scope="module")
def two_tower(runs):
    return retrieval.load(str(runs["vsepp"]), "cpu")


@pytest.fixture(scope="module")
def toy(two_tower):
    model = ToyCrossAttention(len(two_tower.text.vocab), 2048).eval()
    return Retriever(model, {"model": "toy_pairwise"}, two_tower.text, two_tower.checkpoint)


@pytest.fixture(scope="module")
def split(scenes):
    return load_split(resolve_precomp_dir(scenes), "test", feature_dim=None)


QUERIES = ["a red cube left of a blue sphere", "there are three cylinders", "a small ball behind a large cone",
           "a green cylinder", "two cubes"]


def test_rerank_text_to_image_matches_full_pairwise_scores_on_the_shortlist(two_tower, toy, scenes, split):
    index = Index.build(two_tower, scenes, "test", progress=False)
    first = index.search(two_tower.encode_texts(QUERIES), 8)
    full = toy.score(split, QUERIES)  # (24 images, 5 queries), tiled forward_sim over everything
    for per_tile in (1, 3):
        result = rerank_text_to_image(toy, index, first, QUERIES, topk=4, queries_per_tile=per_tile)
        for q in range(len(QUERIES)):
            candidates = first.ids[q]
            expected = candidates[np.argsort(-full[candidates, q], kind="stable")[:4]]
            assert result.ids[q].tolist() == expected.tolist()
            np.testing.assert_allclose(result.scores[q], full[expected, q], atol=1e-5)
    everything = index.search(two_tower.encode_texts(QUERIES), 24)
    result = rerank_text_to_image(toy, index, everything, QUERIES, topk=24)
    np.testing.assert_allclose(result.scores, -np.sort(-full.T, axis=1), atol=1e-5)  # shortlist = gallery: exact
    assert result.hits(0)[0]["rank"] == 1 and "path" in result.hits(0)[0]


def test_rerank_image_to_text_over_a_caption_bank(two_tower, toy, scenes, split):
    index = Index.build(two_tower, scenes, "test", kind="captions", progress=False)
    images = {"regions": np.asarray(split.images[[2, 7]])}
    first = index.search(two_tower.encode_images(images), 10)
    result = rerank_image_to_text(toy, index, first, images, topk=5, queries_per_tile=2)
    full = toy.score(images, split.captions)  # (2, 120)
    for q in range(2):
        expected = first.ids[q][np.argsort(-full[q, first.ids[q]], kind="stable")[:5]]
        assert result.ids[q].tolist() == expected.tolist()
        np.testing.assert_allclose(result.scores[q], full[q, expected], atol=1e-5)
        assert [h["text"] for h in result.hits(q)] == [split.captions[j] for j in expected]


def test_list_ranks_follow_the_pessimistic_kernel():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 3, size=(6, 8)).astype(np.float32)  # ties everywhere
    targets = [{0}, {1, 5}, {7}, {2}, {3, 4}, {6}]
    order = np.argsort(-scores, axis=1, kind="stable")
    full = SearchResult(np.take_along_axis(scores, order, 1), order, [], pool=8)  # the whole gallery listed
    table = np.array([sorted(t) + [-1] * (2 - len(t)) for t in targets])
    np.testing.assert_array_equal(list_ranks(full, targets), positive_ranks(scores, table))
    # a list cut from a larger pool: a target tying the cut-off score may be outranked by unlisted items
    cut = SearchResult(np.array([[0.9, 0.5, 0.5], [0.9, 0.8, 0.5], [0.9, 0.8, 0.5]], np.float32),
                       np.array([[4, 1, 2], [4, 1, 2], [4, 1, 2]]), [], pool=10)
    ranks = list_ranks(cut, [{1}, {1}, {3}])
    assert ranks[0] == 2 + 7 and ranks[1] == 1 and ranks[2] == NOT_LISTED  # 2 listed >= it, 7 unlisted may tie
    assert recall_from_ranks(ranks, (1, 2, 3)) == pytest.approx({"r1": 0.0, "r2": 100 / 3, "r3": 100 / 3})
    bad = SearchResult(np.array([[0.9, np.nan]], np.float32), np.array([[0, 1]]), [], pool=2)
    with pytest.raises(UserError, match="--heldout: query 0 has score nan at rank 2"):
        list_ranks(bad, [{0}])


class ConstantPairwise(ToyCrossAttention):
    """A re-ranker that gives every pair the same score (a collapsed cross-attention model)."""

    def forward_sim(self, images, texts):
        return torch.full((images["regions"].shape[0], texts["words"].shape[0]), 0.5)


def test_heldout_with_a_constant_reranker_scores_at_most_chance(two_tower, scenes, tmp_path, monkeypatch):
    out = Index.build(two_tower, scenes, "test", progress=False).save(tmp_path / "idx")
    constant = Retriever(ConstantPairwise(len(two_tower.text.vocab), 2048).eval(), {"model": "toy_pairwise"},
                         two_tower.text, two_tower.checkpoint)
    original = Retriever.load.__func__
    monkeypatch.setattr(Retriever, "load", classmethod(
        lambda cls, checkpoint, device="auto": constant if checkpoint == "const" else original(cls, checkpoint, device)))
    assert main(["search", "--index", str(out), "--heldout", "24", "--rerank", "const", "--shortlist", "8",
                 "--topk", "5", "--json", str(tmp_path / "r.json")]) == 0
    heldout = json.loads((tmp_path / "r.json").read_text())["heldout"]
    # the re-ranker's order is arbitrary among the 8 shortlisted images: no target is placed above a tie
    assert heldout["r1"] == 0.0 and heldout["r5"] == 0.0 and heldout["first_stage"]["r5"] > 0.0


def test_cli_rerank_reports_shortlist_recall(two_tower, toy, scenes, tmp_path, monkeypatch, capsys):
    out = Index.build(two_tower, scenes, "test", progress=False).save(tmp_path / "idx")
    original = Retriever.load.__func__

    def load(cls, checkpoint, device="auto"):
        return toy if checkpoint == "toy" else original(cls, checkpoint, device)

    monkeypatch.setattr(Retriever, "load", classmethod(load))
    report_file = tmp_path / "r.json"
    assert main(["search", "--index", str(out), "--heldout", "24", "--rerank", "toy", "--shortlist", "6",
                 "--topk", "5", "--json", str(report_file)]) == 0
    heldout = json.loads(report_file.read_text())["heldout"]
    assert heldout["shortlist"] == 6 and heldout["r5"] <= heldout["shortlist_recall"]
    assert heldout["first_stage"]["r5"] <= heldout["shortlist_recall"]
    assert "shortlist 6 recall" in capsys.readouterr().out
    assert main(["search", "--index", str(out), "a red cube", "--rerank", "toy", "--shortlist", "6", "--topk", "3"]) == 0
    assert main(["search", "--index", str(out), "a red cube", "--rerank", "toy", "--shortlist", "6"]) == 2
    assert "--shortlist 6 is smaller than --topk 10" in capsys.readouterr().err
    with pytest.raises(UserError, match="is not a pairwise model"):
        check_pairwise(two_tower)
    with pytest.raises(UserError, match="pairwise model and cannot"):
        Index.build(toy, scenes, "test", progress=False)


def test_explain_writes_salience_pngs_for_3shnet_hits(runs, scenes, tmp_path):
    shnet = retrieval.load(str(runs["3shnet"]), "cpu")
    out = Index.build(shnet, scenes, "test", progress=False).save(tmp_path / "idx")
    report_file = tmp_path / "r.json"
    assert main(["search", "--index", str(out), "a red cube left of a blue sphere", "--topk", "2",
                 "--explain", str(tmp_path / "png"), "--json", str(report_file)]) == 0
    records = json.loads(report_file.read_text())["explanations"]
    assert [r["rank"] for r in records] == [1, 2]
    for record in records:
        picture = cv2.imread(record["png"])
        assert picture.shape == (128 * 4 + 56, 192 * 4, 3)
        assert 1 <= len(record["matched_words"]) <= 3
        assert set(record["matched_words"]) <= set(words_of("a red cube left of a blue sphere"))
        assert len(record["top_regions"]) == 5 and all(0 <= k < 36 for k in record["top_regions"])
    vsepp_index = Index.build(retrieval.load(str(runs["vsepp"]), "cpu"), scenes, "test", progress=False).save(tmp_path / "v")
    assert main(["search", "--index", str(vsepp_index), "a cube", "--topk", "1", "--explain", str(tmp_path / "v_png")]) == 2


def test_cross_attention_explanation_and_drawing():
    """A pairwise model's ``explain`` word × region map gives the region salience and the word strengths;
    a model without ``explain`` is refused by name in one line."""
    class Explaining(ToyCrossAttention):
        def explain(self, image_batch, text_batch):
            r = self.encode_images(image_batch)["regions"]
            w = self.encode_texts(text_batch)["words"]
            return {"cross_attention": torch.softmax(torch.einsum("bkd,bld->blk", r, w), dim=-1)}

    from retrieval.data.pairs import TextEncoding
    from retrieval.data.vocab import Vocabulary
    from retrieval.search.explain import pair_explanation

    vocab = Vocabulary.build(["a red cube left of a blue sphere"], min_count=1)
    model = Explaining(len(vocab), 16).eval()
    retriever = Retriever(model, {"model": "explaining"}, TextEncoding("tokens", vocab=vocab), "unused")
    arrays = {"regions": np.random.default_rng(0).standard_normal((2, 6, 16)).astype(np.float32)}
    salience, strengths = pair_explanation(retriever, arrays, 1, "a red cube", None)
    assert salience.shape == (6,) and len(strengths) == 3 and np.isclose(salience.sum(), 1.0, atol=1e-5)
    with torch.no_grad():
        texts = next(iter(retriever.text_loader(["a red cube"], 1)))
        images = next(iter(retriever.image_loader(arrays, 1, [1])))
        attention = model.explain(images, texts)["cross_attention"][0]
    assert strengths == attention[1:4].max(dim=1).values.tolist()   # word j: its best region (after <start>)
    silent = Retriever(ToyCrossAttention(len(vocab), 16).eval(), {"model": "toy"}, TextEncoding("tokens", vocab=vocab),
                       "unused")
    with pytest.raises(UserError, match=r"^model 'toy' does not explain its outputs"):
        pair_explanation(silent, arrays, 1, "a red cube", None)
    canvas = draw_hit(np.zeros((128, 192, 3), np.uint8), grid_boxes(192, 128)[:6], salience, "a red cube", strengths, "t")
    assert canvas.shape == (568, 768, 3) and canvas[:512].any()


def test_bench_search_quick_writes_every_measurement(tmp_path):
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "tools" / "bench_search.py"
    spec = importlib.util.spec_from_file_location("bench_search", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_search"] = module
    spec.loader.exec_module(module)
    out = tmp_path / "bench.json"
    assert module.main(["--quick", "--repeats", "1", "--json", str(out)]) == 0
    torch.set_num_threads(1)
    report = json.loads(out.read_text())
    assert report["ann"]["exact_qps"] > 0 and {"ivf", "hnsw"} <= set(report["ann"])
    for kind, knob in (("ivf", "nprobe"), ("hnsw", "ef_search")):
        result = report["ann"][kind]
        assert result["recall_at_10"] >= 0.98 and result["qps"] > 0 and result[knob] is not None
    (row,) = report["protocol"]
    assert row["config"] == "vsepp_tiny" and row["dim"] == 64 and row["t2i_qps"] > 0 and row["i2t_qps"] > 0
    assert all(report["pairwise"][f"{kind}_{d}_qps"] > 0 for kind in ("full", "two_stage") for d in ("t2i", "i2t"))
