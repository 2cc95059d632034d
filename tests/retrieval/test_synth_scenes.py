"""SynScenes: determinism, layout and shapes, truthful captions, the hard subset."""

import hashlib
import json

import cv2
import numpy as np
import pytest

from retrieval.cli import main
from retrieval.evaluation.hard_subset import hard_subset_metrics, load_hard_groups
from retrieval.synth.captions import SHAPE_WORDS, tokens
from retrieval.synth.features import FLOOR_CLASS, WALL_CLASS, object_class
from retrieval.synth.generate import generate, sample_split
from retrieval.synth.hard import VARIANTS, sample_hard_group
from retrieval.synth.scene import COLOUR_NAMES, HEIGHT, WIDTH, SceneObject

SIZES = {"train": 12, "dev": 4, "test": 24}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synscenes")
    generate(out, SIZES["train"], SIZES["dev"], SIZES["test"], seed=3, hard_fraction=0.5, progress=False)
    return out


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_layout_and_shapes(dataset):
    pre = dataset / "synscenes_precomp"
    for split, n in SIZES.items():
        load = lambda name: np.load(pre / f"{split}_{name}.npy")  # noqa: E731
        ims, grid = load("ims"), load("grid")
        assert ims.shape == (n, 36, 2048) and ims.dtype == np.float32 and np.isfinite(ims).all() and ims.min() >= 0
        assert grid.shape == (n, 49, 2048) and grid.dtype == np.float32
        boxes = load("boxes")
        assert boxes.shape == (n, 36, 4)
        assert (boxes[..., 0] <= boxes[..., 2]).all() and (boxes[..., 1] <= boxes[..., 3]).all()
        assert boxes[..., [0, 2]].max() <= WIDTH and boxes[..., [1, 3]].max() <= HEIGHT and boxes.min() >= 0
        assert (load("image_sizes") == [WIDTH, HEIGHT]).all() and load("image_sizes").shape == (n, 2)
        segs, seg_maps, onehots = load("segmentations"), load("seg_maps"), load("cat_onehots")
        assert segs.shape == (n, 133, 7, 7) and seg_maps.shape == (n, 64, 64) and onehots.shape == (n, 133)
        caps = (pre / f"{split}_caps.txt").read_text().splitlines()
        ids = (pre / f"{split}_ids.txt").read_text().split()
        assert len(caps) == 5 * n and len(ids) == n
        graphs = [json.loads(line) for line in (pre / f"{split}_scene_graphs.jsonl").read_text().splitlines()]
        assert len(graphs) == n
        for graph in graphs:
            assert graph["edges"] and all(0 <= s < 36 and 0 <= o < 36 and isinstance(r, str) for s, r, o in graph["edges"])
        for image_id in ids:
            assert cv2.imread(str(dataset / "images" / f"{int(image_id):06d}.png")).shape == (HEIGHT, WIDTH, 3)
    karpathy = json.loads((dataset / "dataset_synscenes.json").read_text())["images"]
    assert [sum(e["split"] == s for e in karpathy) for s in ("train", "val", "test")] == list(SIZES.values())
    assert all(len(e["sentences"]) == 5 and e["sentences"][0]["tokens"] for e in karpathy)
    assert (pre / "test_hard.json").exists() and not (pre / "train_hard.json").exists()


def test_segmentation_arrays_agree_with_the_scenes(dataset):
    pre = dataset / "synscenes_precomp"
    scenes = [s for s in json.loads((dataset / "scenes.json").read_text())["scenes"] if s["split"] == "test"]
    seg_maps, onehots = np.load(pre / "test_seg_maps.npy"), np.load(pre / "test_cat_onehots.npy")
    segs = np.load(pre / "test_segmentations.npy")
    for scene, seg_map, onehot, logits in zip(scenes, seg_maps, onehots, segs):
        expected = {FLOOR_CLASS, WALL_CLASS} | {
            object_class(SceneObject(**{k: o[k] for k in ("shape", "colour", "size", "material", "x", "y")})) for o in scene["objects"]
        }
        assert set(np.unique(seg_map)) <= expected
        assert set(np.flatnonzero(onehot)) == set(np.unique(seg_map))
        assert (logits.argmax(axis=0) == FLOOR_CLASS).sum() > 5  # floor dominates the lower cells


def test_generation_is_deterministic(dataset, tmp_path):
    generate(tmp_path / "again", SIZES["train"], SIZES["dev"], SIZES["test"], seed=3, hard_fraction=0.5, progress=False)
    assert digest(tmp_path / "again") == digest(dataset)
    generate(tmp_path / "other", 4, 2, 8, seed=4, progress=False)
    other = (tmp_path / "other" / "synscenes_precomp" / "test_caps.txt").read_text()
    assert other != (dataset / "synscenes_precomp" / "test_caps.txt").read_text()


