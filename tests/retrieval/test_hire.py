"""HiRE (the thesis Ch. 7): shapes, masks, gradients, the VSSG graph input, word masking, options."""

from pathlib import Path

import numpy as np
import pytest
import torch

from shared.config import load_config
from shared.errors import UserError

from retrieval.data.pairs import check_image_inputs, image_item
from retrieval.data.precomp import load_split
from retrieval.models import MODELS, build_model
from retrieval.models.hire import mask_words
from retrieval.parsing.region_graph import region_adjacency, scene_graph_adjacency

from .fixtures import write_precomp
from .model_batches import SMALL_BERT, image_batch, single_thread, text_batch  # noqa: F401 (autouse fixture)

CONFIGS = Path(__file__).resolve().parents[2] / "retrieval" / "configs"
NAMES = ("hire_i2t", "hire_t2i")


def hire(name: str, seed: int = 0, **overrides) -> torch.nn.Module:
    config = load_config(CONFIGS / f"{name}_tiny.yaml")
    config["model"].update({"bert": dict(SMALL_BERT), **overrides})
    torch.manual_seed(seed)
    return build_model(name, config)


def hire_images(batch: int, regions: int = 8, valid: torch.Tensor | None = None, seed: int = 0) -> dict:
    images = image_batch(batch, regions, valid, seed)
    g = torch.Generator().manual_seed(seed + 7)
    graph = torch.rand(batch, regions, regions, generator=g) > 0.6
    images["region_graph"] = graph | graph.transpose(1, 2) | torch.eye(regions, dtype=torch.bool)
    return {k: images[k] for k in ("regions", "region_mask", "region_graph")}


def hire_texts(batch: int, max_len: int = 10, seed: int = 1) -> dict:
    texts = text_batch(batch, max_len, seed)
    return {"input_ids": texts["input_ids"], "attention_mask": texts["attention_mask"]}


def test_registered_with_tiny_and_paper_configs():
    for name in NAMES:
        assert name in MODELS.names() and MODELS.get(name).config_name("f30k") == f"{name}_f30k"
        for suffix in ("tiny", "f30k", "coco"):
            assert (CONFIGS / f"{name}_{suffix}.yaml").is_file()
    assert load_config(CONFIGS / "hire_i2t_f30k.yaml")["model"]["smooth"] == 4.0
    assert load_config(CONFIGS / "hire_t2i_f30k.yaml")["model"]["smooth"] == 9.0
    assert load_config(CONFIGS / "hire_t2i_tiny.yaml")["model"]["smooth"] == 9.0


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_features(name):
    model = hire(name).eval()
    images, texts = hire_images(3), hire_texts(4)
    with torch.no_grad():
        fi, ft = model.encode_images(images), model.encode_texts(texts)
        scores = model.forward_sim(fi, ft)
    assert fi["local"].shape == fi["raw"].shape == (3, 8, 32) and fi["pooled"].shape == fi["global"].shape == (3, 32)
    assert ft["local"].shape == (4, 10, 32) and ft["mask"].dtype == torch.bool
    assert scores.shape == (3, 4) and torch.all(scores.abs() <= 1 + 1e-5)
    assert model.image_inputs() == ("regions", "region_mask", "region_graph")
    assert hire(name, graph=False).image_inputs() == ("regions", "region_mask")
    assert model.family == "pairwise" and model.text_kind == "bert" and model.pair_bytes > 0


