"""Raw photo -> aligned faces: detect, 68 landmarks, JAA-Net alignment.

An image without a face gives an empty list; unreadable files give a one-line `UserError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from fau.face.align import AlignedFace, align_face
from fau.face.detect import FaceBox, as_rgb_uint8, detect_faces
from fau.face.landmarks import predict_landmarks
from shared.errors import UserError


@dataclass
class FaceResult:
    """One face of a photo: its box, 68 landmarks in photo pixels, and the aligned crop."""

    box: FaceBox
    landmarks68: np.ndarray
    aligned: AlignedFace


@dataclass
class FacePipeline:
    """Detect (dlib HOG, Haar fallback) -> dlib 68 landmarks -> similarity alignment
    (docs/fau.md, decisions 'landmarks of new photos' and 'face alignment').

    `size` is 200 for the CNN models and 256 for VL-FAU; `max_faces` keeps the largest faces only.
    """

    size: int = 200
    box_enlarge: float = 2.9
    upsample: int = 0
    score_threshold: float = 0.0
    haar_fallback: bool = True
    max_faces: int | None = None

    def process(self, image: np.ndarray) -> list[FaceResult]:
        """All faces of an RGB (or grey) uint8 image, largest first; [] when there is none."""
        image = as_rgb_uint8(image)
        boxes = detect_faces(
            image, upsample=self.upsample, score_threshold=self.score_threshold, haar_fallback=self.haar_fallback
        )
        results = []
        for box in boxes[: self.max_faces]:
            landmarks = predict_landmarks(image, box)
            aligned = align_face(image, landmarks, size=self.size, box_enlarge=self.box_enlarge)
            results.append(FaceResult(box=box, landmarks68=landmarks, aligned=aligned))
        return results


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as HxWx3 uint8 RGB (EXIF orientation applied).

    Missing, unreadable and truncated files raise a one-line `UserError` naming the file.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as handle:
            handle.load()
            image = ImageOps.exif_transpose(handle).convert("RGB")
    except FileNotFoundError:
        raise UserError(f"image {os.fspath(path)!r} does not exist") from None
    except (IsADirectoryError, PermissionError) as exc:
        raise UserError(f"image {os.fspath(path)!r} cannot be read ({exc.strerror})") from None
    except UnidentifiedImageError:
        raise UserError(f"image {os.fspath(path)!r} is not in a readable image format") from None
    except (OSError, SyntaxError, ValueError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise UserError(f"image {os.fspath(path)!r} is truncated or corrupt ({reason})") from None
    return np.asarray(image, dtype=np.uint8)