def test_captions_are_true_and_mention_present_attributes():
    records, _ = sample_split(40, np.random.default_rng(7), hard_fraction=0.4)
    shape_of = {w: s for s, words in SHAPE_WORDS.items() for w in words}
    n_relations = 0
    for record in records:
        colours = {o.colour for o in record.scene.objects}
        shapes = {o.shape for o in record.scene.objects}
        for caption in record.captions:
            assert caption.holds(record.scene)
            words = tokens(caption.text())
            assert {w for w in words if w in COLOUR_NAMES} <= colours
            assert {shape_of[w.rstrip("s")] for w in words if w.rstrip("s") in shape_of} <= shapes
            n_relations += any(w in words for w in ("left", "right", "front", "behind", "pushing", "hiding", "beside", "next"))
    assert n_relations > 40 and len({c.template for r in records for c in r.captions}) >= 6


def test_hard_group_members_differ_only_in_binding_or_direction(dataset):
    pre = dataset / "synscenes_precomp"
    scenes = [s for s in json.loads((dataset / "scenes.json").read_text())["scenes"] if s["split"] == "test"]
    groups = json.loads((pre / "test_hard.json").read_text())["groups"]
    assert len(groups) == 3 and load_hard_groups(pre / "test_hard.json").shape == (3, 4)
    for group in groups:
        members = [scenes[i]["objects"] for i in group["images"]]
        a, b = group["pair"]
        base, colour, direction, both = members
        for k in range(len(base)):
            if k not in (a, b):
                assert all(m[k] == base[k] for m in members)
        assert (colour[a]["colour"], colour[b]["colour"]) == (base[b]["colour"], base[a]["colour"])
        assert (colour[a]["x"], colour[a]["shape"]) == (base[a]["x"], base[a]["shape"])
        assert (direction[a]["x"], direction[a]["y"], direction[b]["x"]) == (base[b]["x"], base[b]["y"], base[a]["x"])
        assert direction[a]["colour"] == base[a]["colour"] and both[a]["colour"] == base[b]["colour"]
        assert both[a]["x"] == base[b]["x"]
        captions = [scenes[i]["captions"] for i in group["images"]]
        for k in range(5):
            texts = [c[k] for c in captions]
            assert len(set(texts)) == 4
            assert all(sorted(tokens(t)) == sorted(tokens(texts[0])) for t in texts)


def test_hard_captions_hold_only_for_their_own_scene():
    rng = np.random.default_rng(11)
    for _ in range(5):
        group = sample_hard_group(rng)
        for v, captions in enumerate(group.captions):
            for caption in captions:
                assert [caption.holds(s) for s in group.scenes] == [w == v for w in range(len(VARIANTS))]


def test_hard_subset_separates_structure_from_bag_of_words():
    records, groups = sample_split(24, np.random.default_rng(5), hard_fraction=0.5)
    table = np.array([g["images"] for g in groups])
    captions = [c for r in records for c in r.captions]
    oracle = np.array([[float(c.holds(r.scene)) for c in captions] for r in records], np.float32)
    bags = [set(tokens(c.text())) for c in captions]
    scene_words = [{w for o in r.scene.objects for w in (o.colour, o.shape, o.size, o.material)} for r in records]
    bow = np.array([[len(words & b) for b in bags] for words in scene_words], np.float32)
    good, bad = hard_subset_metrics(oracle, table), hard_subset_metrics(bow, table)
    assert good["group_i2t_r1"] == 100.0 and good["group_t2i_r1"] == 100.0
    assert bad["group_i2t_r1"] == 0.0 and bad["group_t2i_r1"] == 0.0
    assert good["n_images"] == 12 and good["group_chance_r1"] == 25.0
    assert good["subset"]["i2t_r1"] == 100.0


def test_hard_subset_counts_ties_against_the_query():
    groups = np.array([[0, 1, 2, 3]])
    flat = hard_subset_metrics(np.zeros((5, 25), np.float32), groups)
    assert flat["subset"]["i2t_r1"] == 0.0 and flat["subset"]["t2i_r1"] == 0.0
    assert flat["group_i2t_r1"] == 0.0 and flat["group_t2i_r1"] == 0.0
    ints = hard_subset_metrics(np.kron(np.eye(5, dtype=np.int64), np.ones((1, 5), np.int64)), groups)
    assert ints["subset"]["i2t_r1"] == 100.0 and ints["group_t2i_r1"] == 100.0


def test_synth_command(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "d"), "--train", "3", "--dev", "2", "--test", "8", "--seed", "1"]) == 0
    assert "SynScenes written" in capsys.readouterr().out
    assert np.load(tmp_path / "d" / "synscenes_precomp" / "test_ims.npy").shape == (8, 36, 2048)
    assert main(["synth", "--out", str(tmp_path / "e"), "--hard-fraction", "2"]) == 2
