"""Raw photo -> aligned faces: detect, 68 landmarks, JAA-Net alignment.

An image without a face gives an empty list; unreadable files give a one-line `UserError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fau.face.align import AlignedFace, align_face
from fau.face.detect import FaceBox, as_rgb_uint8, detect_faces
from fau.face.landmarks import predict_landmarks
from shared.errors import UserError

if TYPE_CHECKING:
    import PIL.Image


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


#: Pillow modes of one-channel images deeper than 8 bits, read as numbers and scaled to 8 bits
HIGH_BIT_MODES: tuple[str, ...] = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def to_uint8(image: "PIL.Image.Image", path: str) -> np.ndarray:
    """An opened image as HxWx3 uint8 RGB; 16-bit (and 32-bit integer/float) grey is scaled to 8 bits,
    not clipped: 16-bit values by 255/65535, 32-bit integers when they stay within 16 bits, floats
    when they lie in [0, 1] (other ranges have no fixed white and are refused)."""
    if image.mode not in HIGH_BIT_MODES:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    values = np.asarray(image)
    if image.mode == "F":
        if not np.all(np.isfinite(values)) or values.min() < 0.0 or values.max() > 1.0:
            raise UserError(f"image {path!r}: floating-point pixels outside [0, 1] (no fixed white level)")
        grey = values * 255.0
    else:
        if values.min() < 0 or values.max() > 65535:
            raise UserError(f"image {path!r}: 32-bit pixels outside the 16-bit range (no fixed white level)")
        grey = values.astype(np.float64) / 257.0
    grey = np.rint(grey).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as HxWx3 uint8 RGB (EXIF orientation applied; high bit depth scaled, `to_uint8`).

    Missing, unreadable, truncated and oversized files (Pillow's decompression-bomb limit,
    ``PIL.Image.MAX_IMAGE_PIXELS`` x 2) raise a one-line `UserError` naming the file.
    """
    import warnings

    from PIL import Image, ImageOps, UnidentifiedImageError

    name = os.fspath(path)
    try:
        with warnings.catch_warnings():
            # above MAX_IMAGE_PIXELS Pillow warns and still decodes; twice that it refuses (below)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as handle:
                handle.load()
                return to_uint8(ImageOps.exif_transpose(handle), name)
    except FileNotFoundError:
        raise UserError(f"image {name!r} does not exist") from None
    except (IsADirectoryError, PermissionError) as exc:
        raise UserError(f"image {name!r} cannot be read ({exc.strerror})") from None
    except UnidentifiedImageError:
        raise UserError(f"image {name!r} is not in a readable image format") from None
    except Image.DecompressionBombError as exc:
        raise UserError(f"image {name!r} is too large to read safely ({' '.join(str(exc).split())})") from None
    except MemoryError:
        raise UserError(f"image {name!r} is too large for the memory of this machine") from None
    except (OSError, SyntaxError, ValueError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise UserError(f"image {name!r} is truncated or corrupt ({reason})") from None
