"""`retrieval features`: random-weight extraction on scikit-image photos, layout, resume, bad files, weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data as skdata
from skimage import io as skio

from retrieval.cli import main
from retrieval.data.precomp import load_split, resolve_precomp_dir
from retrieval.features import RegionGridExtractor, extract_gallery, settings_from_config
from retrieval.features.extract import fill_boxes, select_regions
from retrieval.models import CONFIG_DIR
from shared.config import load_config
from shared.errors import UserError

TINY = ["detector.min_size=128", "detector.max_size=160", "detector.rpn_pre_nms_top_n=300", "detector.rpn_post_nms_top_n=100"]
PHOTOS = {"astronaut.png": skdata.astronaut, "coffee.jpg": skdata.coffee, "sub/chelsea.png": skdata.chelsea}


def _settings(*overrides: str):
    return settings_from_config(load_config(CONFIG_DIR / "features_butd.yaml", [*TINY, *overrides]))


@pytest.fixture
def photos(tmp_path):
    """Three half-size scikit-image photos (one in a subfolder), a broken .jpg and a non-image file."""
    root = tmp_path / "photos"
    for name, load in PHOTOS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        skio.imsave(root / name, load()[::2, ::2], check_contrast=False)
    (root / "broken.jpg").write_bytes(b"definitely not a jpeg")
    (root / "notes.txt").write_text("ignored")
    return root


def _run(photos, out, *extra: str) -> int:
    return main(["features", "--images", str(photos), "--out", str(out), "--no-progress", *extra, *TINY])


def test_cli_writes_a_gallery_split_that_load_split_reads(photos, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(photos, out) == 0
    captured = capsys.readouterr()
    assert "features come from random weights, useful only for testing" in captured.out
    assert "3 images" in captured.out and "1 skipped" in captured.out
    bad_lines = [line for line in captured.err.splitlines() if "skipping" in line]
    assert len(bad_lines) == 1 and "broken.jpg" in bad_lines[0]

    where = resolve_precomp_dir(out)
    assert (where.name, where.layout) == ("gallery", "scan")
    split = load_split(out, "test", finite_check="full")
    assert split.n_images == 3 and split.captions == []
    assert split.ids == ["astronaut.png", "coffee.jpg", "sub/chelsea.png"]
    assert split.paths == [str((photos / i).resolve()) for i in split.ids]
    assert split.images.shape == (3, 36, 2048) and split.images.dtype == np.float32
    assert split.boxes.shape == (3, 36, 4) and split.grid.shape == (3, 49, 2048)
    sizes = {name: load().shape[:2] for name, load in PHOTOS.items()}
    expected = [[(sizes[i][1] + 1) // 2, (sizes[i][0] + 1) // 2] for i in split.ids]
    assert split.image_sizes.tolist() == expected
    boxes = np.asarray(split.boxes)
    assert (boxes[..., 2] > boxes[..., 0]).all() and (boxes[..., 3] > boxes[..., 1]).all()
    assert (boxes >= 0).all() and (boxes[..., 2] <= split.image_sizes[:, None, 0]).all()
    assert (boxes[..., 3] <= split.image_sizes[:, None, 1]).all()
    assert np.asarray(split.images).std(axis=1).mean() > 0  # 36 different regions, not one repeated vector


def test_rerun_resumes_and_adds_only_new_photos(photos, tmp_path):
    out = tmp_path / "out"
    first = extract_gallery(photos, out, _settings(), show_progress=False)
    assert (first.extracted_now, first.resumed, first.n_images) == (3, 0, 3)
    before = np.load(out / "gallery_precomp" / "test_ims.npy")
    again = extract_gallery(photos, out, _settings(), show_progress=False)
    assert (again.extracted_now, again.resumed) == (0, 3)
    np.testing.assert_array_equal(np.load(out / "gallery_precomp" / "test_ims.npy"), before)

    skio.imsave(photos / "aa_rocket.png", skdata.rocket()[::4, ::4], check_contrast=False)
    grown = extract_gallery(photos, out, _settings(), show_progress=False)
    assert (grown.extracted_now, grown.resumed, grown.n_images) == (1, 3, 4)
    split = load_split(out, "test")
    assert split.ids[0] == "aa_rocket.png"
    np.testing.assert_array_equal(np.asarray(split.images[1:]), before)

    skio.imsave(photos / "coffee.jpg", skdata.rocket()[::2, ::2], check_contrast=False)  # same name, new photo
    replaced = extract_gallery(photos, out, _settings(), show_progress=False)
    assert (replaced.extracted_now, replaced.resumed) == (1, 3)
    height, width = skdata.rocket()[::2, ::2].shape[:2]
    assert load_split(out, "test").image_sizes[2].tolist() == [width, height]


def test_changed_settings_need_fresh(photos, tmp_path):
    out = tmp_path / "out"
    extract_gallery(photos, out, _settings(), show_progress=False)
    before = np.load(out / "gallery_precomp" / "test_ims.npy")
    with pytest.raises(UserError, match="other settings or weights; rerun with --fresh"):
        extract_gallery(photos, out, _settings("regions.roi_output=3"), show_progress=False)
    redone = extract_gallery(photos, out, _settings("regions.roi_output=3"), fresh=True, show_progress=False)
    assert (redone.extracted_now, redone.resumed) == (3, 0)
    assert not np.allclose(np.load(out / "gallery_precomp" / "test_ims.npy"), before)


def test_captions_file_gives_a_normal_captioned_split(photos, tmp_path):
    (photos / "broken.jpg").unlink()
    ids = ["astronaut.png", "coffee.jpg", "sub/chelsea.png"]
    captions = tmp_path / "caps.tsv"
    captions.write_text("".join(f"{i}\t{i.split('.')[0]} photo number {k}\n" for i in reversed(ids) for k in range(5)),
                        encoding="utf-8")
    extract_gallery(photos, tmp_path / "out", _settings(), captions=captions, show_progress=False)
    split = load_split(tmp_path / "out", "test")
    assert split.n_captions == 15
    assert split.image_captions(2) == [f"sub/chelsea photo number {k}" for k in range(5)]

    captions.write_text("astronaut.png\tonly one caption\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"image 'astronaut.png' has 1 captions, expected 5"):
        extract_gallery(photos, tmp_path / "out", _settings(), captions=captions, show_progress=False)
    captions.write_text("missing.png\ta caption\n", encoding="utf-8")
    with pytest.raises(UserError, match="line 1 names 'missing.png'"):
        extract_gallery(photos, tmp_path / "out", _settings(), captions=captions, show_progress=False)


def test_weights_load_from_safetensors_and_pth(tmp_path):
    from safetensors.torch import save_file

    trained = RegionGridExtractor(_settings("seed=7"))
    state = trained.detector.state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "det.safetensors"))
    torch.save({"model": state}, tmp_path / "det.pth")
    image = [torch.from_numpy(skdata.coffee()[::4, ::4].copy()).permute(2, 0, 1).float() / 255]
    expected = trained(image)
    for name in ("det.safetensors", "det.pth"):
        loaded = RegionGridExtractor(_settings(f"detector.weights={tmp_path / name}"))
        got = loaded(image)
        torch.testing.assert_close(got.features, expected.features)
        torch.testing.assert_close(got.boxes, expected.boxes)


def test_bad_weight_files_are_one_line_errors(photos, tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(UserError, match="junk.pth: not a readable weight file"):
        RegionGridExtractor(_settings(f"detector.weights={tmp_path / 'junk.pth'}"))
    other = RegionGridExtractor(_settings("detector.num_classes=5")).detector.state_dict()
    torch.save(other, tmp_path / "five.pth")
    with pytest.raises(UserError, match=r"cls_score.weight' has shape \(5, 1024\), model expects \(91, 1024\)"):
        RegionGridExtractor(_settings(f"detector.weights={tmp_path / 'five.pth'}"))
    with pytest.raises(UserError, match="nope.pth: file not found"):
        extract_gallery(photos, tmp_path / "out", _settings(f"detector.weights={tmp_path / 'nope.pth'}"))


def test_user_errors_from_the_cli(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["features", "--images", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "no image files" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"no")
    assert main(["features", "--images", str(tmp_path / "bad"), "--out", str(tmp_path / "out"), "--no-progress", *TINY]) == 2
    assert "none of the 1 image files could be read" in capsys.readouterr().err
    assert main(["features", "--images", str(tmp_path), "--out", str(tmp_path / "out"), "regions.num_box=3"]) == 2
    assert "unknown config key 'regions.num_box'" in capsys.readouterr().err


def test_butd_region_choice_ranks_by_best_class_surviving_nms():
    proposals = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], dtype=torch.float32)
    scores = torch.tensor([[0.1, 0.9, 0.0], [0.1, 0.4, 0.5], [0.9, 0.1, 0.0]])
    order, confidence = select_regions(proposals, scores, num_boxes=36, nms_thresh=0.3, score_floor=0.0)
    # class 1 keeps proposal 0 and suppresses 1; class 2 keeps proposal 1 (0.5); proposal 2 keeps 0.1
    assert order.tolist() == [0, 1, 2]
    torch.testing.assert_close(confidence, torch.tensor([0.9, 0.5, 0.1]))
    order, confidence = select_regions(proposals, scores, num_boxes=2, nms_thresh=0.3, score_floor=0.6)
    assert order.tolist() == [0, 1] and confidence.tolist() == [pytest.approx(0.9), 0.0]  # ties keep RPN order


def test_fill_boxes_pads_to_the_fixed_count():
    boxes = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    whole = fill_boxes(boxes, 3, height=20, width=30, mode="whole_image")
    assert whole.tolist() == [[1, 2, 3, 4], [0, 0, 30, 20], [0, 0, 30, 20]]
    assert fill_boxes(boxes, 2, 20, 30, "repeat_last").tolist() == [[1, 2, 3, 4], [1, 2, 3, 4]]
    assert fill_boxes(boxes.new_zeros((0, 4)), 1, 20, 30, "repeat_last").tolist() == [[0, 0, 30, 20]]


def test_gallery_split_rules_in_the_loader(tmp_path):
    folder = tmp_path / "mine_precomp"
    folder.mkdir()
    np.save(folder / "test_ims.npy", np.zeros((2, 36, 8), np.float32))
    (folder / "test_paths.txt").write_text("/a.png\n/b.png\n", encoding="utf-8")
    split = load_split(tmp_path, "test", feature_dim=8)
    assert (split.n_images, split.captions, split.paths) == (2, [], ["/a.png", "/b.png"])
    (folder / "test_paths.txt").write_text("/a.png\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"test_paths.txt: 1 image paths for 2 images"):
        load_split(tmp_path, "test", feature_dim=8)
    (folder / "test_paths.txt").unlink()
    np.save(folder / "dev_ims.npy", np.zeros((2, 36, 8), np.float32))
    (folder / "dev_caps.txt").write_text("a cube\n" * 10, encoding="utf-8")
    with pytest.raises(UserError, match="test_caps.txt: caption file not found"):  # no paths file: captions required
        load_split(tmp_path, "test", feature_dim=8)


def test_batches_hold_images_of_one_size(tmp_path, capsys):
    from retrieval.features.gallery import _batches

    a, b = torch.zeros(3, 4, 6), torch.zeros(3, 5, 5)
    items = [("a1", a, None), ("b1", b, None), ("bad", None, "cannot identify"), ("a2", a, None),
             ("a3", a, None), ("b2", b, None)]
    skipped = []
    batches = [[i for i, _ in batch] for batch in _batches(items, tmp_path, 2, False, skipped)]
    assert batches == [["a1", "a2"], ["b1", "b2"], ["a3"]]
    assert skipped == [("bad", "cannot identify")]
    assert capsys.readouterr().err.strip() == f"retrieval features: skipping {tmp_path / 'bad'}: cannot identify"


def test_two_ranks_write_the_files_of_one_process(photos, tmp_path):
    """`torchrun --nproc_per_node 2 -m retrieval features` shares the images out over the ranks and
    writes, from rank 0, byte for byte the split files one process writes."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    one, two = tmp_path / "one", tmp_path / "two"
    args = ["features", "--images", str(photos), "--no-progress", "--device", "cpu", *TINY]
    assert main([*args, "--out", str(one)]) == 0
    torchrun = Path(sys.executable).parent / "torchrun"
    result = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "retrieval", *args,
                             "--out", str(two)], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("images in") == 1  # one summary, from rank 0
    folder_one, folder_two = one / "gallery_precomp", two / "gallery_precomp"
    names = sorted(p.name for p in folder_one.glob("test_*") if p.name != "test_features.json")
    assert names and names == sorted(p.name for p in folder_two.glob("test_*") if p.name != "test_features.json")
    for name in names:
        assert (folder_one / name).read_bytes() == (folder_two / name).read_bytes(), name
    shards = {p.name for p in (folder_two / ".features_test").glob("shard_*.npz")}
    assert any(name.startswith("shard_r1_") for name in shards)  # rank 1 did part of the work
