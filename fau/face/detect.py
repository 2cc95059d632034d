"""Face detection: dlib's HOG detector, OpenCV's Haar cascade as the fallback.

Both detectors are loaded once per process and cached (`functools.lru_cache`).
dlib is run with upsample 0 and a score threshold: with upsample 1 it also fires on the mission
patch of skimage's astronaut photo (score 0.12, measured).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shared.errors import UserError

HAAR_FILE = "haarcascade_frontalface_default.xml"

# Haar boxes sit higher and are a little larger than dlib's HOG boxes, the framing dlib's 68-point
# predictor was trained on. Median offsets measured on skimage's astronaut plus the 77 upscaled LFW
# faces of `skimage.data.lfw_subset()` where both detectors fire once: centre 0.07 x width lower,
# side 0.95 x. The Haar box is mapped into the dlib framing with these factors.
HAAR_TO_DLIB_DY = 0.07
HAAR_TO_DLIB_SCALE = 0.95


@dataclass(frozen=True)
class FaceBox:
    """One detected face: corners in pixels (dlib convention, x1/y1 inclusive), score, detector name."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float
    source: str

    @property
    def area(self) -> float:
        """Box area in square pixels (used to sort faces largest first)."""
        return max(self.x1 - self.x0, 0.0) * max(self.y1 - self.y0, 0.0)


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Return a C-contiguous HxWx3 uint8 image from a grey (HxW), RGB or RGBA uint8 image
    (uint16 images are scaled by 255/65535)."""
    image = np.asarray(image)
    if image.dtype == np.uint16:
        image = np.rint(image / 257.0).astype(np.uint8)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 or uint16 image, got dtype {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] in (3, 4):
        image = image[:, :, :3]
    else:
        raise ValueError(f"expected an HxW or HxWx3 image, got shape {image.shape}")
    return np.ascontiguousarray(image)


@functools.lru_cache(maxsize=1)
def _dlib_detector() -> Any:
    import dlib

    return dlib.get_frontal_face_detector()


@functools.lru_cache(maxsize=1)
def _haar_cascade() -> Any:
    import cv2

    path = Path(cv2.data.haarcascades) / HAAR_FILE
    if not path.is_file():
        raise UserError(f"OpenCV Haar cascade {path} is missing (opencv>=5 ships none; install opencv<5)")
    return cv2.CascadeClassifier(str(path))


def _largest_first(boxes: list[FaceBox]) -> list[FaceBox]:
    return sorted(boxes, key=lambda box: (-box.area, -box.score))


def detect_dlib(image: np.ndarray, upsample: int = 0, score_threshold: float = 0.0) -> list[FaceBox]:
    """All faces found by dlib's frontal HOG detector with score > `score_threshold`, largest first."""
    rects, scores, _ = _dlib_detector().run(as_rgb_uint8(image), upsample, score_threshold)
    boxes = [
        FaceBox(float(r.left()), float(r.top()), float(r.right()), float(r.bottom()), float(s), "dlib")
        for r, s in zip(rects, scores)
    ]
    return _largest_first(boxes)


def detect_haar(image: np.ndarray, scale_factor: float = 1.1, min_neighbors: int = 5) -> list[FaceBox]:
    """All faces found by OpenCV's frontal Haar cascade, re-framed like dlib boxes, largest first.

    The score is the cascade's level weight (`detectMultiScale3`, ``outputRejectLevels=True``).
    """
    import cv2

    grey = cv2.cvtColor(as_rgb_uint8(image), cv2.COLOR_RGB2GRAY)
    rects, _, weights = _haar_cascade().detectMultiScale3(
        grey, scaleFactor=scale_factor, minNeighbors=min_neighbors, outputRejectLevels=True
    )
    boxes = []
    for (x, y, w, h), weight in zip(np.asarray(rects).reshape(-1, 4), np.ravel(weights)):
        x, y, w, h = float(x), float(y), float(w), float(h)
        cx, cy = x + w / 2.0, y + h / 2.0 + HAAR_TO_DLIB_DY * w
        half_w, half_h = HAAR_TO_DLIB_SCALE * w / 2.0, HAAR_TO_DLIB_SCALE * h / 2.0
        boxes.append(FaceBox(cx - half_w, cy - half_h, cx + half_w, cy + half_h, float(weight), "haar"))
    return _largest_first(boxes)


def detect_faces(
    image: np.ndarray, upsample: int = 0, score_threshold: float = 0.0, haar_fallback: bool = True
) -> list[FaceBox]:
    """dlib HOG faces, largest first; if dlib finds none and `haar_fallback`, the Haar faces instead."""
    boxes = detect_dlib(image, upsample=upsample, score_threshold=score_threshold)
    if not boxes and haar_fallback:
        boxes = detect_haar(image)
    return boxes
