"""RES metrics (the IMC thesis (Chen 2023)) with golden MVR values reconstructed from Tables 7.1/7.3/7.4."""

import warnings

import numpy as np
import pytest

from retrieval.evaluation.res_metrics import (
    mask_iou, mean_iou, mean_relative_drop, mvr, overall_iou, precision_at, weighted_relative_drop,
)

CORNERS = [(1, 1), (1, 9), (9, 1), (9, 9)]
# model: (Table 7.3 corner values, centre value used in the §5.3 reconstruction, reconstructed MVR)
GOLDEN = {
    "RMI": ((0.2928, 0.2385, 0.4069, 0.3593), 0.4016, 0.078265),
    "BRINet": ((0.4949, 0.4805, 0.6579, 0.6620), 0.6866, 0.070233),
    "RRN": ((0.5944, 0.5933, 0.8104, 0.8155), 0.8564, 0.075823),
    "CMSA": ((0.6184, 0.6169, 0.8166, 0.8305), 0.8525, 0.066704),
    "CMPC": ((0.6644, 0.6619, 0.8851, 0.8858), 0.9139, 0.065841),
    "LAVT": ((0.8755, 0.8945, 0.9204, 0.9270), 0.9472, 0.021975),
}


def masks():
    pred = np.zeros((2, 4, 4), bool)
    gt = np.zeros((2, 4, 4), bool)
    pred[0, :2, :2] = True  # 4 px
    gt[0, :2, :3] = True  # 6 px, overlap 4 -> IoU 4/6
    pred[1, 0, 0] = True  # 1 px, disjoint from gt's 3 px -> IoU 0
    gt[1, 3, :3] = True
    return pred, gt


def test_iou_mean_and_overall_by_hand():
    pred, gt = masks()
    np.testing.assert_allclose(mask_iou(pred, gt), [4 / 6, 0.0])
    assert mean_iou(pred, gt) == pytest.approx((4 / 6 + 0) / 2)
    assert overall_iou(pred, gt) == pytest.approx((4 + 0) / (6 + 4))
    assert mask_iou(np.zeros((3, 3)), np.zeros((3, 3)))[0] == 1.0


def test_precision_at_thresholds_is_strict():
    p = precision_at(np.array([0.5, 0.55, 0.75, 0.95]))
    assert p == {0.5: 75.0, 0.6: 50.0, 0.7: 50.0, 0.8: 25.0, 0.9: 25.0}


@pytest.mark.parametrize("model", sorted(GOLDEN))
def test_mvr_golden_reconstruction(model):
    corners, centre, expected = GOLDEN[model]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = mvr(dict(zip(CORNERS, corners)), centre)
    assert value == pytest.approx(expected, abs=5e-7)


def test_mvr_spec_lines_and_printed_table():
    assert mvr(dict(zip(CORNERS, (0.8755, 0.8945, 0.9204, 0.9270))), 0.9472) == pytest.approx(0.021975, abs=1e-6)
    assert mvr(dict(zip(CORNERS, (0.6184, 0.6169, 0.8166, 0.8305))), 0.8525) == pytest.approx(0.066704, abs=1e-6)
    # Table 7.4 prints CMSA 6.6705 %: the reconstruction is within 0.004 percentage points
    assert 100 * mvr(dict(zip(CORNERS, (0.6184, 0.6169, 0.8166, 0.8305))), 0.8525) == pytest.approx(6.6705, abs=0.004)


def test_mvr_warns_outside_monotonic_range_and_skips_centre():
    with pytest.warns(UserWarning, match="outside"):
        mvr({(9, 1): 0.4069, (5, 5): 0.4016}, 0.4016)  # RMI's I91 beats its centre: Q > 1
    assert mvr({(5, 5): 0.5}, 0.5) == 0.0


def test_companion_drops():
    views = dict(zip(CORNERS, (0.5, 0.5, 1.0, 1.0)))
    assert mean_relative_drop(views, 1.0) == pytest.approx(0.25)
    assert weighted_relative_drop(views, 1.0) == pytest.approx(2 * 0.5 / 8)


def test_box_accuracy_by_hand():
    from retrieval.evaluation.res_metrics import box_accuracy, box_iou_pairs

    pred = np.array([[0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 1, 1], [5, 5, 6, 6]], float)
    gt = np.array([[0, 0, 2, 2], [1, 0, 3, 2], [0, 0, 2, 1], [0, 0, 1, 1]], float)
    # identical: 1; half-shifted: 2 / (4 + 4 - 2) = 1/3; inside: 1 / 2 = 0.5 (not bigger than 0.5); disjoint: 0
    assert np.allclose(box_iou_pairs(pred, gt), [1.0, 1 / 3, 0.5, 0.0])
    assert box_accuracy(pred, gt) == 0.25
    with pytest.raises(ValueError, match="x2 >= x1"):
        box_iou_pairs(np.array([[2, 0, 0, 1.0]]), np.array([[0, 0, 1, 1.0]]))


def test_res_metrics_command(tmp_path, capsys):
    import json

    from retrieval.cli import main

    pred, gt = masks()
    np.save(tmp_path / "p.npy", pred)
    np.save(tmp_path / "g.npy", gt)
    np.save(tmp_path / "pb.npy", np.array([[0, 0, 2, 2], [0, 0, 1, 1]], float))
    np.save(tmp_path / "gb.npy", np.array([[0, 0, 2, 2], [5, 5, 6, 6]], float))
    (tmp_path / "v.json").write_text(json.dumps({"5,5": 0.8, "1,1": 0.4, "9,9": 0.8}))
    assert main(["res-metrics", "--pred", str(tmp_path / "p.npy"), "--gt", str(tmp_path / "g.npy"),
                 "--pred-boxes", str(tmp_path / "pb.npy"), "--gt-boxes", str(tmp_path / "gb.npy"),
                 "--views", str(tmp_path / "v.json"), "--json", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    # IoUs 4/6 and 0: mean 1/3; overall (4 + 0) / (6 + 4) = 0.4; P@0.5 = P@0.6 = 50 %, P@0.7 = 0
    assert report["samples"] == 2 and np.isclose(report["mean_iou"], 1 / 3) and np.isclose(report["overall_iou"], 0.4)
    assert report["precision"] == {"P@0.5": 50.0, "P@0.6": 50.0, "P@0.7": 0.0, "P@0.8": 0.0, "P@0.9": 0.0}
    assert report["box_acc@0.5"] == 0.5
    # MVR: Q(1,1) = 0.5 at distance 8, Q(9,9) = 1 (ln 1 = 0): −0.5 ln 0.5 / 8
    assert np.isclose(report["mvr"], -0.5 * np.log(0.5) / 8)
    assert "mean_iou" in capsys.readouterr().out
    assert main(["res-metrics", "--pred", str(tmp_path / "p.npy")]) == 2
    assert main(["res-metrics", "--pred", str(tmp_path / "p.npy"), "--gt", str(tmp_path / "missing.npy")]) == 2
    err = capsys.readouterr().err
    assert "--pred needs --gt" in err and "missing.npy" in err
