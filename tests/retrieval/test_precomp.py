"""Precomp loader: both layouts, dataset-name resolution, truncation, side arrays, malformed inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from retrieval.data.precomp import FINITE_SAMPLE_ROWS, load_split, load_split_captions, resolve_precomp_dir
from shared.errors import UserError

from .fixtures import write_precomp


def test_scan_layout_loads_every_array(tmp_path):
    folder = write_precomp(tmp_path)
    data = load_split(tmp_path, "train", feature_dim=16)
    assert (data.name, data.split, data.directory) == ("tiny", "train", folder.resolve())
    assert data.images.shape == (4, 36, 16) and isinstance(data.images, np.memmap)
    assert data.n_captions == 20 and data.captions[0].startswith("a ")
    assert data.caption_image.tolist() == [j // 5 for j in range(20)]
    assert data.image_captions(1) == data.captions[5:10]
    assert data.ids == ["1000", "1001", "1002", "1003"]
    assert set(data.side_arrays()) == {"boxes", "image_sizes", "grid", "segmentations", "seg_maps", "cat_onehots"}
    assert data.boxes.shape == (4, 36, 4) and data.grid.shape == (4, 49, 16)
    assert data.segmentations.shape == (4, 133, 7, 7) and data.seg_maps.shape == (4, 64, 64)
    assert data.scene_graphs[0] == [(0, "left of", 1), (2, "on", 3)]


def test_vse_infty_layout_and_precomp_dir_itself(tmp_path):
    folder = write_precomp(tmp_path, name="f30k", layout="vse_infty", side=False)
    found = resolve_precomp_dir(tmp_path)
    assert (found.name, found.layout, found.path) == ("f30k", "vse_infty", folder.resolve())
    assert resolve_precomp_dir(tmp_path / "f30k").name == "f30k"
    assert resolve_precomp_dir(folder).splits() == ["train", "dev", "test"]
    data = load_split(folder, "test", feature_dim=16)
    assert data.n_images == 2 and data.boxes is None and data.scene_graphs is None


def test_several_datasets_need_a_name(tmp_path):
    write_precomp(tmp_path, name="coco", side=False)
    write_precomp(tmp_path, name="f30k", layout="vse_infty", side=False)
    with pytest.raises(UserError, match="several datasets"):
        resolve_precomp_dir(tmp_path)
    assert resolve_precomp_dir(tmp_path, "f30k").layout == "vse_infty"
    assert resolve_precomp_dir(tmp_path, "coco").layout == "scan"


def test_dev_truncation_is_configurable(tmp_path):
    write_precomp(tmp_path, side=True)
    short = load_split(tmp_path, "dev", feature_dim=16, dev_max_images=2)
    assert (short.n_images, short.n_captions, short.truncated_from) == (2, 10, 3)
    assert short.boxes.shape[0] == 2 and len(short.scene_graphs) == 2 and short.ids == ["1000", "1001"]
    assert load_split(tmp_path, "dev", feature_dim=16, dev_max_images=None).n_images == 3
    assert load_split(tmp_path, "train", feature_dim=16, dev_max_images=2).n_images == 4
    assert load_split(tmp_path, "train", feature_dim=16, max_images=1).n_captions == 5


def test_default_feature_dim_is_2048(tmp_path):
    write_precomp(tmp_path, side=False)
    with pytest.raises(UserError, match=r"train_ims\.npy: region features has shape \(4, 36, 16\), expected \(\*, 36, 2048\)"):
        load_split(tmp_path, "train")
    assert load_split(tmp_path, "train", feature_dim=None).images.shape[2] == 16


def test_per_caption_ids_collapse_to_images(tmp_path):
    folder = write_precomp(tmp_path, side=False)
    (folder / "test_ids.txt").write_text("".join(f"{7 + j // 5}\n" for j in range(10)))
    assert load_split(tmp_path, "test", feature_dim=16).ids == ["7", "8"]


def test_full_finite_check_finds_what_the_sample_skips(tmp_path):
    folder = write_precomp(tmp_path, splits={"train": 300}, dim=2, regions=2, side=False)
    sampled = set(np.linspace(0, 299, FINITE_SAMPLE_ROWS).astype(int).tolist())
    skipped = min(set(range(300)) - sampled)
    images = np.load(folder / "train_ims.npy")
    images[skipped, 0, 0] = np.inf
    np.save(folder / "train_ims.npy", images)
    assert load_split(tmp_path, "train", feature_dim=2, num_regions=2).n_images == 300
    with pytest.raises(UserError, match=f"NaN or inf values in image {skipped}"):
        load_split(tmp_path, "train", feature_dim=2, num_regions=2, finite_check="full")


def _save(name, array):
    def mutate(folder):
        np.save(folder / name, array)

    return mutate


def _write(name, text):
    def mutate(folder):
        (folder / name).write_text(text, encoding="utf-8")

    return mutate


def _with_nan(folder):
    images = np.load(folder / "train_ims.npy")
    images[3, 5, 1] = np.nan
    np.save(folder / "train_ims.npy", images)


def _drop_caption(folder):
    lines = (folder / "train_caps.txt").read_text().splitlines()
    (folder / "train_caps.txt").write_text("\n".join(lines[:-1]) + "\n")


MALFORMED = {
    "wrong_shape": (_save("train_ims.npy", np.zeros((4, 36), np.float32)), "train_ims.npy: region features has shape"),
    "wrong_dtype": (_save("train_ims.npy", np.zeros((4, 36, 16), np.int32)), "train_ims.npy: dtype int32"),
    "nan": (_with_nan, "train_ims.npy: NaN or inf values in image 3"),
    "four_captions": (_drop_caption, "train_caps.txt: 19 captions for 4 images in train_ims.npy"),
    "missing_ims": (lambda f: (f / "train_ims.npy").unlink(), "train_ims.npy: file not found"),
    "missing_caps": (lambda f: (f / "train_caps.txt").unlink(), "train_caps.txt: caption file not found"),
    "not_npy": (_write("train_ims.npy", "hello"), "train_ims.npy: not a readable .npy array"),
    "empty_caption": (_write("train_caps.txt", "a cube\n\n" + "a cube\n" * 18), "train_caps.txt: line 2 is an empty caption"),
    "bad_json": (_write("train_scene_graphs.jsonl", "{oops\n" * 4), "train_scene_graphs.jsonl: line 1 is not a scene-graph record"),
    "region_out_of_range": (
        _write("train_scene_graphs.jsonl", json.dumps({"edges": [[0, "on", 36]]}) + "\n" * 1 + "{\"edges\": []}\n" * 3),
        "train_scene_graphs.jsonl: line 1 has region index outside 0..35",
    ),
    "too_few_graphs": (_write("train_scene_graphs.jsonl", "{\"edges\": []}\n"), "1 scene graphs for 4 images"),
    "boxes_shape": (_save("train_boxes.npy", np.zeros((4, 36, 3), np.float32)), "train_boxes.npy: boxes need at least 4 columns"),
    "grid_rows": (_save("train_grid.npy", np.zeros((3, 49, 16), np.float32)), "train_grid.npy: grid has shape"),
    "seg_shape": (_save("train_segmentations.npy", np.zeros((4, 133, 8, 8), np.float32)), "train_segmentations.npy"),
    "seg_map_nan": (_save("train_seg_maps.npy", np.full((4, 64, 64), np.nan, np.float32)), "train_seg_maps.npy: NaN"),
    "ids_count": (_write("train_ids.txt", "1\n2\n"), "train_ids.txt: 2 ids for 4 images"),
    "not_utf8": (lambda f: (f / "train_caps.txt").write_bytes(b"\xff\xfe\n" * 20), "train_caps.txt: not UTF-8"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_inputs_give_one_line_errors_naming_the_file(tmp_path, case):
    folder = write_precomp(tmp_path, splits={"train": 4, "dev": 1})
    mutate, message = MALFORMED[case]
    mutate(folder)
    with pytest.raises(UserError) as err:
        load_split(tmp_path, "train", feature_dim=16)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_resolution_errors(tmp_path):
    with pytest.raises(UserError, match="not a directory"):
        resolve_precomp_dir(tmp_path / "nope")
    with pytest.raises(UserError, match="no precomp dataset found"):
        resolve_precomp_dir(tmp_path)
    write_precomp(tmp_path, side=False)
    with pytest.raises(UserError, match=r"no split 'testall' \(found: train, dev, test\)"):
        load_split(tmp_path, "testall", feature_dim=16)
    assert len(load_split_captions(tmp_path, "dev")) == 15
