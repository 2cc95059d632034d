"""`retrieval explain`: 3SHNet salience / attention and SMFEA tree-node exports on a tiny SynScenes set."""

import json

import numpy as np
import pytest
import torch

from retrieval.cli import main
from retrieval.data.precomp import load_split, resolve_precomp_dir
from retrieval.models import load_model
from retrieval.explain import export_explanations
from retrieval.parsing.cache import ParseCache
from retrieval.synth.generate import generate
from retrieval.evaluation.checkpoint import split_similarity
from retrieval.models import CONFIG_DIR
from retrieval.train import train
from shared.config import load_run_config
from shared.errors import UserError

FAST = ["train.epochs=1", "train.batch_size=16"]


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """One intra-op thread: on the shared 2-core machine OpenMP oversubscription slows tiny models ~100×."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("synscenes")
    generate(root, n_train=48, n_dev=16, n_test=24, seed=5, progress=False)
    assert main(["parse", "--data", str(root), "--quiet"]) == 0
    return root


@pytest.fixture(scope="module")
def checkpoints(scenes, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return {model: train(model, scenes, load_run_config(config, CONFIG_DIR, FAST), runs / model, device="cpu",
                         show_progress=False)
            for model, config in (("3shnet", "shnet_tiny"), ("smfea", "smfea_tiny"), ("vsepp", "vsepp_tiny"))}


def _check_retrieved(entry, n_captions):
    retrieved = entry["retrieved"]
    assert len(retrieved) == 5
    scores = [r["score"] for r in retrieved]
    assert scores == sorted(scores, reverse=True) and all(-1.0 - 1e-5 <= s <= 1.0 + 1e-5 for s in scores)
    for r in retrieved:
        assert 0 <= r["caption"] < n_captions and r["ground_truth"] == (r["caption"] // 5 == entry["index"])


def test_shnet_export_salience_and_attention(scenes, checkpoints, tmp_path):
    out = tmp_path / "shnet.json"
    report = export_explanations(checkpoints["3shnet"], scenes, "test", [0, 5], out, progress=False)
    assert json.loads(out.read_text()) == report
    assert report["model"] == "3shnet" and report["variant"] == "region" and report["boxes"] is True
    rows, cols = report["attention_map"]
    assert (rows, cols) == (32, 32)  # 64 × 64 map, stride 2
    boxes = np.load(resolve_precomp_dir(scenes).file("test", "boxes.npy"))
    assert [image["index"] for image in report["images"]] == [0, 5]
    for image in report["images"]:
        regions = image["regions"]
        assert sorted(r["index"] for r in regions) == list(range(boxes.shape[1]))
        salience = [r["salience"] for r in regions]
        assert salience == sorted(salience, reverse=True) and all(0.0 <= a <= 1.0 for a in salience)
        for region in regions:
            np.testing.assert_allclose(region["box"], boxes[image["index"], region["index"]], rtol=1e-6)
            weights = [cell["weight"] for cell in region["attention"]]
            assert len(weights) == 5 and weights == sorted(weights, reverse=True)
            assert all(w >= 0.0 for w in weights) and sum(weights) <= 1.0 + 1e-6
            assert all(0 <= c["row"] < rows and 0 <= c["col"] < cols for c in region["attention"])
        _check_retrieved(image, 120)
    model, _, text = load_model(checkpoints["3shnet"])
    sims = split_similarity(model, load_split(resolve_precomp_dir(scenes), "test", feature_dim=None), text, 64, False)
    for image in report["images"]:
        top = np.argsort(-sims[image["index"]], kind="stable")[:5]
        assert [r["caption"] for r in image["retrieved"]] == top.tolist()
        np.testing.assert_allclose([r["score"] for r in image["retrieved"]], sims[image["index"], top], atol=1e-5)


def test_smfea_export_tree_nodes(scenes, checkpoints, tmp_path):
    report = export_explanations(checkpoints["smfea"], scenes, "test", [3], tmp_path / "smfea.json", progress=False)
    dictionaries = ParseCache(resolve_precomp_dir(scenes), "spacy").load_dictionaries()
    fragments, relations = set(dictionaries.fragments.labels), set(dictionaries.relations.labels)
    captions = resolve_precomp_dir(scenes).file("test", "caps.txt").read_text().splitlines()
    assert report["ground_truth"] is True and len(report["images"]) == 1
    image = report["images"][0]

    def check_tree(nodes, with_probability):
        assert [n["node"] for n in nodes] == list(range(1, 8))
        for n in nodes:
            expected = "fragment" if n["node"] % 2 == 1 else "relation"
            assert n["kind"] == expected and n["label"] in (fragments if expected == "fragment" else relations)
            if with_probability:
                assert 0.0 < n["probability"] <= 1.0

    check_tree(image["visual_tree"], True)
    assert len(image["captions"]) == 5
    for c, entry in enumerate(image["captions"]):
        assert entry["caption"] == 15 + c and entry["text"] == captions[15 + c]
        check_tree(entry["predicted_tree"], True)
        check_tree(entry["ground_truth_tree"], False)
        assert all("text" in n for n in entry["ground_truth_tree"])
    _check_retrieved(image, 120)


def test_cli_default_images_and_errors(scenes, checkpoints, tmp_path, capsys):
    out = tmp_path / "cli.json"
    assert main(["explain", "--checkpoint", str(checkpoints["3shnet"]), "--data", str(scenes), "--out", str(out),
                 "--quiet"]) == 0
    assert [image["index"] for image in json.loads(out.read_text())["images"]] == list(range(10))
    with pytest.raises(UserError, match="model 'vsepp' does not explain its outputs"):
        export_explanations(checkpoints["vsepp"], scenes, progress=False)
    with pytest.raises(UserError, match="index 24 is out of range"):
        export_explanations(checkpoints["smfea"], scenes, "test", [1, 24], progress=False)
    assert main(["explain", "--checkpoint", str(checkpoints["vsepp"]), "--data", str(scenes),
                 "--out", str(tmp_path / "x.json")]) == 2
    assert "vsepp" in capsys.readouterr().err and not (tmp_path / "x.json").exists()


def test_grid_cells_carry_their_position_not_a_box():
    from retrieval.explain import shnet_regions

    salience = np.linspace(0.1, 0.9, 49)
    attention = np.full((49, 16), 1 / 16)
    attention[:, 6] = 0.5
    regions = shnet_regions(salience, attention / attention.sum(1, keepdims=True), (4, 4), None, grid=True)
    assert regions[0]["index"] == 48 and regions[0]["cell"] == [6, 6] and "box" not in regions[0]
    assert regions[-1]["cell"] == [0, 0] and regions[0]["attention"][0] == {"row": 1, "col": 2,
                                                                             "weight": pytest.approx(0.5 / (15 / 16 + 0.5))}
