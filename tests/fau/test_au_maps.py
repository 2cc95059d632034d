"""JAA-Net AU centres, attention maps and the differentiable Gaussian maps (fau/aus.py)."""

import numpy as np
import pytest
import torch

from fau.aus import (
    AU_CENTRE_RULES,
    BP4D_AUS,
    DISFA_AUS,
    SYNFACS_AUS,
    attention_maps,
    au_centres,
    centre_groups,
    gaussian_attention,
    resolve_aus,
)
from fau.face.points import FLIP49, LM68_TO_49, flip_landmarks
from shared.errors import UserError

# A hand-made, mirror-symmetric 49-point face in a 176 crop (midline x = 88).
CANONICAL_49 = np.array(
    [
        [40, 50], [50, 46], [60, 45], [70, 46], [80, 48],  # image-left brow, outer -> inner
        [96, 48], [106, 46], [116, 45], [126, 46], [136, 50],  # image-right brow, inner -> outer
        [88, 60], [88, 70], [88, 80], [88, 90],  # nose bridge, 13 = tip
        [76, 96], [82, 98], [88, 100], [94, 98], [100, 96],  # lower nose, nostrils 15 and 17
        [52, 64], [58, 60], [66, 60], [76, 64], [66, 67], [58, 67],  # image-left eye, 22 inner corner
        [100, 64], [110, 60], [118, 60], [124, 64], [118, 67], [110, 67],  # image-right eye, 25 inner
        [68, 120], [74, 114], [81, 112], [88, 113], [95, 112], [102, 114],  # outer lip top, 31 corner
        [108, 120], [102, 127], [95, 130], [88, 131], [81, 130], [74, 127],  # 37 corner, lower lip
        [80, 118], [88, 118], [96, 118], [96, 122], [88, 123], [80, 122],  # inner lips
    ],
    dtype=np.float32,
)

# ruler = |76 - 100| = 24; expected (A, B) centres worked out by hand from the JAA-Net rule.
EXPECTED = {
    1: [[80, 48 - 12], [96, 48 - 12]],
    2: [[50, 46 - 8], [126, 46 - 8]],
    4: [[60, 45 + 8], [116, 45 + 8]],
    6: [[58, 67 + 24], [118, 67 + 24]],
    7: [[66, 60], [110, 60]],
    9: [[82, 98 - 12], [94, 98 - 12]],
    10: [[80, 118], [96, 118]],
    12: [[68, 120], [108, 120]],
    14: [[68, 120], [108, 120]],
    15: [[68, 120], [108, 120]],
    17: [[95, 130 + 12], [81, 130 + 12]],
    23: [[88, 113], [88, 131]],
    24: [[88, 113], [88, 131]],
    25: [[88, 113], [88, 131]],
    26: [[95, 130 + 12], [81, 130 + 12]],
}


def test_canonical_face_is_mirror_symmetric():
    assert np.allclose(flip_landmarks(CANONICAL_49, width=177), CANONICAL_49)


@pytest.mark.parametrize("dataset, aus", [("bp4d", BP4D_AUS), ("disfa", DISFA_AUS), ("synfacs", SYNFACS_AUS)])
def test_centres_on_canonical_face_match_hand_computed(dataset, aus):
    centres = au_centres(CANONICAL_49, dataset)
    assert centres.shape == (len(aus), 2, 2) and centres.dtype == np.float32
    assert np.allclose(centres, np.array([EXPECTED[au] for au in aus], dtype=np.float32))


def test_centres_accept_68_points_batches_and_torch():
    face68 = np.zeros((68, 2), dtype=np.float32)
    face68[LM68_TO_49] = CANONICAL_49
    batch = np.stack([face68, face68 + np.float32(3.0)])
    assert np.allclose(au_centres(batch, "bp4d")[1], au_centres(CANONICAL_49, "bp4d") + 3.0)
    tensor = torch.as_tensor(np.stack([CANONICAL_49] * 4)).requires_grad_(True)
    centres = au_centres(tensor, "disfa")
    assert isinstance(centres, torch.Tensor) and centres.shape == (4, 8, 2, 2)
    assert torch.allclose(centres[2], torch.as_tensor(au_centres(CANONICAL_49, "disfa")))
    centres.sum().backward()
    assert tensor.grad is not None and tensor.grad.abs().sum() > 0


