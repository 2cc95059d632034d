"""68-point landmarks with dlib's shape predictor from `face_recognition_models`.

The model file is found through the package's import spec without importing the package: its
``__init__`` imports ``pkg_resources``, which recent setuptools no longer ships.
The predictor (100 MB, about 0.5 s to load) is loaded once per process and cached.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from fau.face.detect import FaceBox, as_rgb_uint8
from shared.errors import UserError

PREDICTOR_FILE = "models/shape_predictor_68_face_landmarks.dat"


def predictor_path() -> Path:
    """Path of dlib's 68-point model inside the installed `face_recognition_models` package."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise UserError("package face_recognition_models is not installed (needed for 68-point landmarks)")
    path = Path(spec.origin).parent / PREDICTOR_FILE
    if not path.is_file():
        raise UserError(f"dlib landmark model {path} is missing; reinstall face_recognition_models")
    return path


@functools.lru_cache(maxsize=1)
def _predictor() -> Any:
    import dlib

    return dlib.shape_predictor(str(predictor_path()))


def predict_landmarks(image: np.ndarray, box: FaceBox) -> np.ndarray:
    """The 68 iBUG landmarks (x, y) in image pixels of the face in `box`, as (68, 2) float32."""
    import dlib

    rect = dlib.rectangle(int(round(box.x0)), int(round(box.y0)), int(round(box.x1)), int(round(box.y1)))
    shape = _predictor()(as_rgb_uint8(image), rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
