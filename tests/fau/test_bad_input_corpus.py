"""Bad input to the `fau` commands, run through the CLI in-process: each case exits 2 with exactly one
stderr line that names the file or argument, no traceback, and every file of the workspace (earlier
outputs included: a finished `fau predict` run, a prepared dataset, a trained checkpoint) byte-identical
afterwards. A second table holds per-file faults of a batch (exit 1, one line for that file, the rest
predicted)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from fau.cli import main
from fau.data.prepare import prepare
from shared.checkpoint import save_checkpoint
from tests.fau import fixtures as fx
from tests.fau.test_predict import tiny_checkpoint
from tests.fau.test_predict_images import png_bomb


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """The workspace every case runs against (module docstring)."""
    ws = tmp_path_factory.mktemp("ws")
    ckpt = tiny_checkpoint(ws / "ckpt" / "best")
    meta = json.loads((ws / "ckpt" / "best.json").read_text())
    # a checkpoint of the other task, written by hand the way retrieval training writes its sidecar
    save_checkpoint(ws / "ckpt" / "retrieval", {"img_enc.fc.weight": torch.zeros(4, 4)},
                    {"model": "vsepp", "config": {"model": {"embed_size": 4}, "data": {"name": "f30k"}},
                     "dataset": "f30k", "split": "train", "text_kind": "vocab", "vocab": ["<pad>", "a"],
                     "labels": None})
    without_data = {**meta, "config": {k: v for k, v in meta["config"].items() if k != "data"}}
    save_checkpoint(ws / "ckpt" / "nodata", _weights(ckpt), without_data)
    save_checkpoint(ws / "ckpt" / "badprior", _weights(ckpt), {**meta, "prior": [[0.5]]})
    (ws / "ckpt" / "orphan.safetensors").write_bytes(ckpt.read_bytes())               # no sidecar
    (ws / "ckpt" / "cut.safetensors").write_bytes(ckpt.read_bytes()[:300])           # truncated
    (ws / "ckpt" / "cut.json").write_bytes((ws / "ckpt" / "best.json").read_bytes())
    photos = ws / "photos"
    photos.mkdir()
    Image.fromarray(skimage.data.astronaut()).save(photos / "astronaut.png")
    (ws / "empty").mkdir()
    (ws / "afile").write_text("a plain file\n")
    (ws / "adir").mkdir()
    (ws / "t_unknown.yaml").write_text("AU99: 0.4\n")
    (ws / "t_range.yaml").write_text("AU12: 1.5\n")
    (ws / "t_list.yaml").write_text("- 0.4\n")
    assert main(["predict", str(photos), "--checkpoint", str(ckpt), "--device", "cpu", "--no-progress",
                 "--json", str(ws / "results" / "r.json"), "--csv", str(ws / "results" / "r.csv")]) == 0
    fx.make_bp4d(ws / "raw", subjects=("F001", "M007", "F003"), tasks=("T1",), frames=1)
    prepare("bp4d", ws / "raw", ws / "prepared", progress=False)
    return ws


def _weights(checkpoint: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(checkpoint))


def predict(*args: str) -> list[str]:
    return ["predict", "{ws}/photos", "--device", "cpu", "--no-progress", *args]


CKPT = "{ws}/ckpt/best.safetensors"
#: (case id, argv with {ws} for the workspace, the text the one line must contain)
CASES = [
    ("predict-retrieval-checkpoint", predict("--checkpoint", "{ws}/ckpt/retrieval.safetensors"),
     ["retrieval.json", "not a FAU model"]),
    ("predict-sidecar-without-config-data", predict("--checkpoint", "{ws}/ckpt/nodata.safetensors"),
     ["nodata.json", "config.data"]),
    ("predict-prior-of-wrong-shape", predict("--checkpoint", "{ws}/ckpt/badprior.safetensors"),
     ["badprior.json", "prior"]),
    ("predict-weights-without-sidecar", predict("--checkpoint", "{ws}/ckpt/orphan.safetensors"),
     ["orphan.json", "sidecar"]),
    ("predict-truncated-weights", predict("--checkpoint", "{ws}/ckpt/cut.safetensors"),
     ["cut.safetensors", "truncated"]),
    ("predict-missing-checkpoint", predict("--checkpoint", "{ws}/ckpt/none.safetensors"), ["none.safetensors"]),
    ("predict-other-task-over-finished-results",
     predict("--checkpoint", "{ws}/ckpt/retrieval.safetensors", "--json", "{ws}/results/r.json"), ["retrieval.json"]),
    ("predict-json-is-a-folder", predict("--checkpoint", CKPT, "--json", "{ws}/adir"), ["--json", "adir", "folder"]),
    ("predict-csv-below-a-file", predict("--checkpoint", CKPT, "--csv", "{ws}/afile/r.csv"), ["--csv", "afile"]),
    ("predict-overlay-is-a-file", predict("--checkpoint", CKPT, "--overlay", "{ws}/afile"), ["--overlay", "afile"]),
    ("predict-threshold-folder", predict("--checkpoint", CKPT, "--threshold", "{ws}/adir"), ["--threshold", "adir"]),
    ("predict-threshold-missing", predict("--checkpoint", CKPT, "--threshold", "{ws}/none.yaml"),
     ["--threshold", "none.yaml"]),
    ("predict-threshold-unknown-au", predict("--checkpoint", CKPT, "--threshold", "{ws}/t_unknown.yaml"),
     ["--threshold", "AU99"]),
    ("predict-threshold-out-of-range", predict("--checkpoint", CKPT, "--threshold", "{ws}/t_range.yaml"),
     ["--threshold", "AU12"]),
    ("predict-threshold-not-a-mapping", predict("--checkpoint", CKPT, "--threshold", "{ws}/t_list.yaml"),
     ["--threshold", "mapping"]),
    ("predict-template-not-a-template", predict("--checkpoint", CKPT, "--template", "{ws}/afile"), ["afile"]),
    ("predict-min-score-nan", predict("--checkpoint", CKPT, "--min-score", "nan"), ["--min-score"]),
    ("predict-batch-size-zero", predict("--checkpoint", CKPT, "--batch-size", "0"), ["--batch-size"]),
    ("predict-no-images", ["predict", "{ws}/empty", "--checkpoint", CKPT, "--device", "cpu"], ["empty"]),
    ("eval-retrieval-checkpoint", ["eval", "--checkpoint", "{ws}/ckpt/retrieval.safetensors", "--data",
                                   "{ws}/prepared", "--device", "cpu"], ["retrieval.json", "not a FAU model"]),
    ("eval-sidecar-without-config-data", ["eval", "--checkpoint", "{ws}/ckpt/nodata.safetensors", "--data",
                                          "{ws}/prepared", "--device", "cpu"], ["nodata.json", "config.data"]),
    ("eval-data-not-prepared", ["eval", "--checkpoint", CKPT, "--data", "{ws}/adir", "--device", "cpu"], ["adir"]),
    ("eval-aggregate-missing-report", ["eval", "--aggregate", "{ws}/none.json"], ["--aggregate", "none.json"]),
    ("eval-aggregate-not-json", ["eval", "--aggregate", "{ws}/afile"], ["--aggregate", "afile"]),
    ("prepare-out-onto-a-file", ["prepare", "--dataset", "bp4d", "--root", "{ws}/raw", "--out", "{ws}/afile"],
     ["--out", "afile"]),
    ("prepare-root-missing", ["prepare", "--dataset", "bp4d", "--root", "{ws}/none", "--out", "{ws}/p2"], ["none"]),
    ("prepare-root-of-another-layout", ["prepare", "--dataset", "disfa", "--root", "{ws}/raw", "--out",
                                        "{ws}/prepared", "--quiet"], ["raw"]),
    ("prepare-aus-not-numbers", ["prepare", "--dataset", "bp4d", "--root", "{ws}/raw", "--out", "{ws}/p2",
                                 "--aus", "1,x"], ["--aus"]),
    ("prepare-box-enlarge-nan", ["prepare", "--dataset", "bp4d", "--root", "{ws}/raw", "--out", "{ws}/prepared",
                                 "--box-enlarge", "nan"], ["--box-enlarge"]),
    ("prepare-limit-zero", ["prepare", "--dataset", "bp4d", "--root", "{ws}/raw", "--out", "{ws}/prepared",
                            "--limit", "0"], ["--limit"]),
    ("prepare-size-too-small", ["prepare", "--dataset", "bp4d", "--root", "{ws}/raw", "--out", "{ws}/prepared",
                                "--size", "8"], ["--size"]),
    ("prepare-folds-missing", ["prepare", "--dataset", "bp4d", "--root", "{ws}/raw", "--out", "{ws}/p2",
                               "--folds", "{ws}/none.yaml", "--quiet"], ["none.yaml"]),
    ("prepare-workers-zero", ["prepare", "--dataset", "bp4d", "--root", "{ws}/raw", "--out", "{ws}/prepared",
                              "--workers", "0"], ["--workers"]),
]


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` with its bytes (None for a folder)."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("argv, names", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_is_one_line_exit_2_and_loses_nothing(ws, argv, names, capsys):
    before = snapshot(ws)
    capsys.readouterr()
    code = main([arg.format(ws=ws) for arg in argv])
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("fau: error: "), captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    for name in names:
        assert name in lines[0], (name, lines[0])
    after = snapshot(ws)
    new = sorted(set(after) - set(before))
    assert {k: after[k] for k in before} == before and not new, new


#: per-file faults inside a batch: (case id, file name, how to write it, extra argv, text of its line)
FILE_CASES = [
    ("truncated-jpeg", "cut.jpg",
     lambda p: p.write_bytes(_jpeg_bytes()[:4000]), [], "truncated"),
    ("text-named-png", "notes.png", lambda p: p.write_text("not an image"), [], "not in a readable image format"),
    ("decompression-bomb", "bomb.png", png_bomb, [], "too large"),
    ("aligned-crop-not-square", "wide.png",
     lambda p: Image.fromarray(np.zeros((50, 80, 3), np.uint8)).save(p), ["--aligned"], "square"),
    ("float-image-out-of-range", "float.tif",
     lambda p: Image.fromarray(np.full((40, 40), 7.0, np.float32)).save(p), [], "outside"),
]


def _jpeg_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(skimage.data.astronaut()).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize("name, write, extra, text", [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES])
def test_a_bad_file_is_one_line_naming_it_and_the_batch_goes_on(ws, tmp_path, name, write, extra, text, capsys):
    write(tmp_path / name)
    capsys.readouterr()
    code = main(["predict", str(tmp_path / name), str(ws / "photos" / "astronaut.png"), "--checkpoint",
                 str(ws / "ckpt" / "best.safetensors"), "--device", "cpu", "--no-progress", *extra])
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err
    (line,) = [m for m in captured.err.splitlines() if "error" in m]
    assert str(tmp_path / name) in line and text in line, line
    bad, good = [json.loads(r) for r in captured.out.splitlines()]
    assert bad["faces"] == [] and text in bad["error"] and len(good["faces"]) == 1
