"""`fau prepare` end to end on each raw fixture format: table, crops, folds, stats, text, resume."""

import json

import numpy as np
import pytest
from PIL import Image

from fau.aus import BP4D_AUS
from fau.cli import main
from fau.data.folds import shipped_fold_spec
from fau.data.prepare import prepare
from fau.data.stats import class_weights, cooccurrence_prior
from fau.data.table import load_prepared
from shared.errors import UserError

from . import fixtures as fx


@pytest.fixture(scope="module")
def bp4d(tmp_path_factory):
    """A BP4D tree with bad inputs plus one blank frame without landmarks, prepared once."""
    base = tmp_path_factory.mktemp("bp4d")
    tree = fx.make_bp4d(base / "raw", bad=True)
    (base / "raw/AUCoding/AU_OCC/F015_T9.csv").write_text("0,1,2,4,6,7,10,12,14,15,17,23,24\n"
                                                          "3,1,1,1,1,1,1,1,1,1,1,1,1\n")
    fx.save_image(base / "raw/images/F015/T9/0003.jpg", np.full((120, 120, 3), 90, np.uint8))
    summary = prepare("bp4d", base / "raw", base / "out", progress=False)
    return tree, base, summary


def test_bp4d_summary_counts_every_skip(bp4d):
    tree, _, summary = bp4d
    assert summary["skipped"] == {"bad_label_row": 3, "missing_image": 1, "no_face": 1}
    assert summary["warnings"] == {"bad_landmark_row": 1}
    assert summary["landmark_source"] == {"detector": 1, "file": 35}   # bad row -> dlib found it
    assert summary["frames_kept"] == len(tree.labels) == 36
    assert summary["subjects_without_fold"] == []


def test_bp4d_table_crops_and_landmarks(bp4d):
    tree, base, _ = bp4d
    data = load_prepared(base / "out")
    assert data.meta["aus"] == list(BP4D_AUS) and data.meta["template_version"] == "facs_v1"
    assert list(data.table.columns[:5]) == ["path", "subject", "sequence", "frame", "gender"]
    pick = [fx.BP4D_HEADER_AUS.index(a) for a in BP4D_AUS]
    labels = data.labels()
    for i, row in enumerate(data.table.itertuples()):
        assert labels[i].tolist() == [tree.labels[(row.subject, row.sequence, row.frame)][j]
                                      for j in pick]
    assert (labels == -1).any()
    assert Image.open(data.image_path(0)).size == (200, 200)
    assert data.landmarks.shape == (36, 49, 2) and np.isfinite(data.landmarks).all()
    # JAA-Net alignment levels the eyes: eye centres (49-pt 19-24, 25-30) share one y
    eyes = data.landmarks[:, 19:25].mean(1), data.landmarks[:, 25:31].mean(1)
    from_file = (data.table["subject"] != fx.BP4D_SUBJECTS[1]).to_numpy()
    np.testing.assert_allclose(eyes[0][from_file, 1], eyes[1][from_file, 1], atol=0.05)


def test_bp4d_fold_files_hold_training_statistics(bp4d):
    _, base, _ = bp4d
    data = load_prepared(base / "out")
    spec = shipped_fold_spec("bp4d")
    for fold in spec.folds():
        record = data.fold(fold.name)
        assert record["test"] == list(fold.test) and record["val"] == list(fold.val)
        train = data.table["subject"].isin(fold.train).to_numpy()
        assert record["frames"]["train"] == train.sum()
        expected = class_weights(data.labels()[train])
        np.testing.assert_allclose(list(record["class_weights"].values()), expected, atol=1e-6)
        np.testing.assert_allclose(record["prior"], cooccurrence_prior(data.labels()[train]),
                                   atol=1e-6)
        assert record["prior_aus"] == data.columns
        np.testing.assert_allclose(data.class_weights(fold.name), expected, atol=1e-5)
        assert data.prior(fold.name).shape == (12, 12)
    assert data.indices("part1", "test").tolist() == np.flatnonzero(
        data.table["subject"].isin(spec.parts["part1"])).tolist()


def test_bp4d_language_targets(bp4d):
    _, base, _ = bp4d
    data = load_prepared(base / "out")
    targets = data.language()
    assert len(targets) == len(data.table)
    assert (base / "out/language_template.yaml").is_file()
    for target, gender, row in zip(targets, data.table["gender"], data.labels()):
        assert set(target["local"]) == set(data.columns)
        assert [v is None for v in target["local"].values()] == (row == -1).tolist()
        if target["global"] is not None:
            assert target["global"].startswith({"female": "The woman", "male": "The man"}[gender])


def test_rerun_resumes_and_redoes_only_missing_crops(bp4d):
    _, base, first = bp4d
    data = load_prepared(base / "out")
    missing = data.image_path(3)
    missing.unlink()
    before = data.image_path(0).stat().st_mtime_ns
    summary = prepare("bp4d", base / "raw", base / "out", progress=False)
    selected = summary["frames_selected"]
    assert summary["frames_resumed"] == selected - 1
    assert missing.is_file() and data.image_path(0).stat().st_mtime_ns == before
    assert summary["skipped"] == first["skipped"]
    again = load_prepared(base / "out")
    np.testing.assert_allclose(again.landmarks, data.landmarks, atol=1e-3)


