"""The HTTP service (FastAPI on uvicorn): search, batch search, encode, ask, documents, health, info, metrics.

CPU work (encoding a query, the index scan, writing a segment) runs in worker threads behind one capacity
limiter of ``ServeConfig.threads`` slots, each slot one thread of torch/numba/BLAS: concurrent requests
queue for a slot instead of oversubscribing the cores (on 2 cores, torch's default of 2 threads per query
made a query ~7x slower under load). A request that waits or runs longer than the limits' timeout is
answered 503 (its thread finishes in the background; its result is dropped).

Errors are JSON ``{"error": message, ...}``: 401 (API key), 404 (unknown document or path), 413 (body),
422 (a field: its path named, or a value lsr refuses), 503 (timeout, model or index unavailable).
"""
import asyncio
import hashlib
import hmac
import logging
import threading
import time

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ..errors import DataError, IndexError_, LsrError, ModelError, ParameterError, QueryError
from .metrics import Metrics
from .schemas import Limits, request_models
from .state import ServeConfig, ServerState

log = logging.getLogger("lsr.serve")
OPEN_PATHS = ("/health", "/docs", "/openapi.json", "/docs/oauth2-redirect", "/redoc")


class Unavailable(Exception):
    """503: the request could not be answered now (timeout, a model missing on the server)."""


def error(status: int, message: str, **extra) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


class Gate:
    """Pure ASGI middleware in front of every route: API key, body size limit, metrics."""

    def __init__(self, app, metrics: Metrics, limits: Limits, api_key: str | None):
        self.app, self.metrics, self.limits = app, metrics, limits
        # compared as digests: equal lengths, so the comparison reveals neither the key nor its length
        self.api_key = hashlib.sha256(api_key.encode()).digest() if api_key else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope["path"], scope["method"]
        route = endpoint(path)
        start, status = time.perf_counter(), [None]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            refusal = self._refuse(scope, path)
            if refusal is not None:
                return await refusal(scope, receive, send_status)
            await self._limited(scope, receive, send_status)
        except BaseException:
            status[0] = status[0] or 500
            raise
        finally:
            self.metrics.in_flight.dec()
            # no response at all: the client left first (nginx's 499)
            self.metrics.observe(route, method, status[0] or 499, time.perf_counter() - start)

    def _refuse(self, scope, path):
        headers = dict(scope["headers"])
        if self.api_key is not None and path not in OPEN_PATHS:
            given = headers.get(b"x-api-key") or b""
            auth = headers.get(b"authorization", b"")
            if auth[:7].lower() == b"bearer ":
                given = auth[7:].strip()
            # constant time: the comparison does not reveal how much of a guess was right
            if not hmac.compare_digest(hashlib.sha256(given).digest(), self.api_key):
                return JSONResponse({"error": "missing or wrong API key (send 'Authorization: Bearer KEY' or "
                                              "'X-API-Key: KEY')"}, status_code=401,
                                    headers={"WWW-Authenticate": "Bearer"})
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if method_has_body(scope) and kind and kind != b"application/json":
            return error(415, f"send the body as JSON with 'Content-Type: application/json' (got "
                              f"{kind.decode(errors='replace')!r})")
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.limits.max_body_bytes
            except ValueError:
                return error(400, "Content-Length is not a number")
            if too_big:
                return error(413, self._too_large())
        return None

    def _too_large(self) -> str:
        return f"request body is larger than the server's limit of {self.limits.max_body_bytes:,} bytes"

    async def _limited(self, scope, receive, send):
        """The app, with the body's bytes counted as they arrive (a chunked body has no Content-Length to
        check first): past the limit, a 413 is sent and the app sees the client leave."""
        seen, answered = [0], [False]

        async def counted():
            message = await receive()
            if message["type"] == "http.request" and not answered[0]:
                seen[0] += len(message.get("body", b""))
                if seen[0] > self.limits.max_body_bytes:
                    answered[0] = True
                    await error(413, self._too_large())(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message):
            if not answered[0]:  # after the 413, whatever the app still says goes nowhere
                await send(message)
        await self.app(scope, counted, guarded)


ENDPOINTS = ("/search", "/search/batch", "/encode", "/ask", "/documents", "/health", "/info", "/metrics",
             "/docs", "/openapi.json")


