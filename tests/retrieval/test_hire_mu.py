"""HiRE's μ (the thesis §7.4.1 / §7.5.1): the graph every loader builds follows ``model.iou_threshold``."""

import pickle

import numpy as np
import pytest

from shared.errors import UserError

from retrieval.data.pairs import ImageStream, PairDataset, TextEncoding, image_item
from retrieval.data.precomp import load_split
from retrieval.data.vocab import Vocabulary
from retrieval.parsing.region_graph import box_iou, region_adjacency, scene_graph_adjacency

from .fixtures import write_precomp
from .model_batches import single_thread  # noqa: F401 (autouse fixture)
from .test_hire import hire


# ---------------------------------------------------------------- μ
def test_mu_reaches_every_loader_of_the_graph(tmp_path):
    folder = write_precomp(tmp_path, splits={"train": 6}, regions=8)
    split = load_split(folder, "train", feature_dim=None, num_regions=None)
    iou = box_iou(np.asarray(split.boxes))
    off = iou[:, ~np.eye(8, dtype=bool)]
    assert ((off > 0.05) & (off <= 0.4)).any()  # the fixture has pairs that μ = 0.05 joins and μ = 0.4 does not
    graphs = {}
    for mu in (0.05, 0.4):
        model = hire("hire_i2t", iou_threshold=mu)
        keys = model.image_inputs()
        assert keys == ("regions", "region_mask", "region_graph") and keys.iou_threshold == mu
        assert pickle.loads(pickle.dumps(keys)).iou_threshold == mu  # loader workers get μ
        semantic = scene_graph_adjacency(split.scene_graphs, 8)
        expected = region_adjacency(np.asarray(split.boxes), threshold=mu, semantic=semantic)
        streamed = np.stack([ImageStream(split, keys)[i]["region_graph"].numpy() for i in range(6)])
        text = TextEncoding("tokens", Vocabulary.build(split.captions, min_count=1))
        paired = np.stack([PairDataset(split, text, keys)[5 * i]["image"]["region_graph"].numpy() for i in range(6)])
        np.testing.assert_array_equal(streamed, expected)
        np.testing.assert_array_equal(paired, expected)
        graphs[mu] = streamed
    assert (graphs[0.05] & ~graphs[0.4]).any() and not (graphs[0.4] & ~graphs[0.05]).any()
    plain = image_item(split, 2, ("regions", "region_mask", "region_graph"))["region_graph"].numpy()
    np.testing.assert_array_equal(plain, graphs[0.4][2])  # a plain key tuple: the paper's μ = 0.4


def test_mu_is_a_bounded_config_value():
    assert hire("hire_i2t").config.iou_threshold == 0.4
    with pytest.raises(UserError, match=r"model.iou_threshold: 1.5 outside \[0.0, 1.0\]"):
        hire("hire_i2t", iou_threshold=1.5)