@pytest.mark.parametrize("name", NAMES)
def test_padding_never_changes_a_score(name):
    """Padded regions (any content) and extra padded word positions leave every score unchanged."""
    model = hire(name).eval()
    valid = torch.tensor([8, 5, 3])
    images, texts = hire_images(3, valid=valid), hire_texts(4)
    noisy = {k: v.clone() for k, v in images.items()}
    noisy["regions"][~images["region_mask"]] = 50.0
    longer = {k: torch.nn.functional.pad(v, (0, 3)) for k, v in texts.items()}
    with torch.no_grad():
        base = model.forward_sim(model.encode_images(images), model.encode_texts(texts))
        padded = model.forward_sim(model.encode_images(noisy), model.encode_texts(longer))
    torch.testing.assert_close(base, padded, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_gets_a_gradient(name):
    model = hire(name).train()
    batch = {"images": hire_images(4), "texts": hire_texts(4), "image_ids": torch.arange(4)}
    losses = model.training_losses(model(batch), batch)
    assert {"rank", "add", "total"} <= set(losses)
    torch.testing.assert_close(losses["total"], losses["rank"] + losses["add"])
    losses["total"].backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert not missing


def test_literal_readings_and_vector_gate_agree_with_the_pair_reference():
    for options in ({"fusion_input": "literal", "globals": "literal"}, {"gate": "vector", "self_attention": "literal"},
                    {"graph_norm": "count", "interaction_steps": 1}):
        model = hire("hire_i2t", **options).eval()
        images, texts = hire_images(2), hire_texts(3)
        with torch.no_grad():
            fi, ft = model.encode_images(images), model.encode_texts(texts)
            tile = model.forward_sim(fi, ft)
            pairs = torch.stack([model.score_pairs({k: v[i:i + 1].expand(3, *v.shape[1:]) for k, v in fi.items()}, ft)
                                 for i in range(2)])
        torch.testing.assert_close(tile, pairs, atol=1e-5, rtol=0)


def test_graph_edges_follow_the_adjacency():
    """Non-edges get zero weight (decision 'HiRE graph normalisation' softmax over each row's edges); an identity graph keeps regions apart."""
    model = hire("hire_i2t").eval()
    images = hire_images(2)
    with torch.no_grad():
        edges = model.encode_images(images)["edges"]
    assert torch.all(edges[~images["region_graph"]] == 0)
    torch.testing.assert_close(edges.sum(-1), torch.ones(2, 8))
    lonely = dict(images, region_graph=torch.eye(8, dtype=torch.bool).expand(2, 8, 8))
    with torch.no_grad():
        torch.testing.assert_close(model.encode_images(lonely)["edges"], torch.eye(8).expand(2, 8, 8))


def test_word_masking_spares_cls_sep_and_padding():
    torch.manual_seed(0)
    ids = torch.randint(1000, 2000, (64, 12))
    attention = (torch.arange(12).unsqueeze(0) < torch.randint(3, 13, (64, 1))).long()
    masked = mask_words(ids, attention, 0.1, 103)
    hit = masked == 103
    lengths = attention.sum(1)
    assert not hit[:, 0].any() and not hit[torch.arange(64), lengths - 1].any() and not hit[attention == 0].any()
    inner = int((lengths - 2).sum())
    assert 0.05 * inner < int(hit.sum()) < 0.15 * inner
    model = hire("hire_i2t", word_mask_rate=0.5).train()
    texts = hire_texts(2)
    torch.manual_seed(1)
    a = model.encode_texts(texts)["raw"]
    model.eval()
    b = model.encode_texts(texts)["raw"]
    assert not torch.allclose(a, b)  # masking only in training


def test_bad_options_are_errors():
    with pytest.raises(UserError, match=r"config model: unknown key\(s\) 'heads_count'"):
        hire("hire_i2t", heads_count=3)
    with pytest.raises(UserError, match="graph_norm"):
        hire("hire_i2t", graph_norm="sym")
    with pytest.raises(UserError, match="divisible"):
        hire("hire_i2t", heads=5)


def test_paper_config_builds_with_paper_dims():
    config = load_config(CONFIGS / "hire_i2t_f30k.yaml")
    config["model"]["bert"] = {"source": None, "pretrained": False, "arch": {"num_hidden_layers": 1}, "layers": None,
                               "freeze_embeddings": False}
    model = build_model("hire_i2t", config, pretrained=False)
    assert model.vsa.attention_dim == 256 and model.vsa.heads == 16 and model.dim == 1024
    assert model.region_fc.in_features == 2048 and len(model.interactions) == 2 and model.smooth == 4.0


def test_loader_delivers_the_vssg_adjacency(tmp_path):
    folder = write_precomp(tmp_path, splits={"train": 3}, regions=6)
    split = load_split(folder, "train", feature_dim=None, num_regions=None)
    item = image_item(split, 1, ("regions", "region_mask", "region_graph"))
    semantic = scene_graph_adjacency([split.scene_graphs[1]], 6)[0]
    expected = region_adjacency(np.asarray(split.boxes[1]), semantic=semantic)
    assert item["region_graph"].dtype == torch.bool and np.array_equal(item["region_graph"].numpy(), expected)
    assert item["region_graph"][0, 1] and item["region_graph"][2, 3]  # the fixture's scene-graph edges
    bare = write_precomp(tmp_path / "bare", splits={"train": 2}, regions=6, side=False)
    with pytest.raises(UserError, match="boxes"):
        check_image_inputs(load_split(bare, "train", feature_dim=None, num_regions=None), ("regions", "region_graph"), "bare")


def test_missing_scene_graphs_are_an_error_when_semantic_edges_are_asked(tmp_path):
    """The thesis §7.4.1 builds the VSSG from IoU and scene-graph edges: no silent IoU-only graph."""
    from retrieval.data.precomp import resolve_precomp_dir
    from retrieval.evaluation.checkpoint import check_semantic_edges

    folder = write_precomp(tmp_path, splits={"train": 3}, regions=6)
    precomp = resolve_precomp_dir(tmp_path)
    model = hire("hire_i2t")
    assert model.config.semantic_edges
    check_semantic_edges(model, load_split(folder, "train", feature_dim=None, num_regions=None), precomp, "train")
    (folder / "train_scene_graphs.jsonl").unlink()
    split = load_split(folder, "train", feature_dim=None, num_regions=None)
    with pytest.raises(UserError, match=r"train_scene_graphs.jsonl: missing; model.semantic_edges=true .* "
                                        r"model.semantic_edges=false"):
        check_semantic_edges(model, split, precomp, "train")
    check_semantic_edges(hire("hire_i2t", semantic_edges=False), split, precomp, "train")
    check_semantic_edges(hire("hire_i2t", graph=False), split, precomp, "train")
