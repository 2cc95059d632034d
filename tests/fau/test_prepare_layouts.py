"""`fau prepare` on the raw layouts public code writes: DISFA frame numbering from 0 or 1 and
per-video frame folders, BP4D labels kept directly in AUCoding/; each label on its own frame;
training runs on each; the journal retries changed inputs and --fresh starts over."""

import json

import numpy as np
import pytest
from PIL import Image

from fau.cli import main
from fau.data.prepare import prepare
from fau.data.table import load_prepared

from . import fixtures as fx

#: 4 subjects so every fold has train, validation and test subjects
SUBJECTS = ("SN002", "SN010", "SN013", "SN003")
FOLDS_YAML = ("parts:\n  part1: [SN002, SN010]\n  part2: [SN013]\n  part3: [SN003]\n"
              "validation:\n  part1: [SN013]\n  part2: [SN010]\n  part3: [SN010]\n")
DISFA_LAYOUTS = {
    "release-1based": dict(frame_base=1),
    "megraphau-0based": dict(frame_base=0, frames_root="img", name="{n}", ext=".png"),
    "libreface-video-1based": dict(frame_base=1, frames_root="images", video="LeftVideo{sn}_comp",
                                   name="{video}_{n:04d}", ext=".png"),
    "video-0based": dict(frame_base=0, video="LeftVideo{sn}_comp", name="{n}", ext=".png"),
}


def _crop_frames(data):
    """The label frame each crop of a prepared dataset shows (fixtures.marker_frame)."""
    return [fx.marker_frame(np.asarray(Image.open(data.image_path(i))))
            for i in range(len(data.table))]


@pytest.mark.parametrize("layout", sorted(DISFA_LAYOUTS))
def test_each_label_sits_on_its_own_frame(tmp_path, layout):
    """Frame k's image has a skin colour encoding k and its face where frame k's landmarks put
    it; after prepare, the crop in the row of label frame k must show that colour."""
    options = DISFA_LAYOUTS[layout]
    tree = fx.make_disfa(tmp_path / "raw", frames=5, marker=True, landmark_files=("mat", "csv"),
                         **options)
    summary = prepare("disfa", tmp_path / "raw", tmp_path / "out", progress=False)
    data = load_prepared(tmp_path / "out")
    assert summary["skipped"] == {} and summary["landmark_source"] == {"file": 15}
    assert _crop_frames(data) == data.table["frame"].tolist()
    assert sorted(set(data.table["frame"])) == [1, 2, 3, 4, 5]          # no frame lost at the end
    labels = data.labels()
    for i, row in enumerate(data.table.itertuples()):
        assert labels[i].tolist() == tree.labels[(row.subject, "left", row.frame)]
    raw_layout = data.meta["raw_layout"]
    assert raw_layout["frame_base"] == options["frame_base"]
    assert raw_layout["frame_base_from"].startswith("auto: SN002 label frames 1..5")
    assert raw_layout["label_align"] == "au1"
    assert summary["frames_per_subject"]["SN013"] == {"labels": 5, "images": 5, "paired": 5}
    assert summary["frame_mismatch"] == []


def test_frame_check_catches_a_shift(tmp_path):
    """The check above is not vacuous: forcing the other numbering pairs label k with the image
    of frame k+1 and no crop shows its own frame (and the mismatch is reported, not silent)."""
    fx.make_disfa(tmp_path / "raw", frames=5, marker=True, landmark_files=("mat", "csv"),
                  frame_base=0, name="{n}")
    summary = prepare("disfa", tmp_path / "raw", tmp_path / "out", frame_base=1, progress=False)
    data = load_prepared(tmp_path / "out")
    shown = _crop_frames(data)
    assert all(s != f for s, f in zip(shown, data.table["frame"]))
    assert summary["skipped"] == {"missing_image": 3}
    assert "look 0-based" in summary["frame_mismatch"][0]
    assert data.meta["raw_layout"]["frame_base_from"] == "--frame-base 1"
    # rerun into the same folder with the detected numbering: no shifted crop is reused
    summary = prepare("disfa", tmp_path / "raw", tmp_path / "out", progress=False)
    data = load_prepared(tmp_path / "out")
    assert summary["frames_retried"] == 12 and summary["frames_resumed"] == 0
    assert _crop_frames(data) == data.table["frame"].tolist() and len(data.table) == 15


def _train_one_epoch(prepared, out):
    return main(["train", "--model", "algrnet", "--data", str(prepared), "--fold", "part3",
                 "--config", "algrnet_tiny", "--out", str(out), "--device", "cpu",
                 "--no-progress", "train.epochs=1", "train.batch_size=4",
                 "train.eval_batch_size=8"])


@pytest.mark.parametrize("layout", ["megraphau-0based", "release-1based", "libreface-video-1based",
                                    "bp4d-flat"])
