"""BP4D loader: AU_OCC label rules (9 -> -1), AU selection, frame lookup, landmarks, bad inputs."""

from collections import Counter

import numpy as np
import pytest

from fau.aus import BP4D_AUS
from fau.data.bp4d import load_bp4d, read_label_csv
from shared.errors import UserError

from . import fixtures as fx


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_label_rule_nine_is_unknown(tmp_path):
    path = tmp_path / "F001_T1.csv"
    write(path, "0,1,2,12,\n5,1,0,9,\n6,9,9,1\n\n")     # trailing commas, blank line
    skips = Counter()
    aus, labels = read_label_csv(path, skips)
    assert aus == [1, 2, 12]
    assert labels[5].tolist() == [1, 0, -1]
    assert labels[6].tolist() == [-1, -1, 1]
    assert not skips


def test_loader_matches_ground_truth_and_selects_bp4d_aus(tmp_path):
    tree = fx.make_bp4d(tmp_path, subjects=("F001", "M011"), frames=2)
    data = load_bp4d(tmp_path)
    assert data.aus == BP4D_AUS and data.columns[0] == "AU1" and len(data.columns) == 12
    assert len(data.frames) == 2 * 2 * 2
    pick = [fx.BP4D_HEADER_AUS.index(a) for a in BP4D_AUS]
    for frame in data.frames:
        key = (frame.subject, frame.sequence, frame.frame)
        assert frame.labels.tolist() == [tree.labels[key][i] for i in pick]
        assert frame.image.name == f"{frame.frame:04d}.jpg"
        assert frame.gender == {"F": "female", "M": "male"}[frame.subject[0]]
    # the T1 files hold 49 points, the T2 files 68; both are read back unchanged
    counts = {f.sequence: f.landmarks.shape for f in data.frames}
    assert counts == {"T1": (49, 2), "T2": (68, 2)}
    first = next(f for f in data.frames if f.sequence == "T2")
    np.testing.assert_allclose(first.landmarks, tree.landmarks[(first.subject, "T2", first.frame)],
                               atol=1e-3)


def test_all_columns_keeps_every_header_au(tmp_path):
    fx.make_bp4d(tmp_path, subjects=("F001",), tasks=("T1",), frames=1)
    data = load_bp4d(tmp_path, aus=None)
    assert data.aus == fx.BP4D_HEADER_AUS


def test_unpadded_frame_names_and_renamed_frames_dir(tmp_path):
    write(tmp_path / "AUCoding/AU_OCC/F002_T3.csv", "0,1\n7,1\n8,0\n")
    image = tmp_path / "2D+3D/F002/T3/7.png"
    fx.save_image(image, np.zeros((8, 8, 3), np.uint8))
    data = load_bp4d(tmp_path, aus=[1], frames_dir="2D+3D")
    assert [(f.frame, f.image) for f in data.frames] == [(7, image)]
    assert data.skips == {"missing_image": 1}
    assert data.frames[0].landmarks is None


@pytest.mark.parametrize("label_dir", ["AUCoding", "AUCoding/AUCoding"])
def test_flat_and_fera_label_folders_are_found(tmp_path, label_dir):
    tree = fx.make_bp4d(tmp_path, subjects=("F001", "M011"), frames=2, label_dir=label_dir)
    data = load_bp4d(tmp_path)
    assert data.layout["labels_dir"] == label_dir
    assert len(data.frames) == len(tree.labels) == 8 and not data.skips
    pick = [fx.BP4D_HEADER_AUS.index(a) for a in BP4D_AUS]
    for frame in data.frames:
        key = (frame.subject, frame.sequence, frame.frame)
        assert frame.labels.tolist() == [tree.labels[key][i] for i in pick]
    assert data.per_subject["F001"] == {"labels": 4, "images": 4, "paired": 4}


def test_bad_inputs_are_counted(tmp_path):
    tree = fx.make_bp4d(tmp_path, bad=True)
    data = load_bp4d(tmp_path)
    assert dict(data.skips) == tree.expected_skips
    assert len(data.frames) == len(tree.labels)
    broken = [f for f in data.frames if f.landmarks is None]
    assert len(broken) == 1 and broken[0].subject == fx.BP4D_SUBJECTS[1]


@pytest.mark.parametrize(
    "files, message",
    [
        ({}, "no BP4D label CSVs .* in any of AUCoding/AU_OCC/, AUCoding/AUCoding/, AUCoding/"),
        ({"AUCoding/AU_OCC/F001_T1.csv": "0,1\n1,0\n", "AUCoding/F001_T1.csv": "0,1\n1,0\n"},
         "label CSVs in both AUCoding/AU_OCC/ and AUCoding/; keep one"),
        ({"AUCoding/AU_OCC/F001_T1.csv": "0,1,smile\n1,0,1\n"}, "'smile' is not an AU number"),
        ({"AUCoding/AU_OCC/F001_T1.csv": "0,1,2\n1,0,1\n"}, "no column for AU4"),
        ({"AUCoding/AU_OCC/F001T1.csv": "0,1\n1,0\n"}, "<subject>_<task>.csv"),
        ({"AUCoding/AU_OCC/F001_T1.csv": "0,1\n1,0\n",
          "images/F001/T1/0001.jpg": None,
          "landmarks/F001_T1.csv": "frame,x0,y0,x1,y1\n1,1,2,3,4\n"}, "expected 98, 132 or 136"),
    ],
)
def test_malformed_trees_give_one_line_errors(tmp_path, files, message):
    for rel, text in files.items():
        if text is None:
            fx.save_image(tmp_path / rel, np.zeros((8, 8, 3), np.uint8))
        else:
            write(tmp_path / rel, text)
    with pytest.raises(UserError, match=message) as err:
        load_bp4d(tmp_path, aus=[1, 2, 4] if "AU4" in message else [1])
    assert "\n" not in str(err.value)
