"""The demo's one door into the FAU library: load a checkpoint, predict uploaded photos, re-label, export.

Everything the page shows comes from `fau.predict` (the same `Predictor`, records and threshold rule
as ``fau predict``) and `fau.predict_overlay` (the attention tiles); this module only adds what a
web page needs: uploads on disk under their own names, the records as ``fau predict --json`` writes
them, per-AU overlay tiles as PNG bytes, and re-labelling at other thresholds without running the
model again.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from fau.predict import MIN_SCORE, FacePrediction, ImagePrediction, Predictor, load_thresholds
from fau.predict_overlay import map_mosaic
from shared.errors import UserError
from shared.io import write_json


def load_predictor(checkpoint: str, device: str, thresholds: str | None, template: str | None,
                   decoding: str, min_score: float | None) -> Predictor:
    """The `fau predict` predictor of a checkpoint (``--explanation both``), keeping the attention maps
    when the model explains itself (``model.explain``)."""
    from fau.models import load_model
    from shared.explain import can_explain

    model, meta = load_model(checkpoint, device)
    if meta.get("task", "au") != "au":
        from shared.errors import UserError

        raise UserError(f"--checkpoint {checkpoint}: a {meta.get('task')} checkpoint; the page shows AUs "
                        "(fau predict reports its grades)")
    return Predictor(model, meta, thresholds=thresholds, explanation="both", explain=can_explain(model),
                     template=template, decoding=decoding, min_score=MIN_SCORE if min_score is None else min_score)


def safe_name(name: str, fallback: str) -> str:
    """The uploaded file's base name (a browser may send a folder path), without path tricks."""
    base = re.split(r"[\\/]", name or "")[-1].strip()
    base = re.sub(r"[\x00-\x1f]", "", base)
    return base if base not in ("", ".", "..") else fallback


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file header without decoding the pixels; None for a non-image."""
    from PIL import Image

    try:
        with Image.open(path) as handle:
            return handle.size
    except Image.DecompressionBombError:
        return (1 << 16, 1 << 16)
    except Exception:  # noqa: BLE001  a non-image is reported by `fau predict`'s own reader
        return None


def check_pixels(path: Path, shown: str, max_pixels: int) -> None:
    """`UserError` naming the upload when its header declares more than `max_pixels` pixels."""
    size = image_size(path)
    if size is not None and size[0] * size[1] > max_pixels:
        raise UserError(f"{shown}: {size[0]}x{size[1]} pixels is above the limit of {max_pixels / 1e6:g} megapixels")


def predict_uploads(predictor: Predictor, uploads: Sequence[tuple[str, bytes]], max_pixels: int) -> list[ImagePrediction]:
    """Predict every upload (name, bytes) exactly as ``fau predict NAME`` reads the file; each result's
    ``image`` is the uploaded name.  A non-image or an oversized image becomes that image's ``error``."""
    with tempfile.TemporaryDirectory(prefix="fau-serve-") as tmp:
        files: list[tuple[str, Path]] = []
        for number, (name, data) in enumerate(uploads):
            display = safe_name(name, f"upload{number}")
            path = Path(tmp) / str(number) / display     # one folder each: equal names do not collide
            path.parent.mkdir()
            path.write_bytes(data)
            files.append((display, path))
        refused: dict[int, str] = {}
        for number, (display, path) in enumerate(files):
            try:
                check_pixels(path, display, max_pixels)
            except UserError as err:
                refused[number] = str(err)
        predicted = iter(predictor.run([os.fspath(p) for n, (_, p) in enumerate(files) if n not in refused],
                                       errors="record"))
        out = []
        for number, (display, path) in enumerate(files):
            if number in refused:
                out.append(ImagePrediction(display, error=refused[number]))
                continue
            result = next(predicted)
            error = None if result.error is None else result.error.replace(os.fspath(path), display)
            out.append(dataclasses.replace(result, image=display, error=error))
        return out


def thresholds_for(predictor: Predictor, value: float | None) -> np.ndarray:
    """The predictor's per-AU thresholds, or every AU at `value` (checked like ``fau predict --threshold``)."""
    if value is None:
        return predictor.thresholds
    return load_thresholds({name: value for name in predictor.labels}, predictor.labels)


def relabel(predictor: Predictor, results: Sequence[ImagePrediction], thresholds: np.ndarray) -> list[ImagePrediction]:
    """The results at other thresholds, with no model pass: active AUs by `fau.predict`'s rule
    (probability ≥ threshold) and the template text of the new states; generated text is unchanged."""
    out = []
    for result in results:
        faces = []
        for face in result.faces:
            probs = np.array([face.aus[name] for name in predictor.labels])
            states = (probs >= thresholds).astype(int).tolist()
            template = face.template_description
            faces.append(dataclasses.replace(
                face, active=[name for name, s in zip(predictor.labels, states) if s],
                template_description=None if template is None else predictor._template(states)))
        out.append(dataclasses.replace(result, faces=faces))
    return out


def records(results: Sequence[ImagePrediction]) -> list[dict[str, Any]]:
    """The records ``fau predict --json`` writes for these images."""
    return [result.record() for result in results]


def json_bytes(results: Sequence[ImagePrediction]) -> bytes:
    """The bytes of ``fau predict --json OUT.json`` for these images (written by the same function)."""
    with tempfile.TemporaryDirectory(prefix="fau-serve-") as tmp:
        path = Path(tmp) / "predictions.json"
        write_json(path, records(results))
        return path.read_bytes()


def png_data_url(image: np.ndarray) -> str:
    """An RGB uint8 image as a ``data:image/png`` URL (the page needs no further request)."""
    import cv2

    ok, data = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError("PNG encoding failed")
    return "data:image/png;base64," + base64.b64encode(data.tobytes()).decode("ascii")


def face_pictures(face: FacePrediction, labels: Sequence[str]) -> dict[str, Any]:
    """The model's input crop and one attention tile per AU (`fau.predict_overlay.map_mosaic`), as data URLs."""
    out: dict[str, Any] = {"crop": png_data_url(face.face.crop), "overlays": {}}
    if face.maps is not None:
        for name, amap in zip(labels, face.maps):
            out["overlays"][name] = png_data_url(map_mosaic(face.face.crop, amap[None], columns=1))
    return out


def describe_checkpoint(predictor: Predictor) -> dict[str, Any]:
    """What the page states about the loaded model."""
    meta: Mapping[str, Any] = predictor.meta
    return {"model": meta.get("model"), "dataset": meta.get("dataset"), "labels": list(predictor.labels),
            "thresholds": [float(t) for t in predictor.thresholds], "template": predictor.template.version,
            "explains": bool(predictor.explain)}
