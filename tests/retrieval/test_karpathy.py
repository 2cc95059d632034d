"""Karpathy JSON: splits (COCO restval → train, COCO test 1K vs testall), captions, malformed files."""

from __future__ import annotations

import json

import pytest

from retrieval.data.karpathy import load_karpathy, split_captions, split_counts, split_images
from shared.errors import UserError

from .fixtures import write_karpathy


def test_coco_splits_with_restval(tmp_path):
    path = write_karpathy(tmp_path / "dataset_coco.json", {"train": 3, "restval": 2, "val": 2, "test": 1002})
    images = load_karpathy(path)
    assert split_counts(images) == {"train": 3, "restval": 2, "val": 2, "test": 1002}
    assert len(split_images(images, "train")) == 5
    assert len(split_images(images, "train", restval_to_train=False)) == 3
    assert [i.split for i in split_images(images, "dev")] == ["val", "val"]
    test, testall = split_images(images, "test"), split_images(images, "testall")
    assert (len(test), len(testall)) == (1000, 1002) and test == testall[:1000]
    first = images[0]
    assert (first.filename, first.image_id, first.filepath) == ("img_00000.jpg", "500000", "val2014")


def test_flickr_test_is_not_cut(tmp_path):
    images = load_karpathy(write_karpathy(tmp_path / "dataset_flickr30k.json", {"train": 2, "val": 1, "test": 1003}))
    assert len(split_images(images, "test")) == 1003


def test_captions_come_from_raw_and_keep_five(tmp_path):
    images = load_karpathy(write_karpathy(tmp_path / "k.json", {"train": 2}, sentences=7))
    captions = split_captions(images)
    assert len(captions) == 10 and captions[:5] == list(images[0].captions[:5])
    assert captions[0][0].isupper() and captions[0].endswith(".")


def test_malformed_karpathy_files(tmp_path):
    short = load_karpathy(write_karpathy(tmp_path / "short.json", {"train": 1}, sentences=4))
    with pytest.raises(UserError, match="img_00000.jpg has 4 captions, need 5"):
        split_captions(short, tmp_path / "short.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UserError, match=r"bad\.json: invalid JSON"):
        load_karpathy(tmp_path / "bad.json")
    (tmp_path / "nokey.json").write_text(json.dumps({"images": [{"split": "train", "sentences": []}]}))
    with pytest.raises(UserError, match=r"nokey\.json: image entry 0 lacks 'filename'"):
        load_karpathy(tmp_path / "nokey.json")
    (tmp_path / "noimages.json").write_text("[]")
    with pytest.raises(UserError, match="no top-level 'images' list"):
        load_karpathy(tmp_path / "noimages.json")
    with pytest.raises(UserError, match="not found"):
        load_karpathy(tmp_path / "missing.json")
    with pytest.raises(UserError, match="unknown split 'valid'"):
        split_images(short, "valid")
