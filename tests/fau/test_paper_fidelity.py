"""The losses and modules as the thesis writes them (each other reading is a named option), and the
regression tests of two bugs: frames without landmarks and over-long global captions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fau.aus import attention_maps, resolve_aus
from fau.data.loader import AlignedFaceDataset
from fau.data.table import PreparedDataset
from fau.language.targets import global_sentence, load_template
from fau.language.vocab import Vocabulary, tokenize
from fau.losses import alignment_loss
from fau.models import MODELS, build_model

NUM_AUS = 12


def _tiny(name: str, *overrides: str) -> dict:
    return MODELS.load_config(name, "tiny", list(overrides))["model"]


def test_mgrrnet_paper_config_puts_the_stride2_conv_before_the_channel_gat() -> None:
    """Thesis §4.4.1: "a 3 × 3 Conv2D operation with a stride two and padding one before learning the
    channel-level feature"; O_G is (64, 44, 44), so the channel nodes have 22 × 22 = 484 dimensions."""
    section = MODELS.load_config("mgrrnet", "bp4d")["model"]
    assert section["relational"]["layer"]["channel_downsample"] is True
    model = build_model("mgrrnet", section, NUM_AUS, prior=np.full((NUM_AUS, NUM_AUS), 0.5, np.float32))
    channel = model.layers[0].channel
    assert isinstance(channel.down, nn.Conv2d)
    assert (channel.down.kernel_size, channel.down.stride, channel.down.padding) == ((3, 3), (2, 2), (1, 1))
    assert channel.gat.query.in_features == 22 * 22
    o_g = torch.randn(1, 64, 44, 44)
    assert channel(o_g).shape == o_g.shape                     # C_G is reshaped to O_G's size


@pytest.mark.parametrize("name", ["algrnet", "mgrrnet"])
def test_fixed_regions_draw_jaanet_maps(name: str) -> None:
    """ALGRNet "w/o Ada" and MGRR-Net's fixed regions are "the same as Shao et al. (2021)": JAA-Net's
    L1 maps with e = 0.14 (before its attention refinement, switched off here to compare the maps)."""
    section = _tiny(name, "model.region.adaptive=false", "model.region.refine=false")
    assert section["region"]["fixed_map"] == "jaa"
    torch.manual_seed(0)
    model = build_model(name, section, NUM_AUS, prior=np.full((NUM_AUS, NUM_AUS), 0.5, np.float32)).eval()
    with torch.no_grad():
        out = model.explain(torch.rand(2, 3, model.input_size, model.input_size) * 2 - 1)
    size = out["region_maps"].shape[-1]
    expected = attention_maps(out["region_centres"], map_size=size, crop=model.input_size, spatial_ratio=0.14)
    torch.testing.assert_close(out["region_maps"], expected)
    gaussian = _tiny(name, "model.region.adaptive=false", "model.region.refine=false", "model.region.fixed_map=gaussian")
    torch.manual_seed(0)
    other = build_model(name, gaussian, NUM_AUS, prior=np.full((NUM_AUS, NUM_AUS), 0.5, np.float32)).eval()
    with torch.no_grad():
        maps = other.explain(torch.rand(2, 3, model.input_size, model.input_size) * 2 - 1)["region_maps"]
    assert not torch.allclose(maps, expected)                  # the option really is another map


def test_mgrrnet_paper_config_refines_its_fixed_maps_as_jaanet() -> None:
    section = MODELS.load_config("mgrrnet", "bp4d")["model"]
    assert section["region"]["fixed_map"] == "jaa" and section["region"]["refine"] is True
    assert section["loss"]["objective"] == "au_int"
    algrnet = MODELS.load_config("algrnet", "bp4d")["model"]
    assert algrnet["loss"]["objective"] == "au" and algrnet["region"]["adaptive"] is True


# --- frames without landmarks ---------------------------------------------------------------

