"""Precomp loader: both folder layouts, both row layouts, name resolution, truncation, side arrays, bad files."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from retrieval.data.precomp import check_rows, load_split, load_split_captions, resolve_precomp_dir
from shared.errors import UserError

from .fixtures import write_precomp
from .layouts import repeat_per_caption


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


def test_finite_check_covers_every_row(tmp_path):
    folder = write_precomp(tmp_path, splits={"train": 320}, dim=2, regions=2, side=False)
    images = np.load(folder / "train_ims.npy")
    images[300, 1, 0] = np.inf  # a row the former 256-row sample skipped
    np.save(folder / "train_ims.npy", images)
    with pytest.raises(UserError, match=r"train_ims\.npy: NaN or inf values in row 300$"):
        load_split(tmp_path, "train", feature_dim=2, num_regions=2)
    assert load_split(tmp_path, "train", feature_dim=2, num_regions=2, finite_check="none").n_images == 320


def test_streamed_check_reports_the_first_bad_row_across_chunks(tmp_path):
    images = np.zeros((50, 3, 4), np.float32)
    images[[17, 41], 2, 3] = np.nan
    chunk = 3 * 4 * 4 * 5  # five rows per chunk: row 17 is in the fourth chunk
    with pytest.raises(UserError, match="row 17$"):
        check_rows(images, tmp_path / "x.npy", chunk_bytes=chunk)
    check_rows(images[:17], tmp_path / "x.npy", chunk_bytes=chunk)
    check_rows(images, tmp_path / "x.npy", finite=False, chunk_bytes=chunk)


def test_truncated_dev_checks_only_the_rows_it_exposes(tmp_path):
    folder = write_precomp(tmp_path, splits={"train": 4, "dev": 3}, side=False)
    images = np.load(folder / "dev_ims.npy")
    images[2, 0, 0] = np.nan
    np.save(folder / "dev_ims.npy", images)
    assert load_split(tmp_path, "dev", feature_dim=16, dev_max_images=2).n_images == 2
    with pytest.raises(UserError, match="dev_ims.npy: NaN or inf values in row 2"):
        load_split(tmp_path, "dev", feature_dim=16, dev_max_images=None)


@pytest.mark.parametrize("layout", ["scan", "vse_infty"])
def test_one_row_per_caption_dev_loads_as_one_image_per_five_captions(tmp_path, layout):
    folder = write_precomp(tmp_path, name="f30k", layout=layout, splits={"train": 4, "dev": 4})
    per_image = np.load(folder / "dev_ims.npy")
    repeat_per_caption(folder, "dev")
    assert np.load(folder / "dev_ims.npy").shape == (20, 36, 16)
    data = load_split(tmp_path, "dev", feature_dim=16, dev_max_images=None)
    assert data.feature_layout == "per_caption" and data.truncated_from is None
    assert (data.n_images, data.n_captions) == (4, 20) and isinstance(data.images, np.memmap)
    assert np.array_equal(data.images, per_image)
    rows = np.load(folder / "dev_ims.npy")
    for j in range(20):  # caption j -> image j // 5, whose features are the caption's own row
        assert np.array_equal(data.images[data.caption_image[j]], rows[j])
    assert data.ids == ["1000", "1001", "1002", "1003"]
    assert data.boxes.shape == (4, 36, 4) and data.seg_maps.shape == (4, 64, 64) and len(data.scene_graphs) == 4
    assert load_split(tmp_path, "train", feature_dim=16).feature_layout == "per_image"
    assert len(load_split_captions(tmp_path, "dev")) == 20


def test_one_row_per_caption_dev_truncates_by_image(tmp_path):
    folder = write_precomp(tmp_path, splits={"train": 4, "dev": 4})
    per_image = np.load(folder / "dev_ims.npy")
    captions = (folder / "dev_caps.txt").read_text().splitlines()
    repeat_per_caption(folder, "dev", side_arrays=("boxes", "grid"), scene_graphs=True)
    data = load_split(tmp_path, "dev", feature_dim=16, dev_max_images=3)
    assert (data.n_images, data.n_captions, data.truncated_from) == (3, 15, 4)
    assert np.array_equal(data.images, per_image[:3]) and data.captions == captions[:15]
    assert data.boxes.shape == (3, 36, 4) and data.grid.shape == (3, 49, 16) and data.ids == ["1000", "1001", "1002"]
    assert data.scene_graphs == [[(0, "left of", 1), (2, "on", 3)]] * 3
    lines = (folder / "dev_ids.txt").read_text().splitlines()
    (folder / "dev_ids.txt").write_text("\n".join(lines[:7] + ["999"] + lines[8:]) + "\n")
    with pytest.raises(UserError, match=r"dev_ids\.txt: lines 6-10 \(image 1\) differ"):
        load_split(tmp_path, "dev", feature_dim=16)


def test_one_row_per_caption_rows_of_an_image_must_be_identical(tmp_path):
    folder = write_precomp(tmp_path, splits={"train": 4, "dev": 4}, side=False)
    repeat_per_caption(folder, "dev")
    rows = np.load(folder / "dev_ims.npy")
    rows[12, 3, 3] += 1.0  # image 2's third caption row
    np.save(folder / "dev_ims.npy", rows)
    with pytest.raises(UserError, match=r"dev_ims\.npy: one row per caption, but rows 10-14 \(image 2\) differ"):
        load_split(tmp_path, "dev", feature_dim=16, dev_max_images=None)
    assert load_split(tmp_path, "dev", feature_dim=16, dev_max_images=2).n_images == 2  # images 0-1 are fine


def test_one_row_per_caption_side_array_copies_must_agree(tmp_path):
    folder = write_precomp(tmp_path, splits={"train": 4, "dev": 4})
    repeat_per_caption(folder, "dev", side_arrays=("boxes",))
    boxes = np.load(folder / "dev_boxes.npy")
    boxes[6] += 1.0
    np.save(folder / "dev_boxes.npy", boxes)
    with pytest.raises(UserError, match=r"dev_boxes\.npy: one row per caption, but rows 5-9 \(image 1\) differ"):
        load_split(tmp_path, "dev", feature_dim=16, dev_max_images=None)


def test_unknown_row_counts_name_both_counts_and_the_known_layouts(tmp_path):
    folder = write_precomp(tmp_path, splits={"train": 4, "dev": 4}, side=False)
    np.save(folder / "dev_ims.npy", np.zeros((7, 36, 16), np.float32))
    with pytest.raises(UserError) as err:
        load_split(tmp_path, "dev", feature_dim=16)
    message = str(err.value)
    assert "dev_caps.txt: 20 captions for 7 images in dev_ims.npy; known layouts: 35 captions (5 per image" in message
    assert "or a multiple of 5 (one feature row per caption" in message and "\n" not in message


def _save(name, array):
    def mutate(folder):
        np.save(folder / name, array)

    return mutate


def _write(name, text):
    def mutate(folder):
        (folder / name).write_text(text, encoding="utf-8")

    return mutate


def _save_objects(name):
    def mutate(folder):
        np.save(folder / name, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)

    return mutate


def _pickle(name):
    def mutate(folder):
        (folder / name).write_bytes(pickle.dumps({"features": [1.0, 2.0]}))

    return mutate


def _npz(name):
    def mutate(folder):
        with open(folder / name, "wb") as handle:
            np.savez(handle, a=np.zeros(3))

    return mutate


def _truncate(name):
    def mutate(folder):
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[:-100])

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
    "nan": (_with_nan, "train_ims.npy: NaN or inf values in row 3"),
    "four_captions": (_drop_caption, "train_caps.txt: 19 captions for 4 images in train_ims.npy"),
    "missing_ims": (lambda f: (f / "train_ims.npy").unlink(), "train_ims.npy: file not found"),
    "missing_caps": (lambda f: (f / "train_caps.txt").unlink(), "train_caps.txt: caption file not found"),
    "text_npy": (_write("train_ims.npy", "hello\nworld\n"), "train_ims.npy: not a .npy array (a text file starting 'hello'"),
    "zero_bytes": (_write("train_ims.npy", ""), "train_ims.npy: empty file (0 bytes)"),
    "zero_by_zero": (_save("train_ims.npy", np.zeros((0, 0), np.float32)), "train_ims.npy: empty array (shape (0, 0))"),
    "zero_rows": (_save("train_ims.npy", np.zeros((0, 36, 16), np.float32)), "train_ims.npy: empty array (shape (0, 36, 16))"),
    "object_npy": (_save_objects("train_ims.npy"), "train_ims.npy: holds Python objects (dtype object)"),
    "pickle": (_pickle("train_ims.npy"), "train_ims.npy: not a .npy array (a Python pickle, refused"),
    "npz": (_npz("train_ims.npy"), "train_ims.npy: not a .npy array (a zip archive"),
    "truncated": (_truncate("train_ims.npy"), "train_ims.npy: truncated"),
    "empty_side": (_save("train_boxes.npy", np.zeros((0,), np.float32)), "train_boxes.npy: empty array"),
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
    "not_utf8": (lambda f: (f / "train_caps.txt").write_bytes(b"\xff\xfe\n" * 20), "train_caps.txt: not utf-8"),
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
