"""AU probabilities and explanations from raw photos or aligned crops: the Python API of `fau predict`.

Per image: detect every face (dlib HOG, Haar fallback), 68 landmarks, JAA-Net similarity alignment
(docs/fau.md, decisions 'face alignment' and 'landmarks of new photos') at the size the training
crops were stored at, then exactly the evaluation input of the checkpoint (`fau.data.loader`: resize
to ``data.image_size``, centre crop ``data.crop``, mean = std = 0.5), one batched forward for all
faces, probabilities σ(``au_logits``), active AUs at per-AU thresholds (``--threshold``, else the
checkpoint's validated thresholds, else 0.5: decision 'decision threshold'), and the text explanations (decision 'explanation mode'): the model's
generated text (``FAUModel.describe``; VL-FAU) under ``description`` and the template text of the
PREDICTED state (`fau.language.targets`) under ``template_description``, each present only when the
explanation mode asks for it and it exists. With ``explain=True`` (``fau predict --overlay``) the
model's attention maps come from ``model.explain`` through `shared.explain.explain`, which refuses a
model without one by name.

One image gives (the README's JSON schema)::

    {"image": "photo.jpg",
     "faces": [{"box": [x0, y0, x1, y1], "score": 1.53, "detector": "dlib",
                "landmarks": [[x, y], ...68], "aus": {"AU1": 0.12, ...}, "active": ["AU6", ...],
                "description": {"global": str, "local": {"AU1": str, ...}},
                "template_description": {"template": "facs_v1", "global": str, "local": {...}}}]}

A failed file gives ``{"image": ..., "faces": [], "error": "one line"}`` (`Predictor.run` with
``errors="record"``). An already aligned crop (``aligned=True``) gives one face whose box is the
whole crop and whose ``landmarks`` is null (nothing was detected).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

from fau.language.explain import EXPLANATION_MODES
from shared.errors import UserError

DECODINGS: tuple[str, ...] = ("greedy", "beam")
DEFAULT_THRESHOLD = 0.5
#: alignment used when the checkpoint does not record its data's (`fau prepare` defaults, decision 'face alignment')
ALIGN_SIZE = 200
BOX_ENLARGE = 2.9
#: explanation entries holding per-AU attention maps (B, A, h, w), in the order they are looked for
MAP_KEYS: tuple[str, ...] = ("region_maps", "dair_maps")
#: the stages `StageTimer` accumulates, in pipeline order
STAGES: tuple[str, ...] = ("read", "detect", "landmarks", "align", "model", "text")
#: dlib HOG score a face must exceed (ours, docs/fau.md decision 'face detection score'): the JPEG-saved astronaut's mission patch scores 0.07
#: (the face 1.63); 92 of 93 dlib detections on 200-px upscaled `skimage.data.lfw_subset()` faces
#: score above 0.1. `fau.face.detect` keeps dlib's own 0.
MIN_SCORE = 0.1
#: a forward over at most this many faces runs on one torch intra-op thread unless ``threads`` says otherwise
#: (ours, measured with tools/bench_fau_predict.py on a 2-core machine shared with other jobs: the tiny
#: ALGRNet's batch-1 forward takes 26 ms CPU on one thread and 0.3-2.5 s with two, whose OpenMP workers
#: wait on each other when a core is taken; dlib's detection and landmarks are single-threaded anyway)
SMALL_BATCH = 4
#: what a template global sentence calls the subject: photos carry no gender label (decision 'gender')
UNKNOWN_GENDER = "unknown"


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with `count` torch intra-op threads, then restore the previous setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class StageTimer:
    """Wall and process-CPU seconds spent in each pipeline stage (`STAGES`), accumulated over calls
    (CPU time sums all threads; on a machine shared with other jobs it is the steadier measure)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {stage: 0.0 for stage in STAGES}
        self.cpu_seconds: dict[str, float] = {stage: 0.0 for stage in STAGES}

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - wall
            self.cpu_seconds[stage] += time.process_time() - cpu