def endpoint(path: str) -> str:
    """The metrics label of a path: the endpoint, a document's own routes as one, anything else "other"."""
    if path in ENDPOINTS:
        return path
    if path.startswith("/documents/"):
        return "/documents/{doc_id}/terms" if path.endswith("/terms") else "/documents/{doc_id}"
    return "other"


def method_has_body(scope) -> bool:
    return scope["method"] in ("POST", "PUT", "PATCH", "DELETE")


def create_app(config: ServeConfig, limits: Limits | None = None, api_key: str | None = None) -> FastAPI:
    """The ASGI app serving ``config.index_dir`` (the index is opened and verified here)."""
    from . import routes
    limits = limits or Limits()
    state = ServerState(config)
    metrics = Metrics()
    metrics.generation.set(state.generation or 0)
    # Compute slots, held by a job's thread until it really ends: a request that timed out leaves its thread
    # running, and that thread keeps its slot, so abandoned work never lets more than ``threads`` jobs run.
    slots = threading.BoundedSemaphore(max(1, int(config.threads)))
    # Generating an answer takes seconds: it gets a slot of its own, so searches never queue behind it.
    answering = threading.BoundedSemaphore(1)
    # Threads parked on a slot: a few beyond the slots (each thread that ever runs a job keeps torch's and the
    # kernels' per-thread buffers: 64 of them grew a worker by ~400 MB at 32 clients); requests beyond wait
    # here, as cheap coroutines, cancellably.
    waiting = anyio.CapacityLimiter(2 * max(1, int(config.threads)) + 2)
    app = FastAPI(title="lsr", version=_version(), description=routes.DESCRIPTION)
    app.state.lsr, app.state.limits, app.state.metrics = state, limits, metrics

    async def run(fn, *args, answer: bool = False, timeout: float | None = limits.timeout_s):
        """``fn(*args)`` in a worker thread once a slot is free (``answer``: the generator's), within
        ``timeout`` (None: run to the end, e.g. a commit, whose client must learn whether it happened)."""
        slot, gone = (answering if answer else slots), threading.Event()

        def job():
            with slot:
                if gone.is_set():
                    return None  # its request timed out while it queued: never started
                return fn(*args)
        call = anyio.to_thread.run_sync(job, limiter=waiting, abandon_on_cancel=True)
        if timeout is None:
            return await call
        try:
            return await asyncio.wait_for(call, timeout)
        except asyncio.TimeoutError:
            gone.set()
            raise Unavailable(f"the request took longer than the server's timeout of {timeout:g} s") from None

    app.state.run = run
    routes.add_routes(app, request_models(limits), state, metrics, run, limits)
    _add_error_handlers(app)
    return Gate(app, metrics, limits, api_key)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("lsr")
    except PackageNotFoundError:
        return "0"


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        problems = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
            if e.get("type") == "json_invalid":
                problems.append(f"body is not valid JSON ({e.get('ctx', {}).get('error', e.get('msg'))})")
            elif e.get("type") == "extra_forbidden":
                problems.append(f"{where}: unknown field")
            else:
                problems.append(f"{where}: {e.get('msg')}")
        # loc, msg and type only: the input itself may be a megabyte, or NaN, which JSON cannot carry
        detail = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg")), "type": str(e.get("type"))}
                  for e in exc.errors()]
        return error(422, "; ".join(problems) or "invalid request", detail=detail)

    @app.exception_handler(LsrError)
    async def refused(request: Request, exc: LsrError):
        if isinstance(exc, (QueryError, ParameterError, DataError)):
            return error(422, str(exc))
        if isinstance(exc, ModelError):
            return error(503, str(exc))
        if isinstance(exc, IndexError_) and "another" in str(exc):
            return error(503, str(exc), retry=True)
        log.error("index error answering %s: %s", request.url.path, exc)
        return error(500, f"index error: {exc}")

    @app.exception_handler(Unavailable)
    async def unavailable(request: Request, exc: Unavailable):
        return error(503, str(exc))

    @app.exception_handler(ImportError)
    async def missing(request: Request, exc: ImportError):
        return error(503, f"not available on this server: {exc}")

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception):
        log.exception("error answering %s", request.url.path)  # the details stay in the server's log
        return error(500, f"internal error ({type(exc).__name__}); the server's log has the details")