def test_no_align_limit_and_all_aus(tmp_path):
    fx.make_bp4d(tmp_path / "raw", subjects=("F001", "M011", "F007"), frames=2)
    summary = prepare("bp4d", tmp_path / "raw", tmp_path / "out", aus=None, limit=5,
                      align=False, size=64, progress=False)
    data = load_prepared(tmp_path / "out")
    assert summary["frames_selected"] == 5 and data.meta["aligned"] is False
    assert data.meta["aus"] == list(fx.BP4D_HEADER_AUS)
    assert data.table["subject"].nunique() == 3                  # evenly spaced over subjects
    assert Image.open(data.image_path(0)).size == (64, 64)
    # landmarks are the file's points scaled from the 160 px frame to 64 px
    raw = np.loadtxt(tmp_path / "raw/landmarks/F001_T1.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(data.landmarks[0].reshape(-1), raw[0, 1:] * 64 / 160, atol=1e-3)
    assert summary["language_aus_without_template"] == ["AU5", "AU11", "AU16", "AU27"]
    assert "AU5" not in data.language()[0]["local"]


def test_disfa_end_to_end_through_the_cli(tmp_path, capsys):
    tree = fx.make_disfa(tmp_path / "raw", bad=True)
    code = main(["prepare", "--dataset", "disfa", "--root", str(tmp_path / "raw"),
                 "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 0
    assert "prepared 11 of 11 frames" in capsys.readouterr().out
    data = load_prepared(tmp_path / "out")
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    assert summary["skipped"] == tree.expected_skips
    assert summary["warnings"] == tree.expected_warnings           # AU2 filled for one frame
    assert summary["landmark_source"]["file"] == 7                 # .mat + CSV, 66 -> 49
    assert data.meta["raw_layout"]["frame_base"] == 1
    for i, row in enumerate(data.table.itertuples()):
        assert data.labels()[i].tolist() == tree.labels[(row.subject, "left", row.frame)]
    assert dict(zip(data.table["subject"], data.table["gender"])) == {
        "SN002": "female", "SN013": "male", "SN003": "unknown"}
    assert data.fold("part2")["test"][0] == "SN013"
    assert data.language()[0]["global"].startswith("The woman")


def test_fpara_end_to_end(tmp_path):
    tree = fx.make_fpara(tmp_path / "raw", bad=True)
    summary = prepare("fpara", tmp_path / "raw", tmp_path / "out", progress=False)
    data = load_prepared(tmp_path / "out")
    assert summary["skipped"] == tree.expected_skips
    assert data.meta["task"] == "paralysis" and data.columns == ["grade"]
    assert data.meta["grades"] == ["normal", "low", "medium", "high"]
    assert sorted(data.table["grade"].unique()) == [0, 1, 2, 3]
    assert (tmp_path / "out/pau.yaml").is_file() and not (tmp_path / "out/language.jsonl").exists()
    assert summary["fold_source"].startswith("generated")
    tests = [s for name in data.meta["folds"] for s in data.fold(name)["test"]]
    assert sorted(tests) == ["p01", "p02", "p03", "p04"]
    weights = data.fold("part1")["class_weights"]
    assert list(weights) == ["normal", "low", "medium", "high"]
    assert data.class_weights("part1").mean() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(UserError, match="no co-occurrence prior"):
        data.prior("part1")


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["prepare", "--dataset", "bp4d", "--root", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fau: error:") and "raw dataset root not found" in err
    assert "\n" not in err
    assert main(["prepare", "--dataset", "bp4d", "--root", str(tmp_path), "--out",
                 str(tmp_path / "out"), "--aus", "1,x"]) == 2
    assert "--aus" in capsys.readouterr().err


def test_raw_folds_yaml_and_frames_dir(tmp_path):
    fx.make_bp4d(tmp_path / "raw", subjects=("F001", "M007", "F018"), tasks=("T1",), frames=1)
    (tmp_path / "raw/folds.yaml").write_text(
        "parts:\n  part1: [F001]\n  part2: [M007]\n  part3: [F018]\n")
    summary = prepare("bp4d", tmp_path / "raw", tmp_path / "out", progress=False)
    assert summary["fold_source"].endswith("folds.yaml")
    data = load_prepared(tmp_path / "out")
    assert [data.fold(p)["test"] for p in ("part1", "part2", "part3")] == [["F001"], ["M007"],
                                                                          ["F018"]]
    assert main(["prepare", "--dataset", "bp4d", "--root", str(tmp_path / "raw"), "--out",
                 str(tmp_path / "out"), "--folds", str(tmp_path / "none.yaml")]) == 2
    (tmp_path / "raw/images").rename(tmp_path / "raw/2D+3D")        # the release's folder name
    assert main(["prepare", "--dataset", "bp4d", "--root", str(tmp_path / "raw"), "--out",
                 str(tmp_path / "out2"), "--frames-dir", "2D+3D", "--quiet"]) == 0
    assert load_prepared(tmp_path / "out2").table["frame"].tolist() == [10, 10, 10]
