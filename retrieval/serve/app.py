"""The `retrieval serve` web app: one page (``static/``) and JSON endpoints over a loaded `Gallery`.

``GET /api/info``               the index, its model, the re-ranker, the caption bank and the limits
``POST /api/search``            ``{"query", "topk", "explain"}`` → the top-k gallery images with scores and,
                                where the model explains, the matched words and salient regions
``GET /api/picture/{row}``      the picture of an index row (only rows of the index are served)
``GET /api/gallery``            ``?offset&limit``: rows to pick an image from
``GET /api/captions/{row}``     ``?topk``: the best captions of the caption bank for that image
``GET /api/heldout``            ``?n``: R@1/5/10 of n captions of the indexed split whose images are known

Needs the ``serve`` extra (imported here at module level; `retrieval.commands.serve` checks it first).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.responses import FileResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from shared.errors import UserError
from shared.serve import Busy, create_app

STATIC = Path(__file__).resolve().parent / "static"


@dataclass(frozen=True)
class Limits:
    """What one request may ask for (ours: a sentence, not a document; a page of hits)."""

    max_query_chars: int = 1000
    max_topk: int = 50
    max_explained: int = 20
    max_heldout: int = 5000

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class SearchRequest(BaseModel):
    query: str = ""
    topk: int = 10
    explain: bool = True


def check_query(query: str, limits: Limits) -> str:
    """The query, or a one-line `UserError` for an empty or overlong one."""
    if not query.strip():
        raise UserError("type a sentence first: the query is empty")
    if len(query) > limits.max_query_chars:
        raise UserError(f"the query has {len(query):,} characters; the limit is {limits.max_query_chars:,} "
                        f"(a sentence or two)")
    return query.strip()


def check_topk(topk: int, limits: Limits) -> int:
    if not 1 <= topk <= limits.max_topk:
        raise UserError(f"top-k {topk}: choose between 1 and {limits.max_topk}")
    return topk


def build_app(gallery: Any, limits: Limits = Limits()) -> Any:
    """The FastAPI app of one loaded gallery (see the module docstring for the endpoints)."""
    from retrieval.serve import adapter

    app = create_app("retrieval serve", STATIC, max_body=2**20)
    app.state.busy = Busy()
    info = {**adapter.describe(gallery), "limits": limits.to_json()}

    @app.get("/api/info")
    def get_info() -> dict[str, Any]:
        return info

    @app.post("/api/search")
    async def search(request: SearchRequest) -> dict[str, Any]:
        query, topk = check_query(request.query, limits), check_topk(request.topk, limits)
        explain = request.explain and topk <= limits.max_explained
        with app.state.busy.job():
            return await run_in_threadpool(adapter.search, gallery, query, topk, explain)

    @app.get("/api/picture/{row}")
    def picture(row: int) -> Any:
        path = adapter.picture_path(gallery, row)
        if path is None:
            raise UserError(f"image row {row} has no picture on this machine")
        return FileResponse(path)

    @app.get("/api/gallery")
    def page(offset: int = 0, limit: int = 24) -> dict[str, Any]:
        return {"count": gallery.index.count, "rows": adapter.gallery_page(gallery, offset, min(max(limit, 1), 200))}

    @app.get("/api/captions/{row}")
    async def captions(row: int, topk: int = 5) -> dict[str, Any]:
        topk = check_topk(topk, limits)
        with app.state.busy.job():
            return await run_in_threadpool(adapter.captions_of, gallery, row, topk)

    @app.get("/api/heldout")
    async def heldout(n: int = 100) -> dict[str, Any]:
        if not 1 <= n <= limits.max_heldout:
            raise UserError(f"held-out check: {n} queries; choose between 1 and {limits.max_heldout}")
        with app.state.busy.job():
            return await run_in_threadpool(adapter.heldout, gallery, n)

    return app
