"""HiRE region graph: IoU values, strict μ = 0.4 threshold, batching, scene-graph edges and closure."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.parsing.region_graph import box_iou, match_boxes_to_regions, region_adjacency, scene_graph_adjacency

BOXES = np.array(
    [
        [0, 0, 10, 10],  # 0
        [5, 0, 15, 10],  # 1: IoU with 0 = 50 / 150 = 1/3
        [0, 0, 10, 7],  # 2: IoU with 0 = 70 / 100 = 0.7
        [100, 100, 110, 110],  # 3: far away
        [0, 0, 10, 4],  # 4: IoU with 0 = 0.4 exactly, with 2 = 40 / 70
        [3, 3, 3, 9],  # 5: zero area
    ],
    dtype=np.float32,
)


def test_iou_by_hand():
    iou = box_iou(BOXES)
    assert iou[0, 1] == pytest.approx(1 / 3) and iou[0, 2] == pytest.approx(0.7) and iou[0, 4] == pytest.approx(0.4)
    assert iou[0, 3] == 0 and iou[5, 5] == 0 and iou[0, 0] == 1
    np.testing.assert_allclose(iou, iou.T)


def test_threshold_is_strict_and_diagonal_follows_self_loops():
    adjacency = region_adjacency(BOXES)
    assert adjacency[0, 2] and adjacency[2, 4] and not adjacency[0, 1] and not adjacency[0, 4]
    assert adjacency.diagonal().all()
    assert not region_adjacency(BOXES, self_loops=False).diagonal().any()
    assert region_adjacency(BOXES, threshold=0.3)[0, 1]


def test_batched_equals_per_image():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, (5, 36, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 30, (5, 36, 2))], axis=-1)
    batched = region_adjacency(boxes)
    assert batched.shape == (5, 36, 36) and batched.dtype == bool
    for n in range(5):
        np.testing.assert_array_equal(batched[n], region_adjacency(boxes[n]))
    np.testing.assert_array_equal(batched, batched.transpose(0, 2, 1))


def test_scene_graph_edges_and_closure():
    semantic = scene_graph_adjacency([[(2, "holding", 3)], []], 6)
    assert semantic[0, 2, 3] and semantic[0, 3, 2] and semantic.sum() == 2
    boxes = np.stack([BOXES, BOXES])
    plain = region_adjacency(boxes, semantic=semantic, closure=False)
    assert plain[0, 2, 3] and not plain[0, 0, 3] and not plain[1, 2, 3]
    closed = region_adjacency(boxes, semantic=semantic)
    # region 0 overlaps region 2 (IoU 0.7) and 2 is related to 3 → edge (0, 3); so do 4 and 2
    assert closed[0, 0, 3] and closed[0, 3, 0] and closed[0, 4, 3] and not closed[0, 1, 3]
    with pytest.raises(ValueError, match="does not match"):
        region_adjacency(BOXES, semantic=semantic)


def test_scene_graph_boxes_map_to_best_regions():
    objects = np.array([[0, 0, 10, 6.5], [200, 200, 210, 210]], dtype=np.float32)
    np.testing.assert_array_equal(match_boxes_to_regions(objects, BOXES), [2, -1])
    assert match_boxes_to_regions(np.zeros((0, 4)), BOXES).shape == (0,)
