"""DISFA loader: occurrence = intensity >= 2, frame numbering, frame folders, label alignment,
.mat / CSV landmarks, bad inputs."""

import shutil

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
    assert dict(data.skips) == {**tree.expected_skips, **tree.expected_warnings}
    # AU1 rule: frame 4 lacks AU2 and is kept with AU2 = 0; frame 3 has a bad landmark file
    assert [f.frame for f in data.frames if f.subject == "SN002"] == [1, 2, 4]
    for frame in data.frames:
        assert frame.labels.tolist() == tree.labels[(frame.subject, "left", frame.frame)]
    assert data.per_subject["SN002"] == {"labels": 4, "images": 4, "paired": 4, "filled_labels": 1}
    assert data.layout["label_align"] == "au1"


def test_intersection_alignment_drops_frames_missing_from_an_au_file(tmp_path):
    fx.make_disfa(tmp_path, bad=True)
    data = load_disfa(tmp_path, label_align="intersection")
    assert dict(data.skips) == {"bad_label_row": 2, "bad_landmarks": 1, "incomplete_labels": 1}
    assert [f.frame for f in data.frames if f.subject == "SN002"] == [1, 2]


def test_au1_alignment_keeps_au1_frames_fills_zero_and_drops_others(tmp_path):
    fx.make_disfa(tmp_path, subjects=("SN001",), frames=3)
    labels = tmp_path / "ActionUnit_Labels/SN001"
    (labels / "SN001_au1.txt").write_text("1,3\n2,3\n3,3\n")
    (labels / "SN001_au2.txt").write_text("1,4\n3,4\n4,4\n")      # lacks 2, has 4 (not in AU1)
    data = load_disfa(tmp_path)
    assert [f.frame for f in data.frames] == [1, 2, 3]
    assert [f.labels[:2].tolist() for f in data.frames] == [[1, 1], [1, 0], [1, 1]]
    assert data.skips == {"filled_labels": 1, "incomplete_labels": 1}
    # AU1 not selected: its file still decides the frames
    assert [f.frame for f in load_disfa(tmp_path, aus=[2]).frames] == [1, 2, 3]
    data = load_disfa(tmp_path, label_align="intersection")
    assert [f.frame for f in data.frames] == [1, 3]
    with pytest.raises(UserError, match="--label-align must be one of au1, intersection"):
        load_disfa(tmp_path, label_align="union")


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