def _face(crop: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    points = rng.uniform(0.3 * crop, 0.7 * crop, size=(49, 2)).astype(np.float32)
    points[19:25] = (0.35 * crop, 0.4 * crop)   # left eye centre
    points[25:31] = (0.65 * crop, 0.4 * crop)   # right eye centre
    return points


def test_alignment_loss_skips_frames_without_landmarks() -> None:
    target = torch.as_tensor(np.stack([_face(80), _face(80)]))
    predicted = (target + torch.randn_like(target)).requires_grad_(True)
    only_first = alignment_loss(predicted[:1], target[:1])
    mask = torch.tensor([True, False])
    masked = alignment_loss(predicted, target, mask)
    torch.testing.assert_close(masked, only_first)
    masked.backward()
    assert torch.all(predicted.grad[1] == 0) and predicted.grad[0].abs().sum() > 0
    # NaN targets (what a frame without landmarks stores) are masked even without an explicit mask
    with_nan = target.clone()
    with_nan[1] = float("nan")
    torch.testing.assert_close(alignment_loss(predicted, with_nan), only_first)
    # a batch of frames without landmarks gives 0, not a pull towards (0, 0)
    none = alignment_loss(predicted, target, torch.tensor([False, False]))
    assert none.item() == 0.0


def test_loader_marks_frames_without_landmarks_and_the_model_loss_ignores_them(tmp_path) -> None:
    import cv2
    import pandas as pd

    crop = 200
    rows = []
    for i in range(2):
        path = f"crops/s/t/{i:05d}.jpg"
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / path), np.full((crop, crop, 3), 120, np.uint8))
        rows.append({"path": path, "subject": "s", "sequence": "t", "frame": i, "gender": "female",
                     **{f"AU{a}": 1 for a in resolve_aus("bp4d")}})
    landmarks = np.stack([_face(crop), np.full((49, 2), np.nan, np.float32)])
    meta = {"columns": [f"AU{a}" for a in resolve_aus("bp4d")], "crop_size": crop}
    data = PreparedDataset(tmp_path, meta, pd.DataFrame(rows), landmarks)
    dataset = AlignedFaceDataset(data, [0, 1], 88, 80, train=True)
    items = [dataset[0], dataset[1]]
    assert items[0]["landmark_mask"].item() is True and items[1]["landmark_mask"].item() is False
    batch = {key: torch.stack([item[key] for item in items]) for key in items[0]}
    batch["au_weights"] = torch.ones(NUM_AUS)
    torch.manual_seed(0)
    model = build_model("algrnet", _tiny("algrnet"), NUM_AUS)
    outputs = model(batch["image"])
    full = model.training_losses(outputs, batch)["align"]
    first = {**{k: v[:1] for k, v in batch.items() if k != "au_weights"}, "au_weights": batch["au_weights"]}
    torch.testing.assert_close(full, model.training_losses({k: v[:1] for k, v in outputs.items()}, first)["align"])


# --- over-long global captions ----------------------------------------------------------------

def test_a_global_caption_longer_than_the_limit_keeps_its_end_token() -> None:
    template = load_template()
    vocab = Vocabulary.from_template(template)
    aus = resolve_aus("bp4d")
    text = global_sentence([1] * len(aus), aus, "female", template)     # all 12 BP4D AUs active
    words = tokenize(text)
    assert len(words) > 60
    ids = vocab.encode(text, vocab.bos, 60)
    assert len(ids) == 61 and ids[-1] == vocab.eos and vocab.pad not in ids
    assert ids[1:-1] == [vocab.id(w) for w in words[:59]]
    short = vocab.encode("the person smiles .", vocab.bos, 60)
    assert short[:6] == [vocab.bos, *[vocab.id(w) for w in tokenize("the person smiles .")], vocab.eos]


# --- the face-alignment mean error of Tab 3.6 ------------------------------------------------

def test_alignment_error_is_mean_distance_over_inter_ocular_distance_in_percent() -> None:
    from fau.evaluation.scores import _per_frame_alignment_error, alignment_error

    target = torch.as_tensor(np.stack([_face(80), _face(80), _face(80)]))
    d_o = 0.3 * 80                                   # eye centres at 0.35 and 0.65 of the crop
    predicted = target.clone()
    predicted[0, :, 0] += 0.05 * d_o                 # every point 5 % of d_o off
    predicted[1, :, 1] -= 0.15 * d_o                 # 15 %
    predicted[2] += 100.0                            # no ground truth: must not count
    errors = _per_frame_alignment_error(predicted, target, torch.tensor([True, True, False])).numpy()
    np.testing.assert_allclose(errors[:2], [0.05, 0.15], rtol=1e-5)
    assert np.isnan(errors[2])
    result = alignment_error({"landmark_error": errors})
    assert result["frames"] == 2 and result["mean_error"] == pytest.approx(10.0, rel=1e-5)
    assert alignment_error({"landmark_error": np.full(2, np.nan)}) is None
    assert alignment_error({"prob": np.zeros((2, 3))}) is None
