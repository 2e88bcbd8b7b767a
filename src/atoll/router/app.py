"""The router: one HTTP entry point in front of every deployment's replicas.

::

    POST /predict?project=P&deploy=D[&model_version=V]   -> a healthy replica of P/D
    POST /update?project=P&deploy=D&model_version=V      -> likewise
    GET  /health                                         -> 200
    GET  /metrics                                        -> Prometheus text

The request goes out unchanged (method, path, query string, body, content
type) and the replica's answer comes back unchanged (status, body, content
type). Replicas are taken round-robin; one that cannot be reached is tried
last for a few seconds and the request is retried on the next one. An HTTP
answer, even an error, is never retried.

Names are checked against the naming rule before anything is looked up, so no
path or host name is ever built from unchecked input: 400 for a malformed
name, 404 naming the unknown project or deployment, 503 when the deployment
has no healthy replica.

:meth:`Router.dispatch` is callback-driven so the raw HTTP server of
:mod:`atoll.router.server` pays no task or future per request when the
replicas are known; :meth:`Router.app` wraps it as an ASGI app.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from urllib.parse import unquote_plus

import orjson

from atoll.domain.names import is_valid_name
from atoll.errors import AtollError, UsageError
from atoll.router.auth import KeyFileAuth, OpenAccess
from atoll.router.discovery import Discovery, Replica
from atoll.router.forward import (
    HOP_BY_HOP,
    Pool,
    Response,
    UpstreamConnectError,
    UpstreamError,
    UpstreamTimeout,
    build_request,
)
from atoll.toolkit.asgi import Receive, Scope, Send, lifespan, read_body
from atoll.toolkit.metrics import CONTENT_TYPE, Metrics

logger = logging.getLogger(__name__)

Headers = list[tuple[bytes, bytes]]
#: ``respond(status, headers, body)``: headers exclude content-length (the server adds it).
Respond = Callable[[int, Headers, bytes], None]

_FORWARDED = ("/predict", "/update")
_DROP_FROM_ANSWER = HOP_BY_HOP | {b"server"}
_JSON: Headers = [(b"content-type", b"application/json")]
_HEALTH_OK = orjson.dumps({"status": "ok"})


def _shown(value: str) -> str:
    """A user-given value, shortened for an error message."""
    return repr(value if len(value) <= 70 else value[:67] + "...")


def _unquote(raw: bytes) -> str:
    """A query value as text; percent-decoding only when there is something to decode."""
    if b"%" in raw or b"+" in raw:
        return unquote_plus(raw.decode("latin-1"))
    return raw.decode("latin-1")


def parse_target(query_string: bytes) -> tuple[str, str]:
    """``(project, deployment)`` from the query string, both checked against the naming rule.

    Raises:
        UsageError: a parameter is missing or malformed.
    """
    project = deploy = None
    for pair in query_string.split(b"&"):
        name, _, raw = pair.partition(b"=")
        if name == b"project" and project is None:
            project = _unquote(raw)
        elif name == b"deploy" and deploy is None:
            deploy = _unquote(raw)
    if project is None or deploy is None:
        raise UsageError("name the deployment: ?project=PROJECT&deploy=DEPLOYMENT")
    rule = "use 1-63 lowercase letters, digits and dashes, starting and ending with a letter or digit"
    if not is_valid_name(project):
        raise UsageError(f"malformed project name {_shown(project)}: {rule}")
    if not is_valid_name(deploy):
        raise UsageError(f"malformed deployment name {_shown(deploy)}: {rule}")
    return project, deploy


def _error(status: int, message: str) -> tuple[int, Headers, bytes]:
    return status, list(_JSON), orjson.dumps({"error": message})


class Router:
    """Routes prediction requests to replicas.

    Args:
        discovery: where replicas are found.
        pool: the upstream connection pool (a default one when omitted).
        max_body: largest accepted request body, in bytes.
        down_for: seconds an unreachable replica is tried last.
        auth: the API-key check (:mod:`atoll.router.auth`); none by default.
    """

    def __init__(
        self,
        discovery: Discovery,
        pool: Pool | None = None,
        max_body: int = 64 * 1024 * 1024,
        down_for: float = 3.0,
        auth: KeyFileAuth | OpenAccess | None = None,
    ) -> None:
        self.discovery = discovery
        self.auth = auth or OpenAccess()
        self.pool = pool or Pool()
        self.max_body = max_body
        self.down_for = down_for
        self.metrics = Metrics("atoll_router", _FORWARDED)
        self._next: dict[tuple[str, str], int] = {}
        self._down: dict[tuple[str, int], float] = {}

    # -- the core, callback style --------------------------------------------------

    def dispatch(
        self, method: str, path: str, query: bytes, headers: Headers, body: bytes, respond: Respond
    ) -> None:
        """Answer one request through ``respond`` (now, or later from the event loop)."""
        if path in _FORWARDED:
            if method != "POST":
                self.metrics.count(path, 405)
                status, head, payload = _error(405, f"{path} accepts POST only")
                respond(status, head + [(b"allow", b"POST")], payload)
                return
            self._forward(path, method, query, headers, body, respond)
        elif path == "/health" or path == "/metrics":
            if method != "GET":
                self.metrics.count(path, 405)
                status, head, payload = _error(405, f"{path} accepts GET only")
                respond(status, head + [(b"allow", b"GET")], payload)
            elif path == "/health":
                self.metrics.count(path, 200)
                respond(200, list(_JSON), _HEALTH_OK)
            else:
                self.metrics.count(path, 200)
                respond(200, [(b"content-type", CONTENT_TYPE)], self.metrics.render())
        else:
            self.metrics.count("other", 404)
            respond(*_error(404, f"no route {path}; use POST /predict?project=P&deploy=D"))

    def _forward(
        self, path: str, method: str, query: bytes, headers: Headers, body: bytes, respond: Respond
    ) -> None:
        start = time.perf_counter()

        def finish(status: int, head: Headers, payload: bytes) -> None:
            self.metrics.observe(path, status, time.perf_counter() - start)
            respond(status, head, payload)

        try:
            key = parse_target(query)
            headers = self.auth.check(key, headers)  # 401/403; never forwards Authorization
            replicas = self.discovery.cached(*key)
        except AtollError as exc:
            finish(*_error(exc.http_status, exc.message))
            return
        target = f"{path}?".encode() + query
        if replicas is None:
            asyncio.get_running_loop().create_task(
                self._lookup_then_try(key, method, target, headers, body, finish)
            )
        else:
            self._try(key, self._order(key, replicas), 0, method, target, headers, body, finish)

    async def _lookup_then_try(
        self, key: tuple[str, str], method: str, target: bytes, headers: Headers, body: bytes, finish: Respond
    ) -> None:
        try:
            replicas = await self.discovery.replicas(*key)
        except AtollError as exc:
            finish(*_error(exc.http_status, exc.message))
            return
        self._try(key, self._order(key, replicas), 0, method, target, headers, body, finish)

    def _order(self, key: tuple[str, str], replicas: list[Replica]) -> list[Replica]:
        """Replicas to try, round-robin, the recently unreachable ones last."""
        n = len(replicas)
        if n == 0:
            return replicas
        turn = self._next.get(key, 0)
        self._next[key] = (turn + 1) % n
        start = turn % n
        order = replicas[start:] + replicas[:start] if start else replicas
        if self._down:
            now = time.monotonic()
            down = self._down
            fresh = [r for r in order if down.get(r.address, 0.0) <= now]
            if len(fresh) != n:
                order = fresh + [r for r in order if down.get(r.address, 0.0) > now]
        return order

    def _try(
        self,
        key: tuple[str, str],
        order: list[Replica],
        index: int,
        method: str,
        target: bytes,
        headers: Headers,
        body: bytes,
        finish: Respond,
    ) -> None:
        """Send to ``order[index]``; on a connection failure move on to the next replica."""
        if index >= len(order):
            self.metrics.error("no_replica")
            if order:
                message = f"no replica of deployment {key[1]!r} of project {key[0]!r} answered"
            else:
                message = f"deployment {key[1]!r} of project {key[0]!r} has no healthy replica"
            finish(*_error(503, message))
            return
        replica = order[index]

        def done(answer: Response | None, error: UpstreamError | None) -> None:
            if answer is not None:
                if self._down:
                    self._down.pop(replica.address, None)
                head = [(k, v) for k, v in answer.headers if k not in _DROP_FROM_ANSWER]
                finish(answer.status, head, answer.body)
            elif isinstance(error, UpstreamConnectError):
                self.metrics.error("unreachable")
                self._down[replica.address] = time.monotonic() + self.down_for
                logger.warning("replica %s of %s/%s unreachable: %s", replica.name, key[0], key[1], error)
                self._try(key, order, index + 1, method, target, headers, body, finish)
            else:
                self.metrics.error("upstream")
                status = 504 if isinstance(error, UpstreamTimeout) else 502
                finish(*_error(status, f"replica {replica.name} of {key[0]}/{key[1]} failed: {error}"))

        data = build_request(method, target, replica.host, replica.port, headers, body)
        self.pool.send(replica.host, replica.port, data, done)

    def started(self) -> None:
        """The server is accepting requests."""
        self.metrics.up = 1

    def close(self) -> None:
        """The server is stopping: drop pooled connections and release discovery."""
        self.metrics.up = 0
        self.pool.close()
        self.discovery.close()

    # -- ASGI front --------------------------------------------------------------

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The router as an ASGI application (the raw server in :mod:`.server` is faster)."""
        if scope["type"] == "lifespan":
            await lifespan(receive, send, self.started, self.close)
            return
        if scope["type"] != "http":
            return
        future: asyncio.Future[tuple[int, Headers, bytes]] = asyncio.get_running_loop().create_future()

        def respond(status: int, head: Headers, payload: bytes) -> None:
            if not future.done():
                future.set_result((status, head, payload))

        try:
            body = await read_body(receive, self.max_body)
        except UsageError as exc:
            respond(*_error(413, exc.message))
        else:
            self.dispatch(
                scope["method"], scope["path"], scope["query_string"], scope["headers"], body, respond
            )
        status, head, payload = await future
        head = [(k, v) for k, v in head if k != b"date"]  # uvicorn sends its own
        head.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": payload})


__all__ = ["Router", "parse_target"]