def test_flipped_face_gives_flipped_centres():
    rng = np.random.default_rng(0)
    face = CANONICAL_49 + rng.normal(0.0, 2.0, CANONICAL_49.shape).astype(np.float32)
    width = 176
    centres = au_centres(face, "synfacs")
    flipped = au_centres(flip_landmarks(face, width), "synfacs")
    for index, au in enumerate(SYNFACS_AUS):
        rule = AU_CENTRE_RULES[au]
        mirrored = centres[index].copy()
        mirrored[:, 0] = width - 1 - mirrored[:, 0]
        if FLIP49[rule.a] == rule.b:  # a mirror pair: A and B swap
            mirrored = mirrored[::-1]
        else:  # both points on the midline (AU23/24/25): each maps onto itself
            assert FLIP49[rule.a] == rule.a and FLIP49[rule.b] == rule.b
        assert np.allclose(flipped[index], mirrored, atol=1e-4), f"AU{au}"


def test_shared_regions_and_dataset_resolution():
    assert centre_groups("bp4d") == [(0,), (1,), (2,), (3,), (4,), (5,), (6, 7, 8), (9,), (10, 11)]
    assert centre_groups("disfa") == [(i,) for i in range(8)]
    assert resolve_aus([1, 12]) == (1, 12)
    with pytest.raises(UserError, match="'fer'"):
        resolve_aus("fer")
    with pytest.raises(UserError, match="\\[20\\]"):
        au_centres(CANONICAL_49, [1, 20])


def test_attention_map_values_at_centre_window_edge_and_outside():
    # 88 * 52 / 176 = 26 exactly; the second centre is far away in the corner.
    centres = torch.tensor([[[[88.0, 88.0], [0.0, 0.0]]]])
    maps = attention_maps(centres)
    assert maps.shape == (1, 1, 52, 52) and maps.dtype == torch.float32
    step = 0.56 / (52 * 0.14)
    assert maps[0, 0, 26, 26] == 1.0
    assert torch.isclose(maps[0, 0, 26, 30], torch.tensor(1 - 4 * step))  # window edge (half = 4)
    assert torch.isclose(maps[0, 0, 22, 26], torch.tensor(1 - 4 * step))
    assert torch.isclose(maps[0, 0, 30, 30], torch.tensor(1 - 8 * step))  # window corner
    assert maps[0, 0, 26, 31] == 0.0 and maps[0, 0, 21, 26] == 0.0  # outside the 9x9 window
    assert maps[0, 0, 0, 0] == 1.0 and torch.isclose(maps[0, 0, 4, 4], torch.tensor(1 - 8 * step))
    assert int((maps[0, 0] > 0).sum()) == 81 + 25  # full window + the quarter window at the corner


def test_attention_maps_merge_centres_with_max_and_accept_numpy():
    # centres 2 cells apart: every cell takes the larger of the two fall-offs
    centres = np.array([[[88.0, 88.0], [88.0 + 2 * 176 / 52, 88.0]]], dtype=np.float32)
    maps = attention_maps(centres)[0]
    step = 0.56 / (52 * 0.14)
    assert maps[26, 27] == pytest.approx(1 - step) and maps[26, 28] == 1.0
    assert maps[26, 24] == pytest.approx(1 - 2 * step) and maps[26, 32] == pytest.approx(1 - 4 * step)
    batch = torch.as_tensor(au_centres(np.stack([CANONICAL_49] * 3), "bp4d"))
    assert attention_maps(batch).shape == (3, 12, 52, 52)


def test_gaussian_attention_shape_peak_and_gradients():
    centres = torch.tensor([[[[88.0, 88.0], [40.0, 120.0]]]], requires_grad=True)
    sigma = torch.tensor([3.0], requires_grad=True)
    maps = gaussian_attention(centres, sigma, size=44)
    assert maps.shape == (1, 1, 44, 44)
    assert maps[0, 0, 22, 22].item() == pytest.approx(1.0)  # 88 * 44 / 176 = 22
    assert maps[0, 0, 22, 25].item() == pytest.approx(float(np.exp(-9 / 18)))
    weights = torch.linspace(0, 1, 44 * 44).reshape(44, 44)  # asymmetric, so gradients do not cancel
    (maps * weights).sum().backward()
    assert centres.grad.abs()[0, 0, 0].sum() > 0 and centres.grad.abs()[0, 0, 1].sum() > 0
    assert sigma.grad is not None and sigma.grad.abs().item() > 0


def test_gaussian_attention_broadcasts_per_au_sigma():
    centres = torch.as_tensor(au_centres(np.stack([CANONICAL_49] * 2), "disfa"))
    maps = gaussian_attention(centres, torch.full((8,), 0.07 * 44), size=44)
    assert maps.shape == (2, 8, 44, 44) and torch.all(maps <= 1.0)