# --------------------------------------------------------------- frame numbering and folders
LAYOUTS = {
    # name: make_disfa keywords, expected frame base, video folder pattern found
    "release-1based": (dict(), 1, "<SN>"),
    "megraphau-0based": (dict(frame_base=0, frames_root="img", name="{n}", ext=".png"), 0, "<SN>"),
    "libreface-video": (dict(frames_root="images", video="LeftVideo{sn}_comp",
                             name="{video}_{n:04d}", ext=".png"), 1, "LeftVideo<SN>_comp"),
    "video-0based": (dict(frame_base=0, video="LeftVideo{sn}", name="{n:05d}"), 0, "LeftVideo<SN>"),
    "subject-prefix-0based": (dict(frame_base=0, name="{sn}_{n}", ext=".png"), 0, "<SN>"),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_frame_numbering_is_detected_and_labels_stay_on_their_frame(tmp_path, layout):
    options, base, video = LAYOUTS[layout]
    tree = fx.make_disfa(tmp_path, **options)
    data = load_disfa(tmp_path)
    assert data.layout["frame_base"] == base and data.layout["frame_base_from"].startswith("auto")
    assert data.layout["video_folders"] == [video]
    assert data.layout["frames_dir"] == options.get("frames_root", "Images_LeftCamera")
    assert len(data.frames) == len(tree.labels) == 12 and not data.skips and not data.messages
    keep66 = [i for i in range(68) if i not in (60, 64)]
    for frame in data.frames:
        key = (frame.subject, "left", frame.frame)
        assert frame.image == tree.images[key]
        assert frame.labels.tolist() == tree.labels[key]
        if frame.landmarks is not None:                    # landmarks follow the LABEL frame
            np.testing.assert_allclose(frame.landmarks, tree.landmarks[key][keep66], atol=1e-3)
    assert [f.frame for f in data.frames if f.subject == "SN002"] == [1, 2, 3, 4]
    assert data.per_subject["SN013"] == {"labels": 4, "images": 4, "paired": 4}


def test_zero_based_names_read_as_one_based_shift_every_label(tmp_path):
    """The old behaviour, now only on request and never silent: a message names the evidence."""
    tree = fx.make_disfa(tmp_path, frame_base=0, name="{n}")
    data = load_disfa(tmp_path, frame_base=1)
    assert data.layout["frame_base_from"] == "--frame-base 1"
    assert any("--frame-base 1 given, but the images of SN002" in m and "0-based" in m
               for m in data.messages)
    shifted = {(f.subject, f.frame): f.image for f in data.frames}
    assert shifted[("SN002", 1)] == tree.images[("SN002", "left", 2)]
    assert data.skips == {"missing_image": 3}                # the last frame of each subject


@pytest.mark.parametrize("case, message", [
    ("both", "SN002: cannot tell the frame numbering .*image 0 exists, image 4 exists.*--frame-base"),
    ("disagree", "numbering differs between subjects .*SN002 0-based.*SN013 1-based"),
    ("no-evidence", "cannot tell whether the DISFA frame images are numbered from 0 or 1"),
])
def test_ambiguous_numbering_is_a_one_line_error(tmp_path, case, message):
    if case == "both":
        tree = fx.make_disfa(tmp_path, subjects=("SN002",), frame_base=0)
        fx.save_image(tree.root / "Images_LeftCamera/SN002/0004.jpg", np.zeros((8, 8, 3), np.uint8))
    elif case == "disagree":
        fx.make_disfa(tmp_path / "a", subjects=("SN002",), frame_base=0)
        fx.make_disfa(tmp_path / "b", subjects=("SN013",), frame_base=1)
        for part in ("a", "b"):                                  # one tree, two numberings
            shutil.copytree(tmp_path / part, tmp_path, dirs_exist_ok=True)
    else:
        tree = fx.make_disfa(tmp_path, subjects=("SN002",), frames=4)
        for name in ("0001.jpg", "0004.jpg"):
            (tree.root / "Images_LeftCamera/SN002" / name).unlink()
    with pytest.raises(UserError, match=message) as err:
        load_disfa(tmp_path)
    assert "\n" not in str(err.value)
    assert len(load_disfa(tmp_path, frame_base=0).frames) > 0        # an explicit base reads it


def test_unknown_frame_folder_lists_the_expected_names(tmp_path):
    fx.make_disfa(tmp_path, subjects=("SN002",), frames=2, frames_root="Frames")
    with pytest.raises(UserError) as err:
        load_disfa(tmp_path)
    text = str(err.value)
    assert "\n" not in text
    for name in ("Images_LeftCamera/", "images/", "img/", "<SN>", "LeftVideo<SN>_comp",
                 "LeftVideo<SN>", "--frames-dir"):
        assert name in text
    assert len(load_disfa(tmp_path, frames_dir="Frames").frames) == 2


def test_two_video_folders_for_one_subject_is_an_error(tmp_path):
    fx.make_disfa(tmp_path, subjects=("SN002",), frames=2)
    fx.save_image(tmp_path / "Images_LeftCamera/LeftVideoSN002_comp/0001.jpg",
                  np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(UserError, match="both SN002/ and LeftVideoSN002_comp/ hold frames of SN002"):
        load_disfa(tmp_path)


def test_large_label_frame_mismatch_gives_a_message_per_subject(tmp_path):
    tree = fx.make_disfa(tmp_path, frames=8)
    for name in ("0002.jpg", "0003.jpg", "0004.jpg"):
        (tree.root / "Images_LeftCamera/SN013" / name).unlink()
    shutil.rmtree(tree.root / "Images_LeftCamera/SN003")
    data = load_disfa(tmp_path)
    assert data.per_subject["SN013"] == {"labels": 8, "images": 5, "paired": 5}
    assert data.per_subject["SN003"] == {"labels": 8, "images": 0, "paired": 0}
    assert data.messages == [
        "SN003: 8 labelled frames but no frame folder (expected Images_LeftCamera/<video>/ with "
        "<video> one of <SN>, LeftVideo<SN>_comp, LeftVideo<SN>)",
        "SN013: 8 labelled frames, 5 images, 5 paired (3 labels without image, 0 images without "
        "label)"]
    assert data.skips == {"missing_image": 11}
