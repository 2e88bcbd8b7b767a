"""What both prediction servers share: routing, health, metrics, the replica secret, error answers.

:class:`~atoll.toolkit.serving.OnlinePredict` and
:class:`~atoll.toolkit.serving.LazyModelServer` (see :mod:`atoll.toolkit.serving`
for the routes) are subclasses of :class:`PredictServer`.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

import orjson

from atoll._http.asgi import (
    Receive,
    Scope,
    Send,
    ServerHandle,
    dumps,
    lifespan,
    send_bytes,
    send_error,
)
from atoll._http.keys import OPEN_PATHS, replica_secret_matches
from atoll._http.metrics import CONTENT_TYPE, Metrics, SizeHistogram
from atoll.errors import AtollError, UsageError
from atoll.task.stores import replica_settings
from atoll.toolkit import paths
from atoll.toolkit.batching import CLIENT_CLOSED, BatchConfig, Batcher, ClientDisconnected

logger = logging.getLogger(__name__)

_HEALTH_WAIT = orjson.dumps({"status": "starting"})
_NOT_ALLOWED = {"POST": [(b"allow", b"POST")], "GET": [(b"allow", b"GET")]}
_LOG_EVERY = 1.0  # seconds between two logged tracebacks, so a bad client cannot flood the log

Handler = Callable[[Scope, Receive, Send], Awaitable[int]]
DEFAULT_MAX_BODY = 16 * 1024 * 1024  # bytes, when the deployment gives no limits


def replica_name() -> str:
    """This replica's name: ``$ATOLL_REPLICA``, else the host name."""
    return os.environ.get("ATOLL_REPLICA") or socket.gethostname()


def utc_now() -> str:
    """Now, ISO-8601 in UTC with milliseconds: the ``datetime`` of an answer's metadata."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _staged_version_name() -> str | None:
    """``model:version`` of the only staged model version, None when there are zero or several."""
    staged = paths.staged_versions()
    return f"{staged[0][0]}:{staged[0][1]}" if len(staged) == 1 else None


class PredictServer:
    """Routing, health, metrics and error mapping shared by both servers."""

    #: What ``GET /health`` says this server is (subclasses keep their base's).
    server_kind = "OnlinePredict"

    def __init__(self, enrich: bool) -> None:
        self.enrich = enrich
        self._health_ok = orjson.dumps({"status": "ok", "server": self.server_kind})
        self.ready = False
        self.replica = replica_name()
        self.metrics = Metrics("atoll", ("/predict", "/update"))
        self._last_log = 0.0
        self.batch_sizes = SizeHistogram("batch_size", "Requests per call of the batch function.")
        self.batching = False
        settings = replica_settings()
        secret = settings.get("secret")
        self._secret: bytes | None = str(secret).encode() if secret else None
        self.limits: dict[str, Any] = dict(settings.get("limits") or {})
        self._routes: dict[str, tuple[str, Handler, bool]] = {
            "/predict": ("POST", self._predict, True),
            "/health": ("GET", self._health, False),
            "/metrics": ("GET", self._metrics, False),
        }

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI application (give this to any ASGI server)."""
        if scope["type"] == "http":
            if (
                self._secret is not None
                and scope["path"] not in OPEN_PATHS
                and not replica_secret_matches(scope["headers"], self._secret)
            ):
                await send_error(send, 403, "this replica answers only through the router or the --port balancer")
                self.metrics.count("other", 403)
                return
            route = self._routes.get(scope["path"])
            if route is None:
                await send_error(send, 404, f"no route {scope['path']}; use POST /predict")
                self.metrics.count("other", 404)
                return
            method, handler, timed = route
            if scope["method"] != method:
                await send_error(send, 405, f"{scope['path']} accepts {method} only", _NOT_ALLOWED[method])
                self.metrics.count(scope["path"], 405)
                return
            if timed:
                start = time.perf_counter()
                status = await handler(scope, receive, send)
                self.metrics.observe(scope["path"], status, time.perf_counter() - start)
            else:
                self.metrics.count(scope["path"], await handler(scope, receive, send))
        elif scope["type"] == "lifespan":
            await lifespan(receive, send, self._started, self._stopping)

    def _started(self) -> None:
        self.ready = True
        self.metrics.up = 1

    def _stopping(self) -> None:
        self.ready = False
        self.metrics.up = 0

    async def _health(self, scope: Scope, receive: Receive, send: Send) -> int:
        status = 200 if self.ready else 503
        await send_bytes(send, status, self._health_ok if self.ready else _HEALTH_WAIT)
        return status

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> int:
        text = self.metrics.render(self._gauges())
        if self.batching:
            text += self.batch_sizes.render(self.metrics.prefix)
        await send_bytes(send, 200, text, CONTENT_TYPE)
        return 200

    def _batching(self, config: BatchConfig, handler: Handler) -> None:
        """Route ``POST /predict`` to the batched handler (the unbatched one stays untouched)."""
        if not isinstance(config, BatchConfig):
            raise UsageError(f"batch must be a BatchConfig, not {type(config).__name__}")
        self.batching = True
        self._routes["/predict"] = ("POST", handler, True)

    async def _answer_batched(
        self, batcher: Batcher, body: str, receive: Receive, send: Send, metadata: Any
    ) -> int:
        """Wait for this body's result from ``batcher`` and answer it."""
        try:
            result = await batcher.submit(body, receive)
            payload = dumps({"result": result, "metadata": {"datetime": utc_now(), **metadata}} if self.enrich else result)
        except ClientDisconnected:
            return CLIENT_CLOSED
        except Exception as exc:  # noqa: BLE001 - user code: any error becomes an answer
            return await self._fail(send, exc, "predict")
        await send_bytes(send, 200, payload)
        return 200

    def _gauges(self) -> dict[str, tuple[str, float]]:
        return {}

    async def _predict(self, scope: Scope, receive: Receive, send: Send) -> int:
        raise NotImplementedError

    async def _fail(self, send: Send, exc: Exception, what: str) -> int:
        """Answer an exception raised by user code, and count it."""
        if isinstance(exc, AtollError):
            status = exc.http_status
        elif isinstance(exc, ValueError):
            status = 400
        else:
            status = 500
        self.metrics.error("invalid_input" if status < 500 else "exception")
        if status >= 500:
            now = time.monotonic()
            if now - self._last_log >= _LOG_EVERY:
                self._last_log = now
                logger.error("%s failed: %s", what, exc, exc_info=exc)
        await send_error(send, status, str(exc) or type(exc).__name__)
        return status

    def __call__(self, block: bool = True, host: str | None = None, port: int | None = None) -> ServerHandle:
        """Serve on ``$ATOLL_HOST:$ATOLL_PORT`` (or ``host``/``port``) until stopped.

        Blocks the caller (SIGTERM stops gracefully). Inside a running event
        loop the server runs in a thread with its own loop; ``block=False``
        returns the handle at once (``handle.stop()`` ends it).

        Raises:
            BackendUnavailableError: the port cannot be bound.
        """
        from atoll._http.asgi_server import AsgiDispatcher, limits_from, serve

        max_body, limits = limits_from(self.limits, DEFAULT_MAX_BODY)
        dispatcher = AsgiDispatcher(self.app, max_body, self._started, self._stopping)
        return serve(dispatcher, host=host, port=port, block=block, limits=limits)
