"""What both demo servers (`fau serve`, `retrieval serve`) share: the app frame, the busy guard, the socket.

A demo is one hand-written page (HTML, CSS and vanilla JavaScript shipped in the package, nothing fetched
from elsewhere) and a few JSON endpoints.  Every failure reaches the page as ``{"error": "one line"}``
with an HTTP status the page shows as a message: a `UserError` (bad input) is 400, a request while the
model is busy is 429, an oversized request 413, and an unexpected exception 500 with the traceback only
in the server's log.  One model job runs at a time (`Busy`): a second request is answered at once with
a visible "busy" message instead of waiting behind the first.

The server binds 127.0.0.1 unless a host is given; the socket is bound before the server starts, so a
port in use is a one-line error naming it (`bind`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import signal
import socket
import threading
from pathlib import Path
from typing import Any, Iterator

from shared.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
EXTRA_HINT = "pip install -e '.[serve]'"
#: the stylesheet and helpers both pages load from ``/common``
COMMON_STATIC = Path(__file__).resolve().parent / "serve_static"
BUSY_MESSAGE = "busy: the model is working on another request; try again when it has finished"


class BusyError(Exception):
    """A model job was asked for while another one runs."""


class TooLargeError(Exception):
    """A request body above the server's limit."""


def require_serve_extra(command: str) -> None:
    """One-line `UserError` unless the web server libraries (the ``serve`` extra) are importable."""
    try:
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401  (file uploads)
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise UserError(f"{command} needs the serve extra ({err.name} is missing): {EXTRA_HINT}") from None


class Busy:
    """At most one model job at a time; a second caller gets `BusyError` at once (never waits)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def job(self) -> Iterator[None]:
        if not self._lock.acquire(blocking=False):
            raise BusyError(BUSY_MESSAGE)
        try:
            yield
        finally:
            self._lock.release()

    @property
    def running(self) -> bool:
        return self._lock.locked()


def error_response(status: int, message: str) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status)


def create_app(title: str, static_dir: Path, max_body: int) -> Any:
    """A FastAPI app serving ``static_dir/index.html`` at ``/``, the folder under ``/static`` and the
    shared stylesheet and helpers (`COMMON_STATIC`) under ``/common``.

    Requests whose declared body exceeds `max_body` bytes are refused with 413 before they are read;
    errors become ``{"error": ...}`` JSON (module docstring).
    """
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException as StarletteHTTPException

    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)
    index_html = (static_dir / "index.html").read_text(encoding="utf-8")

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Any) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            return error_response(413, f"request of {int(declared) / 2**20:.1f} MB is above the server's limit "
                                       f"of {max_body / 2**20:.0f} MB")
        return await call_next(request)

    @app.exception_handler(UserError)
    async def user_error(request: Request, err: UserError) -> Any:
        return error_response(400, str(err))

    @app.exception_handler(BusyError)
    async def busy(request: Request, err: BusyError) -> Any:
        return error_response(429, str(err))

    @app.exception_handler(TooLargeError)
    async def too_large(request: Request, err: TooLargeError) -> Any:
        return error_response(413, str(err))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> Any:
        return error_response(err.status_code, str(err.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> Any:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in err.errors())
        return error_response(400, f"bad request ({problems})")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> Any:
        log.error("%s %s failed", request.method, request.url.path, exc_info=err)
        return error_response(500, f"internal error ({type(err).__name__}); the server's log has the details")

    @app.get("/", response_class=HTMLResponse)
    async def page() -> Any:
        return HTMLResponse(index_html)

    app.mount("/static", StaticFiles(directory=static_dir), name="static")
    app.mount("/common", StaticFiles(directory=COMMON_STATIC), name="common")
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port) (port 0: any free port); a port in use is a one-line error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise UserError(f"--port {port}: already in use on {host}; pick another port") from None
        if err.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(err, socket.gaierror):
            raise UserError(f"--host {host}: not an address of this machine ({err.strerror or err})") from None
        raise
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def _server(app: Any) -> Any:
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2))


def serve(app: Any, sock: socket.socket) -> None:
    """Run `app` on the bound socket until interrupted (Ctrl+C): a KeyboardInterrupt, so the CLI frame prints
    "interrupted" and exits 130.  uvicorn re-raises the SIGINT it caught after its graceful shutdown, but a
    process started with SIGINT ignored (some parent processes pass that on) would then return normally."""
    server = _server(app)
    server.run(sockets=[sock])
    if signal.SIGINT in getattr(server, "_captured_signals", ()):
        raise KeyboardInterrupt


class ServerThread:
    """`app` served from a background thread on a bound socket, for tests and notebooks::

        with ServerThread(app) as url: ...   # 127.0.0.1, a free port
    """

    def __init__(self, app: Any, host: str = DEFAULT_HOST, port: int = 0) -> None:
        self.app, self.sock = app, bind(host, port)
        self.server = _server(app)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return url_of(self.sock)

    def __enter__(self) -> str:
        import time

        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the demo server did not start")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
