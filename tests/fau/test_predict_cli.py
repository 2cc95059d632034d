"""`fau predict` command: folders, per-file errors, exit status, JSON/CSV/overlays, resume."""

import csv
import json

import pytest
import skimage.data
from PIL import Image

from fau.aus import BP4D_AUS, au_names
from fau.cli import main
from fau.commands.predict import find_images, overlay_name
from fau.predict import Predictor
from tests.fau.test_predict import tiny_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "best")


@pytest.fixture
def photos(tmp_path):
    """photos/astronaut.png, photos/more/coffee.png, photos/more/cut.jpg (truncated), a text file."""
    root = tmp_path / "photos"
    (root / "more").mkdir(parents=True)
    Image.fromarray(skimage.data.astronaut()).save(root / "astronaut.png")
    Image.fromarray(skimage.data.coffee()).save(root / "more" / "coffee.png")
    Image.fromarray(skimage.data.astronaut()).save(root / "more" / "cut.jpg")
    (root / "more" / "cut.jpg").write_bytes((root / "more" / "cut.jpg").read_bytes()[:4000])
    (root / "notes.txt").write_text("not an image")
    return root


def predict(checkpoint, *args):
    return main(["predict", *map(str, args), "--checkpoint", str(checkpoint), "--device", "cpu", "--no-progress"])


def test_find_images_walks_folders_sorted_and_keeps_named_files(photos):
    found = find_images([str(photos), str(photos / "notes.txt")])
    names = [p.removeprefix(str(photos) + "/") for p in found]
    assert names == ["astronaut.png", "more/coffee.png", "more/cut.jpg", "notes.txt"]


def test_overlay_names_flatten_the_path():
    assert overlay_name("photos/more/a.jpg", 1) == "photos__more__a.jpg.face1.png"
    assert overlay_name("/abs/a.jpg", 0) == "abs__a.jpg.face0.png"


def test_folder_with_a_bad_file_finishes_the_rest_and_fails(checkpoint, photos, tmp_path, capsys):
    out = tmp_path / "out"
    code = predict(checkpoint, photos, "--json", out / "r.json", "--csv", out / "r.csv", "--overlay", out / "png")
    assert code == 1
    err = capsys.readouterr().err
    assert "cut.jpg" in err and "truncated" in err and "coffee.png: no face found" in err
    records = json.loads((out / "r.json").read_text())
    assert [r["image"].removeprefix(str(photos) + "/") for r in records] == [
        "astronaut.png", "more/coffee.png", "more/cut.jpg"]
    astronaut, coffee, cut = records
    (face,) = astronaut["faces"]
    assert len(face["landmarks"]) == 68 and list(face["aus"]) == au_names(BP4D_AUS)
    assert coffee == {"image": coffee["image"], "faces": []}
    assert cut["faces"] == [] and "truncated" in cut["error"]
    with Image.open(face["overlay"]) as png:
        assert png.format == "PNG" and png.width > 500
    rows = list(csv.DictReader((out / "r.csv").open()))
    assert [r["face"] for r in rows] == ["0", "", ""] and "truncated" in rows[2]["error"]
    assert float(rows[0]["AU12"]) == pytest.approx(face["aus"]["AU12"])
    assert sorted(p.name for p in out.iterdir()) == [".r.json.journal.jsonl", "png", "r.csv", "r.json"]


def test_all_good_files_exit_zero_and_print_json_lines_without_outputs(checkpoint, photos, capsys):
    assert predict(checkpoint, photos / "astronaut.png", photos / "more" / "coffee.png") == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [len(r["faces"]) for r in lines] == [1, 0]


def test_resume_skips_done_files_retries_failed_ones_and_overwrite_starts_afresh(checkpoint, photos, tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    assert predict(checkpoint, photos, "--json", out) == 1
    # change what the finished astronaut file holds: a resumed run must not look at it again
    Image.fromarray(skimage.data.coffee()).save(photos / "astronaut.png")
    Image.fromarray(skimage.data.astronaut()).save(photos / "more" / "cut.jpg")   # repaired
    capsys.readouterr()
    assert predict(checkpoint, photos, "--json", out) == 0
    assert "resuming: 2 of 3 images already done" in capsys.readouterr().err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [len(r["faces"]) for r in records] == [1, 0, 1] and not any("error" in r for r in records)
    assert predict(checkpoint, photos, "--json", out, "--overwrite") == 0
    assert [len(json.loads(line)["faces"]) for line in out.read_text().splitlines()] == [0, 0, 1]


def test_other_settings_do_not_resume(checkpoint, photos, tmp_path, capsys):
    out = tmp_path / "r.json"
    predict(checkpoint, photos / "astronaut.png", "--json", out)
    threshold = tmp_path / "t.yaml"
    threshold.write_text("AU12: 0.2\n")
    capsys.readouterr()
    assert predict(checkpoint, photos / "astronaut.png", "--json", out, "--threshold", threshold) == 0
    err = capsys.readouterr().err
    assert "starting afresh" in err and "resuming" not in err


def test_interrupted_run_writes_what_it_finished_and_resumes(checkpoint, photos, tmp_path, monkeypatch, capsys):
    out = tmp_path / "r.json"
    calls = []
    original = Predictor.run

    def interrupt_second_chunk(self, items, **kwargs):
        calls.append(items)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, items, **kwargs)

    monkeypatch.setattr(Predictor, "run", interrupt_second_chunk)
    assert predict(checkpoint, photos, "--json", out, "--batch-size", "1") == 130
    (first,) = json.loads(out.read_text())
    assert first["image"].endswith("astronaut.png") and len(first["faces"]) == 1
    monkeypatch.setattr(Predictor, "run", original)
    capsys.readouterr()
    assert predict(checkpoint, photos, "--json", out, "--batch-size", "1") == 1
    assert "resuming: 1 of 3" in capsys.readouterr().err
    assert len(json.loads(out.read_text())) == 3


def test_bad_arguments_are_one_line_errors(checkpoint, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert predict(checkpoint, tmp_path / "empty") == 2
    assert "no image files found" in capsys.readouterr().err
    assert predict(checkpoint, tmp_path / "empty", "--batch-size", "0") == 2
    assert "--batch-size" in capsys.readouterr().err