@dataclass
class PreparedFace:
    """One face ready for the model: where it is in the photo and the model's uint8 input crop."""

    box: tuple[float, float, float, float]
    score: float | None
    detector: str | None
    landmarks: np.ndarray | None          # (68, 2) photo pixels; None for an aligned input
    crop: np.ndarray                      # (crop, crop, 3) uint8, the model input before normalising
    crop_landmarks: np.ndarray | None     # (68, 2) in crop pixels


@dataclass
class FacePrediction:
    """Model output for one face (``maps``/``centres``, from ``model.explain``, are kept for the overlay,
    not the JSON)."""

    face: PreparedFace
    aus: dict[str, float]
    active: list[str]
    description: dict[str, Any] | None = None
    template_description: dict[str, Any] | None = None
    maps: np.ndarray | None = None        # (A, h, w) per-AU attention maps (region or DAIR maps)
    centres: np.ndarray | None = None     # (A, 2, 2) the model's AU centres in crop pixels
    grades: dict[str, float] | None = None  # paralysis checkpoints: softmax over the grades (eq. 3.3's q̂)
    grade: str | None = None                # … and the most probable grade

    def record(self) -> dict[str, Any]:
        """The JSON entry of this face (module docstring)."""
        face = self.face
        out: dict[str, Any] = {
            "box": [round(float(v), 2) for v in face.box],
            "score": None if face.score is None else round(float(face.score), 4),
            "detector": face.detector,
            "landmarks": None if face.landmarks is None else np.round(face.landmarks, 2).tolist(),
        }
        if self.grades is not None:   # a paralysis checkpoint: grades instead of AUs
            out["grades"] = {name: round(p, 5) for name, p in self.grades.items()}
            out["grade"] = self.grade
        else:
            out["aus"] = {name: round(p, 5) for name, p in self.aus.items()}
            out["active"] = list(self.active)
        if self.description is not None:
            out["description"] = self.description
        if self.template_description is not None:
            out["template_description"] = self.template_description
        return out


@dataclass
class ImagePrediction:
    """All faces of one input image, or the one-line reason it could not be processed."""

    image: str | None
    faces: list[FacePrediction] = field(default_factory=list)
    error: str | None = None

    def record(self) -> dict[str, Any]:
        """The JSON result of this image (module docstring)."""
        out: dict[str, Any] = {"image": self.image, "faces": [f.record() for f in self.faces]}
        if self.error is not None:
            out["error"] = self.error
        return out