def test_prepare_then_train_one_epoch(tmp_path, layout, capsys):
    raw = tmp_path / "raw"
    if layout == "bp4d-flat":
        tree = fx.make_bp4d(raw, subjects=("F001", "M007", "M011", "F007"), tasks=("T1",),
                            frames=3, label_dir="AUCoding")
        (raw / "folds.yaml").write_text("parts:\n  part1: [F001, M007]\n  part2: [M011]\n"
                                        "  part3: [F007]\nvalidation:\n  part1: [M011]\n"
                                        "  part2: [M007]\n  part3: [M007]\n")
        args = ["--dataset", "bp4d"]
    else:
        tree = fx.make_disfa(raw, subjects=SUBJECTS, frames=3, landmark_files=("mat", "csv"),
                             **DISFA_LAYOUTS[layout])
        (raw / "folds.yaml").write_text(FOLDS_YAML)
        args = ["--dataset", "disfa"]
    assert main(["prepare", *args, "--root", str(raw), "--out", str(tmp_path / "prep"),
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"prepared {len(tree.labels)} of {len(tree.labels)} frames" in out
    data = load_prepared(tmp_path / "prep")
    if layout == "bp4d-flat":
        assert data.meta["raw_layout"]["labels_dir"] == "AUCoding"
    else:
        base = DISFA_LAYOUTS[layout]["frame_base"]
        assert f"frame images numbered from {base} (auto:" in out
        assert data.meta["raw_layout"]["frame_base"] == base
    assert _train_one_epoch(tmp_path / "prep", tmp_path / "run") == 0
    assert (tmp_path / "run" / "best.safetensors").is_file()
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1


def test_cli_options_and_errors_are_one_line(tmp_path, capsys):
    fx.make_disfa(tmp_path / "raw", frames=3, frame_base=0, name="{n}")
    assert main(["prepare", "--dataset", "disfa", "--root", str(tmp_path / "raw"), "--out",
                 str(tmp_path / "out"), "--frame-base", "1", "--label-align", "intersection",
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "frame images numbered from 1 (--frame-base 1); label alignment intersection" in out
    assert "warning: --frame-base 1 given, but the images of SN002" in out
    meta = json.loads((tmp_path / "out/dataset.json").read_text())
    assert meta["raw_layout"]["label_align"] == "intersection"
    fx.make_bp4d(tmp_path / "bp4d", subjects=("F001",), tasks=("T1",), frames=1)
    assert main(["prepare", "--dataset", "bp4d", "--root", str(tmp_path / "bp4d"), "--out",
                 str(tmp_path / "out2"), "--frame-base", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "fau: error: --frame-base and --label-align are for --dataset disfa only"
    (tmp_path / "raw/Images_LeftCamera").rename(tmp_path / "raw/frames")
    assert main(["prepare", "--dataset", "disfa", "--root", str(tmp_path / "raw"), "--out",
                 str(tmp_path / "out3")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "expected Images_LeftCamera/ or images/ or img/<video>/" in err
    assert not (tmp_path / "out3").exists()


# ----------------------------------------------------------------------------- the journal
def _breakable_tree(root):
    """A BP4D tree whose first frame image is not an image (skipped as unreadable_image)."""
    tree = fx.make_bp4d(root, subjects=("F001", "M007", "M011"), tasks=("T1",), frames=2)
    broken = root / "images/F001/T1/0010.jpg"
    good = broken.read_bytes()
    broken.write_bytes(b"not a jpeg")
    return tree, broken, good


def test_a_repaired_frame_is_retried_and_unchanged_skips_are_kept(tmp_path):
    _, broken, good = _breakable_tree(tmp_path / "raw")
    first = prepare("bp4d", tmp_path / "raw", tmp_path / "out", progress=False)
    assert first["skipped"] == {"unreadable_image": 1} and first["frames_kept"] == 5
    again = prepare("bp4d", tmp_path / "raw", tmp_path / "out", progress=False)
    assert again["frames_resumed"] == 6 and again["frames_retried"] == 0
    assert again["skipped"] == {"unreadable_image": 1}               # unchanged input: kept skip
    broken.write_bytes(good)                                         # the frame is repaired
    repaired = prepare("bp4d", tmp_path / "raw", tmp_path / "out", progress=False)
    assert repaired["frames_retried"] == 1 and repaired["frames_resumed"] == 5
    assert repaired["skipped"] == {} and repaired["frames_kept"] == 6
    data = load_prepared(tmp_path / "out")
    assert data.image_path(0).is_file() and data.table["frame"].iat[0] == 10


def test_changed_landmarks_are_retried(tmp_path):
    fx.make_bp4d(tmp_path / "raw", subjects=("F001", "M007", "M011"), tasks=("T1",), frames=2)
    prepare("bp4d", tmp_path / "raw", tmp_path / "out", progress=False)
    before = load_prepared(tmp_path / "out").landmarks[0].copy()
    path = tmp_path / "raw/landmarks/F001_T1.csv"
    rows = [line.split(",") for line in path.read_text().splitlines()]
    rows[1][1:] = [f"{float(v) + 3.0:.3f}" for v in rows[1][1:]]     # frame 10 moved by 3 px
    path.write_text("\n".join(",".join(r) for r in rows) + "\n")
    summary = prepare("bp4d", tmp_path / "raw", tmp_path / "out", progress=False)
    assert summary["frames_retried"] == 1 and summary["frames_resumed"] == 5
    # the file's points moved, so the frame was aligned again; a translation of image-less
    # points leaves the crop's landmarks where they were
    np.testing.assert_allclose(load_prepared(tmp_path / "out").landmarks[0], before, atol=0.05)


def test_fresh_redoes_every_frame(tmp_path, capsys):
    _breakable_tree(tmp_path / "raw")
    args = ["prepare", "--dataset", "bp4d", "--root", str(tmp_path / "raw"), "--out",
            str(tmp_path / "out"), "--quiet"]
    assert main(args) == 0
    crop = tmp_path / "out/crops/M007/T1/00010.jpg"
    stamp = crop.stat().st_mtime_ns
    assert main(args + ["--fresh"]) == 0
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    assert summary["frames_resumed"] == 0 and summary["frames_retried"] == 0
    assert summary["skipped"] == {"unreadable_image": 1}            # tried again, still broken
    assert crop.stat().st_mtime_ns != stamp
    assert main(args) == 0
    assert json.loads((tmp_path / "out/summary.json").read_text())["frames_resumed"] == 6
