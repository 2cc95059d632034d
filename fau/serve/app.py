"""The `fau serve` web app: one page (``static/``) and four JSON endpoints over a loaded `Predictor`.

``GET /api/info``            the model, its AUs and thresholds, and the upload limits
``POST /api/predict``        photos (multipart ``files``) → per photo the ``fau predict`` record plus the
                             model's input crop and per-AU attention tiles of each face; a result id
``GET /api/relabel/{id}``    the records at ``?threshold=t`` for every AU (none: the checkpoint's),
                             re-labelled without running the model
``GET /api/download/{id}``   ``predictions.json``: the bytes ``fau predict --json`` writes (at ``?threshold``)

Needs the ``serve`` extra (imported here at module level; `fau.commands.serve` checks it first).
Limits (stated on the page): photos per request, bytes per photo, megapixels per photo; a larger
photo gets its own error line, the other photos of the request are still predicted.
"""

from __future__ import annotations

import collections
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from shared.errors import UserError
from shared.serve import Busy, TooLargeError, create_app

STATIC = Path(__file__).resolve().parent / "static"
#: results kept for re-labelling and download (the oldest is dropped first)
KEPT_RESULTS = 16


@dataclass(frozen=True)
class Limits:
    """What one request may carry (ours: a photo album, not a dataset; `fau predict` handles folders of any size)."""

    max_files: int = 32
    max_file_mb: float = 20.0
    max_megapixels: float = 25.0

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 2**20)

    @property
    def max_pixels(self) -> int:
        return int(self.max_megapixels * 1e6)

    @property
    def max_body(self) -> int:
        return self.max_files * self.max_file_bytes + 2**20

    def to_json(self) -> dict[str, Any]:
        return {"max_files": self.max_files, "max_file_mb": self.max_file_mb, "max_megapixels": self.max_megapixels}


class Results:
    """The last `KEPT_RESULTS` prediction results by id (thread-safe)."""

    def __init__(self) -> None:
        self._items: collections.OrderedDict[str, list[Any]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def add(self, results: list[Any]) -> str:
        key = uuid.uuid4().hex
        with self._lock:
            self._items[key] = results
            while len(self._items) > KEPT_RESULTS:
                self._items.popitem(last=False)
        return key

    def get(self, key: str) -> list[Any]:
        with self._lock:
            if key not in self._items:
                raise UserError("this result is no longer kept by the server; predict the photos again")
            return self._items[key]


def build_app(predictor: Any, limits: Limits = Limits()) -> Any:
    """The FastAPI app of one loaded predictor (see the module docstring for the endpoints)."""
    from fau.serve import adapter

    app = create_app("fau serve", STATIC, limits.max_body)
    app.state.busy, app.state.results = Busy(), Results()
    info = {**adapter.describe_checkpoint(predictor), "limits": limits.to_json()}

    @app.get("/api/info")
    def get_info() -> dict[str, Any]:
        return info

    @app.post("/api/predict")
    async def predict(request: Request) -> dict[str, Any]:
        with app.state.busy.job():
            form = await request.form(max_files=limits.max_files + 1, max_fields=8)
            files = [value for key, value in form.multi_items() if key == "files" and not isinstance(value, str)]
            if not files:
                raise UserError("no photo received: pick or drop one or more image files")
            if len(files) > limits.max_files:
                raise TooLargeError(f"{len(files)} files: at most {limits.max_files} photos per request")
            uploads, too_big = [], {}
            for number, upload in enumerate(files):
                data = await upload.read(limits.max_file_bytes + 1)
                name = adapter.safe_name(upload.filename or "", f"upload{number}")
                if len(data) > limits.max_file_bytes:
                    too_big[number] = f"{name}: larger than the limit of {limits.max_file_mb:g} MB"
                    data = b""
                uploads.append((upload.filename or name, data))
            await form.close()
            keep = [u for n, u in enumerate(uploads) if n not in too_big]
            predicted = iter(await run_in_threadpool(adapter.predict_uploads, predictor, keep, limits.max_pixels))
            results = []
            for number, (name, _) in enumerate(uploads):
                if number in too_big:
                    results.append(adapter.ImagePrediction(adapter.safe_name(name, f"upload{number}"),
                                                           error=too_big[number]))
                else:
                    results.append(next(predicted))
            pictures = await run_in_threadpool(
                lambda: [[adapter.face_pictures(face, predictor.labels) for face in r.faces] for r in results])
        key = app.state.results.add(results)
        return {"id": key, "images": [{"record": record, "faces": faces}
                                      for record, faces in zip(adapter.records(results), pictures)]}

    @app.get("/api/relabel/{key}")
    def relabel(key: str, threshold: float | None = None) -> dict[str, Any]:
        results = adapter.relabel(predictor, app.state.results.get(key), adapter.thresholds_for(predictor, threshold))
        return {"records": adapter.records(results)}

    @app.get("/api/download/{key}")
    def download(key: str, threshold: float | None = None) -> Any:
        results = adapter.relabel(predictor, app.state.results.get(key), adapter.thresholds_for(predictor, threshold))
        return Response(adapter.json_bytes(results), media_type="application/json",
                        headers={"Content-Disposition": 'attachment; filename="predictions.json"'})

    return app
