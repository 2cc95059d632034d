"""One raw dataset frame -> its aligned crop, for `fau prepare` (`fau.data.prepare`), in the parent or
in a `--workers` process.

This module imports only NumPy and the face pipeline (OpenCV, dlib, Pillow lazily), so a spawned worker
starts in well under a second; each worker builds one `FrameAligner` (`start_worker`) and loads the
detector and landmark model once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fau.face.align import align_face
from fau.face.pipeline import FacePipeline, load_image
from fau.face.points import to49
from shared.errors import UserError

if TYPE_CHECKING:
    from fau.data.raw import RawFrame


class FrameAligner:
    """Turns a raw frame into (crop, 49-point crop landmarks, landmark source) or a skip reason."""

    def __init__(self, align: bool, size: int, box_enlarge: float) -> None:
        self.align, self.size, self.box_enlarge = align, size, box_enlarge
        self._pipeline: FacePipeline | None = None

    def pipeline(self) -> FacePipeline:
        """The dlib face pipeline, built on first use (frames without landmark files only)."""
        if self._pipeline is None:
            self._pipeline = FacePipeline(size=self.size, box_enlarge=self.box_enlarge, max_faces=1)
        return self._pipeline

    def __call__(self, frame: RawFrame) -> tuple[np.ndarray, np.ndarray, str] | str:
        """(crop, (49, 2) crop landmarks, "file"|"detector"|"none") or a skip reason."""
        try:
            image = load_image(frame.image)
        except UserError:
            return "unreadable_image"
        if not self.align:
            return self._resize(image, frame.landmarks)
        if frame.landmarks is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                try:
                    aligned = align_face(image, frame.landmarks, self.size, self.box_enlarge)
                except ValueError:
                    return "bad_landmarks"
            if not np.all(np.isfinite(aligned.matrix)):
                return "bad_landmarks"
            return aligned.image, to49(aligned.landmarks), "file"
        results = self.pipeline().process(image)
        if not results:
            return "no_face"
        return results[0].aligned.image, to49(results[0].aligned.landmarks), "detector"

    def _resize(self, image: np.ndarray, landmarks: np.ndarray | None) -> tuple:
        """--no-align: the whole frame resized to size x size, landmarks scaled alike."""
        import cv2

        height, width = image.shape[:2]
        crop = cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_AREA)
        if landmarks is None:
            return crop, np.full((49, 2), np.nan, dtype=np.float32), "none"
        scale = np.array([self.size / width, self.size / height], dtype=np.float32)
        return crop, to49(landmarks).astype(np.float32) * scale, "file"


#: the aligner of a worker process (set once by `start_worker`)
_WORKER_ALIGNER: FrameAligner | None = None


def start_worker(align: bool, size: int, box_enlarge: float) -> None:
    """Pool initializer: one `FrameAligner` per process, OpenCV on one thread (one process per core)."""
    global _WORKER_ALIGNER
    import cv2

    cv2.setNumThreads(1)
    _WORKER_ALIGNER = FrameAligner(align, size, box_enlarge)


def align_in_worker(frame: RawFrame) -> tuple[np.ndarray, np.ndarray, str] | str:
    """The worker's `FrameAligner` applied to `frame`."""
    if _WORKER_ALIGNER is None:
        raise RuntimeError("align_in_worker runs in a pool started with start_worker")
    return _WORKER_ALIGNER(frame)
