"""JAA-Net similarity alignment and the training/test crops.

The thesis trains on "aligned faces" randomly cropped and flipped (§3.3.2, §4.4.1, §5.4.2) and takes
the alignment parameters from Shao et al. (2021); the recipe below is JAA-Net's public code
(``dataset/face_transform.py``; docs/fau.md, decision 'face alignment').

Alignment: rotate so the two eye centres (means of the 6 points of each eye) are level; take a
square box around the eye centres, nose tip and mouth corners whose half side is
0.5 x `box_enlarge` x the larger side of their bounding box; scale it to `size` x `size`; fill the
border with grey 128. The same 2x3 matrix maps the landmarks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fau.face.detect import as_rgb_uint8
from fau.face.points import (
    FLIPS,
    LEFT_EYE_49,
    MOUTH_CORNERS_49,
    NOSE_TIP_49,
    RIGHT_EYE_49,
    flip_landmarks,
    to49,
)

BORDER_GREY = 128


@dataclass
class AlignedFace:
    """An aligned face crop, the 2x3 matrix from source pixels to crop pixels, mapped landmarks."""

    image: np.ndarray
    matrix: np.ndarray
    landmarks: np.ndarray


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine `matrix` to (K, 2) points; returns float32 (K, 2)."""
    points = np.asarray(points, dtype=np.float64)
    return (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def alignment_matrix(landmarks: np.ndarray, size: int = 200, box_enlarge: float = 2.9) -> np.ndarray:
    """The JAA-Net 2x3 similarity transform (``align_face_49pts``) from 49/66/68 landmarks.

    Eye centres are levelled by the rotation R = [[cos, sin], [-sin, cos]] with (cos, sin) the unit
    vector from the image-left to the image-right eye centre; the box is then scaled by
    (size - 1) / 2 / half_side so that it spans pixel centres 0 .. size-1.
    """
    lm49 = to49(np.asarray(landmarks, dtype=np.float64))
    left_eye = lm49[LEFT_EYE_49].mean(axis=0)
    right_eye = lm49[RIGHT_EYE_49].mean(axis=0)
    delta = right_eye - left_eye
    cos, sin = delta / np.linalg.norm(delta)
    rotation = np.array([[cos, sin], [-sin, cos]])
    anchors = np.stack([left_eye, right_eye, lm49[NOSE_TIP_49], *lm49[list(MOUTH_CORNERS_49)]])
    rotated = anchors @ rotation.T
    low, high = rotated.min(axis=0), rotated.max(axis=0)
    centre = (low + high) / 2.0
    half_side = 0.5 * box_enlarge * float((high - low).max())
    scale = (size - 1) / 2.0 / half_side
    translation = scale * (half_side - centre)
    return np.concatenate([scale * rotation, translation[:, None]], axis=1)


def align_face(
    image: np.ndarray, landmarks: np.ndarray, size: int = 200, box_enlarge: float = 2.9
) -> AlignedFace:
    """Warp `image` with the JAA-Net similarity alignment (200 for CNN models, 256 for VL-FAU:
    docs/fau.md, decision 'face alignment').

    `landmarks` are (K, 2) with K in {49, 66, 68}; all K points are mapped into the crop.
    """
    import cv2

    matrix = alignment_matrix(landmarks, size=size, box_enlarge=box_enlarge)
    warped = cv2.warpAffine(
        as_rgb_uint8(image),
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(BORDER_GREY, BORDER_GREY, BORDER_GREY),
    )
    mapped = transform_points(landmarks, matrix)
    return AlignedFace(image=warped, matrix=matrix.astype(np.float32), landmarks=mapped)


def _crop_range(image: np.ndarray, crop: int) -> tuple[int, int]:
    """Largest valid (x, y) offsets of a `crop` window; a ValueError if the image is too small."""
    height, width = image.shape[:2]
    if crop > min(height, width):
        raise ValueError(f"crop {crop} is larger than the {width}x{height} image")
    return width - crop, height - crop


def _crop(image: np.ndarray, landmarks: np.ndarray, x0: int, y0: int, crop: int) -> tuple[np.ndarray, np.ndarray]:
    shifted = np.asarray(landmarks, dtype=np.float32) - np.array([x0, y0], dtype=np.float32)
    return image[y0 : y0 + crop, x0 : x0 + crop], shifted


def random_crop_flip(
    image: np.ndarray, landmarks: np.ndarray, crop: int = 176, *, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Training crop ("randomly cropped ... and horizontally flipped", thesis §3.3.2): a random `crop` x
    `crop` window, then a flip with p = 0.5.

    The flip mirrors x -> crop-1-x and permutes the landmarks (FLIP49 or FLIP68 by count), so each
    index keeps its anatomical meaning. Returns (crop image, (K, 2) float32 landmarks).
    """
    if np.shape(landmarks)[0] not in FLIPS:
        raise ValueError(f"can only flip 49 or 68 landmarks, got {np.shape(landmarks)[0]}")
    max_x, max_y = _crop_range(image, crop)
    x0 = int(rng.integers(0, max_x + 1))
    y0 = int(rng.integers(0, max_y + 1))
    patch, points = _crop(image, landmarks, x0, y0, crop)
    if rng.random() < 0.5:
        return np.ascontiguousarray(patch[:, ::-1]), flip_landmarks(points, crop)
    return np.ascontiguousarray(patch), points


def centre_crop(image: np.ndarray, landmarks: np.ndarray, crop: int = 176) -> tuple[np.ndarray, np.ndarray]:
    """Test crop (JAA-Net's): the central `crop` x `crop` window (offset (size-crop)//2)."""
    max_x, max_y = _crop_range(image, crop)
    patch, points = _crop(image, landmarks, max_x // 2, max_y // 2, crop)
    return np.ascontiguousarray(patch), points
