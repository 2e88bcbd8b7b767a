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

:meth:`Router.dispatch` is callback-driven (a :class:`~atoll._http.dispatch.Dispatcher`)
so the raw HTTP server of :mod:`atoll._http.server` pays no task or future per
request when the replicas are known; :meth:`Router.app` is the ASGI front.
Forwarding is :class:`atoll._http.proxy.Proxy`, shared with the local balancer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Hashable
from typing import cast
from urllib.parse import unquote_plus

import orjson

from atoll._http.client import Pool, UpstreamError
from atoll._http.dispatch import Headers, Respond, asgi_app, error_answer
from atoll._http.metrics import CONTENT_TYPE, Metrics
from atoll._http.proxy import Proxy
from atoll.domain.names import is_valid_name
from atoll.errors import AtollError, UsageError
from atoll.router.auth import KeyFileAuth, OpenAccess, ReplicaSecretsFile, with_replica_secret
from atoll.router.discovery import Discovery, Replica

_FORWARDED = ("/predict", "/update")
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


def _explain(key: Hashable, replica: Replica | None, error: UpstreamError | None) -> str:
    """The error message of a request no replica of ``key`` = (project, deployment) answered."""
    project, deploy = cast("tuple[str, str]", key)
    if replica is not None:
        return f"replica {replica.name} of {project}/{deploy} failed: {error}"
    if error is not None:
        return f"no replica of deployment {deploy!r} of project {project!r} answered"
    return f"deployment {deploy!r} of project {project!r} has no healthy replica"


class Router:
    """Routes prediction requests to replicas.

    Args:
        discovery: where replicas are found.
        pool: the upstream connection pool (a default one when omitted).
        max_body: largest accepted request body, in bytes.
        down_for: seconds an unreachable replica is tried last.
        auth: the API-key check (:mod:`atoll.router.auth`); none by default.
        secrets: each deployment's replica secret, sent as ``x-atoll-replica-secret`` (the
            client's copy of that header is never forwarded); none by default.
    """

    def __init__(
        self,
        discovery: Discovery,
        pool: Pool | None = None,
        max_body: int = 64 * 1024 * 1024,
        down_for: float = 3.0,
        auth: KeyFileAuth | OpenAccess | None = None,
        secrets: ReplicaSecretsFile | None = None,
    ) -> None:
        self.discovery = discovery
        self.auth = auth or OpenAccess()
        self.secrets = secrets or ReplicaSecretsFile(None)
        self.max_body = max_body
        self.metrics = Metrics("atoll_router", _FORWARDED)
        self.proxy = Proxy(_explain, pool, down_for, self.metrics)
        self.pool = self.proxy.pool
        #: The router as an ASGI application (the raw server of :mod:`atoll._http.server` is faster).
        self.app = asgi_app(self)

    # -- the core, callback style --------------------------------------------------

    def dispatch(
        self, method: str, path: str, query: bytes, headers: Headers, body: bytes, respond: Respond
    ) -> None:
        """Answer one request through ``respond`` (now, or later from the event loop)."""
        if path in _FORWARDED:
            if method != "POST":
                self.metrics.count(path, 405)
                status, head, payload = error_answer(405, f"{path} accepts POST only")
                respond(status, head + [(b"allow", b"POST")], payload)
                return
            self._forward(path, method, query, headers, body, respond)
        elif path == "/health" or path == "/metrics":
            if method != "GET":
                self.metrics.count(path, 405)
                status, head, payload = error_answer(405, f"{path} accepts GET only")
                respond(status, head + [(b"allow", b"GET")], payload)
            elif path == "/health":
                self.metrics.count(path, 200)
                respond(200, list(_JSON), _HEALTH_OK)
            else:
                self.metrics.count(path, 200)
                respond(200, [(b"content-type", CONTENT_TYPE)], self.metrics.render())
        else:
            self.metrics.count("other", 404)
            respond(*error_answer(404, f"no route {path}; use POST /predict?project=P&deploy=D"))

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
            headers = with_replica_secret(headers, self.secrets.secret(*key))
            replicas = self.discovery.cached(*key)
        except AtollError as exc:
            finish(*error_answer(exc.http_status, exc.message))
            return
        target = f"{path}?".encode() + query
        if replicas is None:
            asyncio.get_running_loop().create_task(
                self._lookup_then_forward(key, method, target, headers, body, finish)
            )
        else:
            proxy = self.proxy
            proxy.forward(key, proxy.order(key, replicas), method, target, headers, body, finish)

    async def _lookup_then_forward(
        self, key: tuple[str, str], method: str, target: bytes, headers: Headers, body: bytes, finish: Respond
    ) -> None:
        try:
            replicas = await self.discovery.replicas(*key)
        except AtollError as exc:
            finish(*error_answer(exc.http_status, exc.message))
            return
        self.proxy.forward(key, self.proxy.order(key, replicas), method, target, headers, body, finish)

    def started(self) -> None:
        """The server is accepting requests."""
        self.metrics.up = 1

    def close(self) -> None:
        """The server is stopping: drop pooled connections and release discovery."""
        self.metrics.up = 0
        self.proxy.close()
        self.discovery.close()


__all__ = ["Router", "parse_target"]
