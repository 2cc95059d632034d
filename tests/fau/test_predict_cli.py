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


def interrupt_after(monkeypatch, chunks):
    """Make `Predictor.run` raise KeyboardInterrupt on call number `chunks` + 1."""
    calls = []
    original = Predictor.run

    def run(self, items, **kwargs):
        calls.append(items)
        if len(calls) > chunks:
            raise KeyboardInterrupt
        return original(self, items, **kwargs)

    monkeypatch.setattr(Predictor, "run", run)
    return lambda: monkeypatch.setattr(Predictor, "run", original)


def test_interrupted_rerun_with_other_settings_keeps_the_finished_outputs(checkpoint, photos, tmp_path,
                                                                            monkeypatch, capsys):
    out = tmp_path / "out"
    outputs = [out / "r.json", out / "r.csv"]
    args = (photos, "--json", outputs[0], "--csv", outputs[1], "--overlay", out / "png", "--batch-size", "1")
    assert predict(checkpoint, *args) == 1
    before = {p: p.read_bytes() for p in [*outputs, *sorted((out / "png").iterdir())]}
    threshold = tmp_path / "t.yaml"
    threshold.write_text("AU12: 0.01\nAU1: 0.01\n")
    restore = interrupt_after(monkeypatch, 1)
    capsys.readouterr()
    assert predict(checkpoint, *args, "--threshold", threshold) == 130
    err = capsys.readouterr().err
    assert "starting afresh" in err and "r.json: kept as it was" in err and "r.csv: kept as it was" in err
    assert {p: p.read_bytes() for p in before} == before          # nothing of the finished run lost
    assert set((out / "png").iterdir()) == {*[*before][2:], out / "png" / ".pending"}
    # a second interruption of the same settings still keeps them; the complete run replaces them
    assert predict(checkpoint, *args, "--threshold", threshold) == 130
    assert {p: p.read_bytes() for p in before} == before
    restore()
    assert predict(checkpoint, *args, "--threshold", threshold) == 1
    (astronaut,) = [r for r in json.loads(outputs[0].read_text()) if r["image"].endswith("astronaut.png")]
    assert {"AU1", "AU12"} <= set(astronaut["faces"][0]["active"])
    assert outputs[0].read_bytes() != before[outputs[0]] and not (out / "png" / ".pending").exists()
    assert (out / "png" / overlay_name(astronaut["image"], 0)).read_bytes() != before[
        out / "png" / overlay_name(astronaut["image"], 0)]


def test_interrupted_run_over_other_images_keeps_the_finished_output(checkpoint, photos, tmp_path, monkeypatch):
    out = tmp_path / "r.json"
    assert predict(checkpoint, photos / "astronaut.png", "--json", out) == 0
    before = out.read_bytes()
    restore = interrupt_after(monkeypatch, 1)
    assert predict(checkpoint, photos / "more", "--json", out, "--batch-size", "1") == 130
    assert out.read_bytes() == before
    restore()


def test_repeated_interruptions_update_their_own_partial_output(checkpoint, photos, tmp_path, monkeypatch):
    out = tmp_path / "r.json"
    restore = interrupt_after(monkeypatch, 1)
    assert predict(checkpoint, photos, "--json", out, "--batch-size", "1") == 130
    assert len(json.loads(out.read_text())) == 1
    restore()
    restore = interrupt_after(monkeypatch, 1)
    assert predict(checkpoint, photos, "--json", out, "--batch-size", "1") == 130
    assert len(json.loads(out.read_text())) == 2                 # its own partial output: updated
    restore()


def test_outputs_that_cannot_be_written_are_refused_before_the_batch(checkpoint, photos, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    for option, value, message in (("--json", tmp_path / "adir", "is a folder"),
                                   ("--csv", tmp_path / "afile" / "r.csv", "is not a folder"),
                                   ("--overlay", tmp_path / "afile", "exists and is not a folder"),
                                   ("--json", tmp_path / "afile" / "deeper" / "r.json", "is not a folder")):
        assert predict(checkpoint, photos / "astronaut.png", option, value) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and option in err and str(value) in err and message in err
