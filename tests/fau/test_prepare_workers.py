"""`fau prepare --workers 2`: the same bytes as one process (crops, table, folds, journal), and the same
resumability after an interruption."""

import json
from pathlib import Path

import cv2
import pytest
import skimage.data

from fau.cli import main
from fau.data import prepare as prepare_mod
from fau.data.prepare import prepare

from . import fixtures as fx


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    """A BP4D tree whose T1 sequences have no landmark file (the detector path), one frame of them the
    astronaut's portrait (a face dlib finds), plus the fixture's bad rows."""
    root = tmp_path_factory.mktemp("raw") / "bp4d"
    fx.make_bp4d(root, subjects=("F001", "M007", "F003"), frames=3, bad=True)
    for path in (root / "landmarks").glob("*_T1.csv"):
        path.unlink()
    portrait = cv2.resize(skimage.data.astronaut()[0:300, 80:380], (200, 200), interpolation=cv2.INTER_AREA)
    fx.save_image(root / "images" / "F001" / "T1" / "0017.jpg", portrait)
    return root


def files(root: Path) -> dict[str, bytes]:
    """Every file under `root` by relative path; summary.json without its timing and resume counts."""
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.name == "summary.json":
            summary = json.loads(data)
            for key in ("seconds", "frames_resumed", "frames_retried"):
                summary.pop(key)
            data = json.dumps(summary, sort_keys=True).encode()
        out[str(path.relative_to(root))] = data
    return out


@pytest.fixture(scope="module")
def serial(raw, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("serial") / "out"
    summary = prepare("bp4d", raw, out, progress=False, workers=1)
    return out, summary


def test_two_workers_write_the_bytes_one_process_writes(raw, serial, tmp_path, capsys):
    out, summary = serial
    assert summary["landmark_source"].get("detector", 0) >= 1 and summary["landmark_source"]["file"] >= 1
    assert main(["prepare", "--dataset", "bp4d", "--root", str(raw), "--out", str(tmp_path / "two"),
                 "--workers", "2", "--quiet"]) == 0
    assert files(tmp_path / "two") == files(out)


def test_an_interrupted_two_worker_run_resumes_to_the_same_bytes(raw, serial, tmp_path, monkeypatch):
    out, summary = serial
    written = []
    original = prepare_mod._write_jpeg

    def stop_after_four(path, image):
        if len(written) == 4:
            raise KeyboardInterrupt
        written.append(path)
        original(path, image)

    monkeypatch.setattr(prepare_mod, "_write_jpeg", stop_after_four)
    with pytest.raises(KeyboardInterrupt):
        prepare("bp4d", raw, tmp_path / "two", progress=False, workers=2)
    monkeypatch.setattr(prepare_mod, "_write_jpeg", original)
    resumed = prepare("bp4d", raw, tmp_path / "two", progress=False, workers=2)
    assert resumed["frames_resumed"] >= 4 and resumed["frames_kept"] == summary["frames_kept"]
    assert files(tmp_path / "two") == files(out)
