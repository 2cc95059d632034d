"""Landmark layouts: 68/66 -> 49 conversion and the left/right flip permutations."""

import numpy as np
import pytest
import torch

from fau.face.points import FLIP49, FLIP68, LM66_TO_49, LM68_TO_49, flip_landmarks, to49

# JAA-Net data/list/reflect_49.txt (1-based).
REFLECT_49_ONE_BASED = [
    10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 11, 12, 13, 14, 19, 18, 17, 16, 15, 29, 28, 27, 26, 31, 30,
    23, 22, 21, 20, 25, 24, 38, 37, 36, 35, 34, 33, 32, 43, 42, 41, 40, 39, 46, 45, 44, 49, 48, 47,
]


def numbered(count: int) -> np.ndarray:
    """(count, 2) landmarks whose x is the point's own index, y = 1000 + index."""
    index = np.arange(count, dtype=np.float32)
    return np.stack([index, 1000 + index], axis=1)


def test_68_to_49_drops_jaw_and_inner_mouth_corners():
    assert LM68_TO_49.tolist() == [i for i in range(68) if i >= 17 and i not in (60, 64)]
    converted = to49(numbered(68))
    assert converted.shape == (49, 2)
    assert converted[0, 0] == 17 and converted[13, 0] == 30  # first brow point, nose tip
    assert converted[22, 0] == 39 and converted[25, 0] == 42  # inner eye corners
    assert converted[31, 0] == 48 and converted[37, 0] == 54  # mouth corners
    assert converted[43:46, 0].tolist() == [61, 62, 63] and converted[46:, 0].tolist() == [65, 66, 67]


def test_66_to_49_matches_68_to_49_on_the_same_face():
    face68 = numbered(68)
    face66 = np.delete(face68, [60, 64], axis=0)  # DISFA's 66 = iBUG 68 minus inner-mouth corners
    assert np.array_equal(to49(face66), to49(face68))
    assert LM66_TO_49.tolist() == list(range(17, 66))


def test_to49_is_batched_and_accepts_torch():
    batch = np.broadcast_to(numbered(68), (3, 4, 68, 2))
    assert to49(batch).shape == (3, 4, 49, 2)
    tensor = torch.as_tensor(numbered(68))[None].repeat(2, 1, 1)
    result = to49(tensor)
    assert isinstance(result, torch.Tensor) and result.shape == (2, 49, 2)
    assert torch.equal(result[0], torch.as_tensor(to49(numbered(68))))
    same = numbered(49)
    assert to49(same) is same


def test_to49_rejects_other_counts():
    with pytest.raises(ValueError, match="68\\|66\\|49"):
        to49(np.zeros((5, 2)))


def test_flip49_equals_jaanet_reflect_list_and_flip68_restriction():
    assert (FLIP49 + 1).tolist() == REFLECT_49_ONE_BASED
    assert np.array_equal(LM68_TO_49[FLIP49], FLIP68[LM68_TO_49])


@pytest.mark.parametrize("perm", [FLIP49, FLIP68], ids=["49", "68"])
def test_flips_are_involutions(perm):
    assert sorted(perm.tolist()) == list(range(len(perm)))
    assert np.array_equal(perm[perm], np.arange(len(perm)))


def test_flip_pairs_left_and_right_features():
    assert FLIP49[0:5].tolist() == [9, 8, 7, 6, 5]  # image-left brow, outer -> inner
    assert FLIP49[19:25].tolist() == [28, 27, 26, 25, 30, 29]  # image-left eye -> right eye
    assert FLIP49[22] == 25  # inner eye corners
    assert FLIP49[13] == 13 and FLIP49[34] == 34 and FLIP49[40] == 40  # nose tip, lip middles
    assert FLIP49[31] == 37  # mouth corners
    assert FLIP68[0] == 16 and FLIP68[8] == 8 and FLIP68[36] == 45 and FLIP68[60] == 64


def test_flip_landmarks_mirrors_and_permutes():
    face = numbered(49) + np.array([5.0, 0.0], dtype=np.float32)
    flipped = flip_landmarks(face, width=100)
    # point i after the flip is the mirror image of the point that was its anatomical partner
    assert np.allclose(flipped[:, 0], 99 - face[FLIP49, 0])
    assert np.allclose(flipped[:, 1], face[FLIP49, 1])
    assert np.allclose(flip_landmarks(flipped, width=100), face)
    with pytest.raises(ValueError, match="49 or 68"):
        flip_landmarks(np.zeros((66, 2)), width=10)
