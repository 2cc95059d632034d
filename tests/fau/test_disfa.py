"""DISFA loader: occurrence = intensity >= 2, 1-based frames, .mat / CSV landmarks, bad inputs."""


import numpy as np
import pytest

from fau.aus import DISFA_AUS
from fau.data.disfa import load_disfa, occurrence
from shared.errors import UserError

from . import fixtures as fx


def test_occurrence_threshold_is_two():
    assert occurrence(np.array([0, 1, 2, 3, 4, 5])).tolist() == [0, 0, 1, 1, 1, 1]


def test_loader_matches_ground_truth(tmp_path):
    tree = fx.make_disfa(tmp_path)
    data = load_disfa(tmp_path)
    assert data.aus == DISFA_AUS and not data.skips
    assert len(data.frames) == len(tree.labels) == 12
    for frame in data.frames:
        assert frame.sequence == "left"
        assert frame.labels.tolist() == tree.labels[(frame.subject, "left", frame.frame)]
        assert frame.image.parent.name == frame.subject
        assert frame.image.name == f"{frame.frame:04d}.jpg"
    first = data.frames[0]
    assert (first.subject, first.frame) == ("SN002", 1)
    # frame 1 has intensities 0 1 2 3 4 5 1 2 -> occurrence at >= 2
    assert first.labels.tolist() == [0, 0, 1, 1, 1, 1, 0, 1]


def test_landmarks_from_mat_and_csv_and_gender(tmp_path):
    tree = fx.make_disfa(tmp_path)
    data = load_disfa(tmp_path)
    keep66 = [i for i in range(68) if i not in (60, 64)]
    by_subject = {}
    for frame in data.frames:
        by_subject.setdefault(frame.subject, []).append(frame)
        if frame.landmarks is not None:
            assert frame.landmarks.shape == (66, 2)
            expected = tree.landmarks[(frame.subject, "left", frame.frame)][keep66]
            np.testing.assert_allclose(frame.landmarks, expected, atol=1e-3)
    assert all(f.landmarks is not None for f in by_subject["SN002"])   # .mat, both names
    assert all(f.landmarks is not None for f in by_subject["SN013"])   # per-subject CSV
    assert all(f.landmarks is None for f in by_subject["SN003"])       # none shipped
    assert {s: fs[0].gender for s, fs in by_subject.items()} == {
        "SN002": "female", "SN013": "male", "SN003": "unknown"}


def test_bad_inputs_are_counted(tmp_path):
    tree = fx.make_disfa(tmp_path, bad=True)
    data = load_disfa(tmp_path)
    assert dict(data.skips) == tree.expected_skips
    assert [f.frame for f in data.frames if f.subject == "SN002"] == [1, 2]


def test_missing_label_file_is_a_one_line_error(tmp_path):
    fx.make_disfa(tmp_path, subjects=("SN001",), frames=2)
    (tmp_path / "ActionUnit_Labels/SN001/SN001_au9.txt").unlink()
    with pytest.raises(UserError, match=r"SN001_au9\.txt: DISFA label file not found") as err:
        load_disfa(tmp_path)
    assert "\n" not in str(err.value)


def test_missing_label_folder_and_missing_images(tmp_path):
    with pytest.raises(UserError, match="ActionUnit_Labels"):
        load_disfa(tmp_path)
    fx.make_disfa(tmp_path, subjects=("SN001",), frames=3)
    (tmp_path / "Images_LeftCamera/SN001/0002.jpg").unlink()
    data = load_disfa(tmp_path)
    assert [f.frame for f in data.frames] == [1, 3]
    assert data.skips == {"missing_image": 1}