def load_thresholds(source: str | os.PathLike | Mapping[str, float] | None,
                    labels: Sequence[str]) -> np.ndarray:
    """Per-AU decision thresholds in `labels` order: a mapping or a YAML/JSON file ``{AU12: 0.4, ...}``.

    Unlisted AUs keep 0.5; an unknown AU name or a value outside (0, 1) is a `UserError`.
    """
    import yaml

    values = np.full(len(labels), DEFAULT_THRESHOLD, dtype=np.float64)
    if source is None:
        return values
    where = "thresholds"
    if not isinstance(source, Mapping):
        where = f"--threshold {os.fspath(source)}"
        try:
            source = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{where}: no such file") from None
        except IsADirectoryError:
            raise UserError(f"{where}: is a folder, expected a YAML/JSON file") from None
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise UserError(f"{where}: not valid YAML/JSON ({str(err).splitlines()[0]})") from None
        if not isinstance(source, Mapping):
            raise UserError(f"{where}: expected a mapping like {{AU12: 0.4}}")
    for name, value in source.items():
        if str(name) not in labels:
            raise UserError(f"{where}: {name!r} is not one of the checkpoint's AUs ({', '.join(labels)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) < 1.0:
            raise UserError(f"{where}: threshold of {name} must be a number in (0, 1), got {value!r}")
        values[list(labels).index(str(name))] = float(value)
    return values


def model_input(aligned: np.ndarray, landmarks: np.ndarray | None, image_size: int,
                crop: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The evaluation crop of an aligned face, as `fau.data.loader.AlignedFaceDataset` builds it.

    A square aligned image (any size) is resized to `image_size` with area interpolation when its
    size differs, then centre-cropped to `crop` (the test crop); `landmarks` (K, 2) in aligned
    pixels follow. Returns (uint8 crop, landmarks in crop pixels or None).
    """
    import cv2

    from fau.face.align import centre_crop

    height, width = aligned.shape[:2]
    if height != width:
        raise UserError(f"aligned input must be a square crop, got {width}x{height}")
    points = np.zeros((0, 2), np.float32) if landmarks is None else np.asarray(landmarks, np.float32)
    if height != image_size:
        aligned = cv2.resize(aligned, (image_size, image_size), interpolation=cv2.INTER_AREA)
        points = points * (image_size / height)
    patch, points = centre_crop(aligned, points, crop)
    return patch, None if landmarks is None else points


def _au_numbers(meta: Mapping[str, Any]) -> list[int]:
    aus = meta.get("aus") or [int(str(name).removeprefix("AU")) for name in meta["labels"]]
    return [int(au) for au in aus]


class Predictor:
    """A loaded FAU checkpoint that predicts AUs and explanations for photos (module docstring).

    `thresholds`: per-AU thresholds (mapping or file, see `load_thresholds`); `explanation`:
    generated | template | both; `explain`: also keep the model's attention maps (``model.explain``)
    for overlays; `template`: the description template file (default
    facs_v1); `decoding`: greedy | beam for models with a language head; `batch_size`: faces per
    forward; `min_score` / `haar_fallback` / `max_faces` / `upsample`: face detection
    (`fau.face.detect`; the Haar fallback runs when dlib finds no face above `min_score`); `threads`:
    torch intra-op threads of each forward (None: one for up to `SMALL_BATCH` faces, torch's setting
    above).
    """

    def __init__(self, model: torch.nn.Module, meta: Mapping[str, Any], *,
                 thresholds: str | os.PathLike | Mapping[str, float] | None = None,
                 explanation: str = "both", explain: bool = False, template: str | os.PathLike | None = None,
                 decoding: str = "greedy", batch_size: int = 32, min_score: float = MIN_SCORE,
                 haar_fallback: bool = True, max_faces: int | None = None, upsample: int = 0,
                 threads: int | None = None) -> None:
        from fau.language.targets import check_aus, load_template
        from shared.explain import can_explain
        from shared.explain import explain as explain_maps

        self.task = str(meta.get("task", "au"))
        if self.task not in ("au", "paralysis"):
            raise UserError(f"predict needs an AU or paralysis checkpoint, this one is for the {self.task!r} task")
        if self.task == "paralysis" and explain:
            raise UserError("overlays draw per-AU attention; a paralysis checkpoint predicts grades (drop --overlay)")
        if explanation not in EXPLANATION_MODES:
            raise UserError(f"explanation must be one of {', '.join(EXPLANATION_MODES)}, got {explanation!r}")
        if decoding not in DECODINGS:
            raise UserError(f"decoding must be one of {', '.join(DECODINGS)}, got {decoding!r}")
        if batch_size < 1:
            raise UserError(f"batch size must be at least 1, got {batch_size}")
        if threads is not None and threads < 1:
            raise UserError(f"threads must be at least 1, got {threads}")
        self.threads = threads
        if not np.isfinite(min_score):
            raise UserError(f"min score (--min-score) must be a finite number, got {min_score}")
        self.model, self.meta = model, dict(meta)
        self.device = next(model.parameters()).device
        self.explanation, self.decoding, self.batch_size = explanation, decoding, batch_size
        if self.task == "paralysis":
            # thesis §3.3.4: one grade per face (softmax over the grades); no AUs, thresholds or texts
            self.labels = [str(g) for g in (meta.get("grades") or [])]
            if not self.labels:
                raise UserError("the paralysis checkpoint's sidecar lists no grades (retrain with this version)")
            self.aus, self.thresholds, self.explanation = [], np.zeros(0), "none"
        else:
            self.labels = list(meta["labels"])
            self.aus = _au_numbers(meta)
            # the checkpoint's validated thresholds unless the caller gives its own (docs/fau.md, 'decision threshold')
            from fau.evaluation.thresholds import checkpoint_thresholds

            chosen = checkpoint_thresholds(self.meta, self.labels) if thresholds is None else None
            self.thresholds = chosen if chosen is not None else load_thresholds(thresholds, self.labels)
        if explain and not can_explain(model):
            explain_maps(model, name=meta["model"])   # refuses the model by name (one line)
        self.explain = explain
        self.template = load_template(template)
        if self.task == "au":
            check_aus(self.template, self.aus)
        trained_with = meta.get("template_version")
        if trained_with is not None and trained_with != self.template.version:
            raise UserError(f"the checkpoint was trained with template {trained_with}, the template "
                            f"{self.template.path} is {self.template.version}; pass that template file")
        data = meta["config"]["data"]
        self.image_size, self.crop = int(data["image_size"]), int(data["crop"])
        self.align_size = int(meta.get("crop_size", ALIGN_SIZE))
        self.box_enlarge = float(meta.get("box_enlarge", BOX_ENLARGE))
        self.min_score, self.haar_fallback = min_score, haar_fallback
        self.max_faces, self.upsample = max_faces, upsample

    # --- inputs -> faces ---------------------------------------------------------------------

    def _read(self, item: Any) -> tuple[str | None, np.ndarray]:
        from fau.face.detect import as_rgb_uint8
        from fau.face.pipeline import load_image

        if isinstance(item, (str, os.PathLike)):
            return os.fspath(item), load_image(item)
        try:
            return None, as_rgb_uint8(np.asarray(item))
        except ValueError as err:
            raise UserError(f"image array: {err}") from None

    def prepare_faces(self, image: np.ndarray, aligned: bool = False,
                      timer: StageTimer | None = None) -> list[PreparedFace]:
        """Detect, landmark and align every face of an RGB uint8 `image`, largest first ([] if none);
        with `aligned` the image is taken as one already aligned face crop."""
        from fau.face.align import align_face
        from fau.face.detect import detect_faces
        from fau.face.landmarks import predict_landmarks

        timer = timer or StageTimer()
        if aligned:
            with timer("align"):
                crop, _ = model_input(image, None, self.image_size, self.crop)
            height, width = image.shape[:2]
            return [PreparedFace((0.0, 0.0, width - 1.0, height - 1.0), None, None, None, crop, None)]
        with timer("detect"):
            boxes = detect_faces(image, upsample=self.upsample, score_threshold=self.min_score,
                                 haar_fallback=self.haar_fallback)
        faces = []
        for box in boxes[: self.max_faces]:
            with timer("landmarks"):
                landmarks = predict_landmarks(image, box)
            with timer("align"):
                warped = align_face(image, landmarks, size=self.align_size, box_enlarge=self.box_enlarge)
                crop, crop_points = model_input(warped.image, warped.landmarks, self.image_size, self.crop)
            faces.append(PreparedFace((box.x0, box.y0, box.x1, box.y1), box.score, box.source,
                                      landmarks, crop, crop_points))
        return faces

    # --- faces -> predictions ----------------------------------------------------------------

    def _template(self, states: Sequence[int]) -> dict[str, Any]:
        from fau.language.explain import template_description

        return {"template": self.template.version,
                **template_description(states, self.aus, self.template, UNKNOWN_GENDER)}

    def _evaluating(self) -> contextlib.AbstractContextManager:
        """Gradient-free evaluation: `torch.inference_mode` alone when every module is already in eval
        mode (a loaded checkpoint), else `shared.device.inference_mode`, which switches to eval and back
        (walking the modules twice, about 0.6 ms CPU per call for the tiny ALGRNet)."""
        from shared.device import inference_mode

        if any(module.training for module in self.model.modules()):
            return inference_mode(self.model)
        return torch.inference_mode()

    def _threads(self, faces: int) -> contextlib.AbstractContextManager:
        """The torch intra-op threads of one forward over `faces` faces (`threads` option, `SMALL_BATCH`)."""
        wanted = self.threads if self.threads is not None else (1 if faces <= SMALL_BATCH else None)
        if wanted is None or wanted == torch.get_num_threads():
            return contextlib.nullcontext()
        return torch_threads(wanted)

    def infer(self, faces: Sequence[PreparedFace], timer: StageTimer | None = None) -> list[FacePrediction]:
        """Batched forward (``batch_size`` faces at a time), probabilities, states and explanations."""
        from fau.data.loader import normalise
        from shared.explain import explain

        timer = timer or StageTimer()
        predictions: list[FacePrediction] = []
        for start in range(0, len(faces), self.batch_size):
            chunk = faces[start: start + self.batch_size]
            with self._evaluating(), self._threads(len(chunk)):
                with timer("model"):
                    images = torch.stack([normalise(face.crop) for face in chunk]).to(self.device)
                    outputs = self.model(images)
                    if self.task == "paralysis":
                        probs = torch.softmax(outputs["grade_logits"].float(), dim=1).cpu().numpy()
                    else:
                        probs = torch.sigmoid(outputs["au_logits"].float()).cpu().numpy()
                    explained = explain(self.model, images, name=self.meta["model"]) if self.explain else {}
                    maps = next((explained[key] for key in MAP_KEYS if key in explained), None)
                    centres = explained.get("region_centres")
                    maps = None if maps is None else maps.float().cpu().numpy()
                    centres = None if centres is None else centres.float().cpu().numpy()
                with timer("text"):
                    generated = None
                    if self.explanation in ("generated", "both"):
                        generated = self.model.describe(outputs, self.labels, self.decoding)
            if self.task == "paralysis":
                for i, face in enumerate(chunk):
                    grades = {name: float(p) for name, p in zip(self.labels, probs[i])}
                    predictions.append(FacePrediction(face=face, aus={}, active=[], grades=grades,
                                                      grade=self.labels[int(np.argmax(probs[i]))]))
                continue
            with timer("text"):
                for i, face in enumerate(chunk):
                    states = (probs[i] >= self.thresholds).astype(int).tolist()
                    predictions.append(FacePrediction(
                        face=face,
                        aus={name: float(p) for name, p in zip(self.labels, probs[i])},
                        active=[name for name, s in zip(self.labels, states) if s],
                        description=None if generated is None else generated[i],
                        template_description=self._template(states) if self.explanation != "generated" else None,
                        maps=None if maps is None else maps[i],
                        centres=None if centres is None else centres[i]))
        return predictions

    # --- the API -------------------------------------------------------------------------------

    def run(self, items: Sequence[Any], aligned: bool = False, errors: str = "raise",
            timer: StageTimer | None = None) -> list[ImagePrediction]:
        """Predict every item (path or RGB/grey uint8 array), one batched model pass for all faces.

        ``errors="record"`` turns a bad input (missing, unreadable, truncated, wrong shape) into an
        `ImagePrediction` with ``error`` set and goes on; ``"raise"`` raises its `UserError`.
        """
        if errors not in ("raise", "record"):
            raise ValueError(f"errors must be 'raise' or 'record', got {errors!r}")
        timer = timer or StageTimer()
        results, faces, owners = [], [], []
        for item in items:
            name = os.fspath(item) if isinstance(item, (str, os.PathLike)) else None
            try:
                with timer("read"):
                    name, image = self._read(item)
                found = self.prepare_faces(image, aligned=aligned, timer=timer)
            except UserError as err:
                message = str(err)
                if name is not None and name not in message:
                    message = f"image {name!r}: {message}"   # a face-stage error names the file too
                if errors == "raise":
                    raise UserError(message) from None
                results.append(ImagePrediction(name, error=message))
                continue
            results.append(ImagePrediction(name))
            faces.extend(found)
            owners.extend([len(results) - 1] * len(found))
        for owner, prediction in zip(owners, self.infer(faces, timer)):
            results[owner].faces.append(prediction)
        return results

    def predict(self, image_or_path: Any, aligned: bool = False) -> dict[str, Any]:
        """The result dict of one photo (or aligned crop with ``aligned=True``): module docstring."""
        return self.run([image_or_path], aligned=aligned)[0].record()

    def predict_many(self, images: Sequence[Any], aligned: bool = False) -> list[dict[str, Any]]:
        """Result dicts of several images; the faces of all of them go through the model in batches."""
        return [result.record() for result in self.run(images, aligned=aligned)]


def load(checkpoint: str | os.PathLike, device: str = "auto", **options: Any) -> Predictor:
    """``fau.load(CKPT)``: rebuild the checkpoint's model on `device` and wrap it in a `Predictor`
    (keyword `options` as in `Predictor`)."""
    from fau.evaluation.checkpoint import load_checked

    model, meta = load_checked(checkpoint, device)
    return Predictor(model, meta, **options)
