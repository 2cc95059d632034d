"""FPara-style grade CSV loader and the paralysis-AU centre definitions."""


import numpy as np
import pytest

from fau.data.fpara import (
    GRADES,
    load_fpara,
    load_pau_definitions,
    parse_grade,
    pau_centres,
)
from shared.errors import UserError

from . import fixtures as fx


@pytest.mark.parametrize("text, grade", [("normal", 0), ("Low", 1), ("2", 2), ("high", 3),
                                         ("hb1", 0), ("hb2", 1), ("hb3", 2), ("HB4", 2),
                                         ("hb5", 3), ("hb6", 3)])
def test_grades_names_numbers_and_house_brackmann(text, grade):
    assert parse_grade(text) == grade


@pytest.mark.parametrize("text", ["4", "hb7", "severe", ""])
def test_bad_grade(text):
    with pytest.raises(ValueError):
        parse_grade(text)


def test_loader_reads_grades_landmarks_and_counts_bad_rows(tmp_path):
    tree = fx.make_fpara(tmp_path, bad=True)
    data = load_fpara(tmp_path)                       # a folder holding labels.csv
    assert data.columns == ("grade",) and data.aus == ()
    assert dict(data.skips) == tree.expected_skips
    assert len(data.frames) == len(tree.labels) == 12
    for frame in data.frames:
        key = (frame.subject, frame.sequence, frame.frame)
        assert frame.labels.tolist() == tree.labels[key]
        if frame.frame % 2 == 0:
            np.testing.assert_allclose(frame.landmarks, tree.landmarks[key], atol=1e-3)
        else:
            assert frame.landmarks is None
    assert {f.subject: f.gender for f in data.frames} == {
        "p01": "male", "p02": "female", "p03": "male", "p04": "female"}
    assert load_fpara(tmp_path / "labels.csv").frames[0].key == data.frames[0].key


def test_missing_column_or_file_is_a_one_line_error(tmp_path):
    with pytest.raises(UserError, match="labels.csv"):
        load_fpara(tmp_path)
    (tmp_path / "labels.csv").write_text("path,subject\nx.png,p1\n")
    with pytest.raises(UserError, match="missing column 'grade'"):
        load_fpara(tmp_path)


def test_default_pau_definitions_and_centres():
    defs = load_pau_definitions()
    assert len(defs.names) == 6 and defs.offsets.shape == (6, 2, 2)
    landmarks = np.zeros((1, 49, 2), np.float32)
    landmarks[0, :, 0] = np.arange(49)              # x = index, y = 100 + index
    landmarks[0, :, 1] = 100 + np.arange(49)
    centres = pau_centres(landmarks, defs)
    ruler = abs(22 - 25)
    cheek = defs.names.index("cheek")                # landmarks 24, 29 shifted down by a ruler
    np.testing.assert_allclose(centres[0, cheek], [[24, 124 + ruler], [29, 129 + ruler]])
    forehead = defs.names.index("forehead")          # landmarks 1, 8 shifted up by ruler / 3
    np.testing.assert_allclose(centres[0, forehead],
                               [[1, 101 - 0.3333 * ruler], [8, 108 - 0.3333 * ruler]], rtol=1e-5)


def test_pau_definition_with_landmark_mean_and_bad_files(tmp_path):
    path = tmp_path / "paus.yaml"
    path.write_text("paus:\n  lips:\n    centres:\n      - {landmark: [31, 33], dx: 1}\n"
                    "      - {landmark: 37}\n")
    defs = load_pau_definitions(path)
    landmarks = np.tile(np.arange(49, dtype=np.float32)[:, None], (1, 1, 2))
    centres = pau_centres(landmarks, defs)
    np.testing.assert_allclose(centres[0, 0], [[32 + 3, 32], [37, 37]])
    path.write_text("paus:\n  lips:\n    centres:\n      - {landmark: 60}\n      - {landmark: 1}\n")
    with pytest.raises(UserError, match="49-point indices"):
        load_pau_definitions(path)
    path.write_text("paus:\n  lips:\n    centres:\n      - {landmark: 6}\n")
    with pytest.raises(UserError, match="exactly two centres"):
        load_pau_definitions(path)
    assert GRADES == ("normal", "low", "medium", "high")
