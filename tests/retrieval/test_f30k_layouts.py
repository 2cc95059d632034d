"""The released F30K layouts end to end: one feature row per caption in dev, `retrieval train` and
`retrieval evaluate --split dev` on it, and bad feature files as exit status 2 with one stderr line."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from retrieval.cli import main
from retrieval.data.pairs import PairDataset, TextEncoding
from retrieval.data.precomp import load_split
from retrieval.data.vocab import Vocabulary

from .fixtures import write_precomp
from .layouts import repeat_per_caption

DIM = 16
TRAIN = ["--model", "vsepp", "--config", "vsepp_tiny", "--device", "cpu", "--no-progress",
         f"model.region_dim={DIM}", "train.epochs=1", "train.batch_size=16"]


def f30k_tree(root, layout):
    """F30K-like tree: train/test with one row per image, dev with one row per caption (4 images, 20 rows)."""
    folder = write_precomp(root, name="f30k", layout=layout, splits={"train": 8, "dev": 4, "test": 4}, dim=DIM,
                           side=False, seed=3)
    repeat_per_caption(folder, "dev")
    return folder


@pytest.fixture(scope="module", params=["scan", "vse_infty"])
def trained(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"f30k_{request.param}")
    folder = f30k_tree(root, request.param)
    assert main(["train", "--data", str(root), "--name", "f30k", "--out", str(root / "run"), *TRAIN]) == 0
    return root, folder, root / "run" / "best.safetensors"


def test_train_scores_the_per_caption_dev_split(trained):
    root, _, best = trained
    rows = [json.loads(line) for line in (root / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and 0.0 <= rows[0]["dev_rsum"] <= 600.0 and best.is_file()


def test_evaluate_dev_is_images_by_five_captions(trained, tmp_path, capsys):
    root, _, best = trained
    assert main(["evaluate", "--checkpoint", str(best), "--data", str(root), "--split", "dev",
                 "--save-sims", str(tmp_path / "sims.npy"), "--json", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["images"] == 4 and np.load(tmp_path / "sims.npy").shape == (4, 20)
    assert "(full, 4 images)" in capsys.readouterr().out


def test_training_pairs_caption_j_with_image_j_div_5(tmp_path):
    folder = f30k_tree(tmp_path, "scan")
    split = load_split(tmp_path, "dev", feature_dim=DIM, dev_max_images=None)
    rows = np.load(folder / "dev_ims.npy")
    pairs = PairDataset(split, TextEncoding("tokens", Vocabulary.build(split.captions, min_count=1)),
                        ("regions", "region_mask"))
    assert len(pairs) == 20
    for j in range(20):
        item = pairs[j]
        assert item["image_id"] == j // 5
        assert np.array_equal(item["image"]["regions"].numpy(), rows[j])


def test_feature_dimension_mismatch_is_one_line(trained, tmp_path, capsys):
    root, folder, best = trained
    other = tmp_path / "data"
    f30k_tree(other, "scan")
    np.save(other / "f30k_precomp" / "test_ims.npy", np.zeros((4, 36, 8), np.float32))
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(best), "--data", str(other), "--split", "test"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "test_ims.npy: features are 8-d but the model expects 16-d" in err
    assert main(["train", "--data", str(other), "--out", str(tmp_path / "run"), *TRAIN[:-3],
                 "model.region_dim=32", "train.epochs=1", "train.batch_size=16"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train_ims.npy: features are 16-d but the model expects 32-d" in err


def _write_bytes(data):
    return lambda path: path.write_bytes(data)


def _save(array, allow_pickle=False):
    return lambda path: np.save(path, array, allow_pickle=allow_pickle)


def _nan_at(row):
    def mutate(path):
        array = np.load(path)
        array[row, 0, 0] = np.nan
        np.save(path, array)

    return mutate


BAD_FILES = {
    "zero_bytes": (_write_bytes(b""), "empty file (0 bytes)"),
    "zero_by_zero": (_save(np.zeros((0, 0), np.float32)), "empty array (shape (0, 0))"),
    "zero_rows": (_save(np.zeros((0, 36, DIM), np.float32)), "empty array (shape (0, 36, 16))"),
    "text": (_write_bytes(b"0.1 0.2 0.3\n0.4 0.5 0.6\n"), "not a .npy array (a text file starting '0.1 0.2 0.3'"),
    "object": (_save(np.array([np.zeros(3), "x"], dtype=object), allow_pickle=True), "holds Python objects"),
    "pickle": (_write_bytes(pickle.dumps(np.zeros(3))), "not a .npy array (a Python pickle, refused"),
    "nan_late_row": (_nan_at(37), "NaN or inf values in row 37"),
    "row_count": (_save(np.zeros((39, 36, DIM), np.float32)), "200 captions for 39 images in train_ims.npy; known layouts: 195 captions"),
}
NAMED_FILE = {"row_count": "train_caps.txt"}  # the count error names the caption file and the features file


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_feature_files_exit_2_with_one_line_naming_the_file(tmp_path, capsys, case):
    folder = write_precomp(tmp_path, name="f30k", splits={"train": 40, "dev": 4}, dim=DIM, side=False)
    mutate, message = BAD_FILES[case]
    mutate(folder / "train_ims.npy")
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), *TRAIN]) == 2
    err = capsys.readouterr().err
    named = folder.resolve() / NAMED_FILE.get(case, "train_ims.npy")
    assert err.count("\n") == 1 and f"{named}: {message}" in err, err
    assert not (tmp_path / "run").exists()
