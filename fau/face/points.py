"""Landmark layouts: iBUG 68 points, DISFA 66 points, the 49-point (SDM/FERA) layout, and flips.

Pure index bookkeeping (the JAA-Net / FERA-2015 conventions; the thesis uses "49 landmarks", §3.3.2):
the 49-point layout is the iBUG-68 layout without the jaw (0-16) and the two inner-mouth corners
(60, 64). DISFA's 66 points are
the iBUG-68 points without those two inner-mouth corners, so 66 -> 49 drops the jaw only.

All indices are 0-based. Every function indexes with NumPy integer arrays only, so it works on
NumPy arrays and on torch tensors alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: 68-point index of each 49-point landmark (brows, nose, eyes, outer lip, inner lip).
LM68_TO_49: np.ndarray = np.array([i for i in range(17, 68) if i not in (60, 64)], dtype=np.int64)

#: 66-point (DISFA) index of each 49-point landmark: points 17..65, i.e. everything but the jaw.
LM66_TO_49: np.ndarray = np.arange(17, 66, dtype=np.int64)


def _flip68() -> np.ndarray:
    """Left/right mirror pairs of the iBUG-68 layout (image-left point <-> image-right point)."""
    pairs = [(i, 16 - i) for i in range(8)]                                   # jaw, 8 = chin
    pairs += [(17 + i, 26 - i) for i in range(5)]                              # brows
    pairs += [(31, 35), (32, 34)]                                              # nostrils
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]      # eyes
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]                # outer lip
    pairs += [(60, 64), (61, 63), (65, 67)]                                    # inner lip
    perm = np.arange(68, dtype=np.int64)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


#: FLIP68[i] = index of the point that point i becomes after a horizontal flip.
FLIP68: np.ndarray = _flip68()


def _flip49() -> np.ndarray:
    """The 68-point flip restricted to the 49 kept points (equals JAA-Net's ``reflect_49.txt``)."""
    position = {int(j): i for i, j in enumerate(LM68_TO_49)}
    return np.array([position[int(FLIP68[j])] for j in LM68_TO_49], dtype=np.int64)


#: FLIP49[i] = index of the point that point i becomes after a horizontal flip.
FLIP49: np.ndarray = _flip49()

#: Flip permutation by landmark count.
FLIPS: dict[int, np.ndarray] = {49: FLIP49, 68: FLIP68}

#: 49-point indices used by the JAA-Net alignment (`fau.face.align`).
LEFT_EYE_49: np.ndarray = np.arange(19, 25, dtype=np.int64)
RIGHT_EYE_49: np.ndarray = np.arange(25, 31, dtype=np.int64)
NOSE_TIP_49 = 13
MOUTH_CORNERS_49 = (31, 37)

_TO49 = {68: LM68_TO_49, 66: LM66_TO_49, 49: np.arange(49, dtype=np.int64)}


def to49(landmarks: Any) -> Any:
    """Convert landmarks of shape (..., 68|66|49, 2) to the 49-point layout (module docstring).

    Accepts a NumPy array or a torch tensor and returns the same type: a copy for 68/66 points,
    the input itself for 49.
    """
    count = landmarks.shape[-2]
    if landmarks.shape[-1] != 2 or count not in _TO49:
        raise ValueError(
            f"landmarks must have shape (..., 68|66|49, 2), got {tuple(landmarks.shape)}"
        )
    if count == 49:
        return landmarks
    return landmarks[..., _TO49[count], :]


def flip_landmarks(landmarks: np.ndarray, width: int) -> np.ndarray:
    """Mirror (K, 2) landmarks of an image `width` pixels wide: x -> width-1-x, then permute.

    The permutation (FLIP49 or FLIP68, chosen by K) keeps point i meaning the same anatomical
    point after the flip, as JAA-Net's ``reflect_49.txt`` does.
    """
    count = landmarks.shape[-2]
    if count not in FLIPS:
        raise ValueError(f"can only flip 49 or 68 landmarks, got {count}")
    mirrored = np.array(landmarks, dtype=np.float32, copy=True)
    mirrored[..., 0] = (width - 1) - mirrored[..., 0]
    return mirrored[..., FLIPS[count], :]
