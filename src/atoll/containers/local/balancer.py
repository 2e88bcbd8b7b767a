"""The ``--port`` balancer of a local deployment.

A deployment's supervisor serves it on ``127.0.0.1:<port>``: every request
goes to the next healthy replica through the proxy the router uses
(:class:`atoll._http.proxy.Proxy`); a replica that cannot be reached is
tried last for a few seconds and the request tried on the next one. Bodies
pass unchanged.

It follows the router's rules: an API key for this deployment
(``Authorization: Bearer <key>``, checked by :mod:`atoll._http.keys` against
the router's keys file; 401/403) on every request but ``/health`` and
``/metrics``, unless ``router.auth`` is off; the ``Authorization`` header and
the client's ``x-atoll-replica-secret`` are not forwarded, the deployment's
replica secret is. It runs on Atoll's raw HTTP server with the deployment's
limits (:mod:`atoll._http.server`).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from atoll._http.client import UpstreamError
from atoll._http.dispatch import Headers, Respond, error_answer
from atoll._http.keys import OPEN_PATHS, KeyFileAuth, OpenAccess, with_replica_secret
from atoll._http.proxy import Proxy, Upstream
from atoll.errors import AtollError


def _explain(key: Hashable, replica: Upstream | None, error: UpstreamError | None) -> str:
    if replica is not None:
        return f"replica {replica.name} failed: {error}"
    return "no healthy replica of this deployment is reachable"


class Balancer:
    """Forwards every request to the healthy replicas in turn (a :class:`~atoll._http.dispatch.Dispatcher`).

    Runs in its own thread and loop (:func:`atoll._http.asgi_server.serve`); the
    supervisor sets :attr:`targets` (the swap of one list is atomic).

    Args:
        target: ``(project, deployment)`` the API keys must open.
        auth: the key check (:class:`~atoll._http.keys.OpenAccess` when ``router.auth`` is off).
        secret: the deployment's replica secret (None: the replicas have none).
        max_body: largest accepted request body in bytes (0: any).
    """

    def __init__(
        self,
        target: tuple[str, str] = ("", ""),
        auth: KeyFileAuth | OpenAccess | None = None,
        secret: bytes | None = None,
        max_body: int = 0,
    ) -> None:
        self.target = target
        self.auth = auth or OpenAccess()
        self.secret = secret
        self.max_body = max_body
        self._upstreams: list[Upstream] = []
        self._proxy = Proxy(_explain)

    @property
    def targets(self) -> tuple[tuple[str, int], ...]:
        """``(host, port)`` of the healthy replicas."""
        return tuple(u.address for u in self._upstreams)

    @targets.setter
    def targets(self, addresses: tuple[tuple[str, int], ...]) -> None:
        self._upstreams = [Upstream(f"{host}:{port}", host, port) for host, port in addresses]

    def dispatch(
        self, method: str, path: str, query: bytes, headers: Headers, body: bytes, respond: Respond
    ) -> None:
        if path not in OPEN_PATHS:
            try:
                headers = self.auth.check(self.target, headers)  # 401/403; never forwards Authorization
            except AtollError as exc:
                respond(*error_answer(exc.http_status, exc.message))
                return
        headers = with_replica_secret(headers, self.secret)
        target = path.encode("latin-1") + b"?" + query if query else path.encode("latin-1")
        proxy = self._proxy
        proxy.forward(None, proxy.order(None, self._upstreams), method, target, headers, body, respond)

    def started(self) -> None:
        pass

    def close(self) -> None:
        self._proxy.close()


__all__ = ["Balancer"]


def serve_balancer(key: tuple[str, str], port: int, settings: dict[str, Any]) -> tuple[Balancer, Any]:
    """Serve a :class:`Balancer` of deployment ``key`` on ``127.0.0.1:port`` (not blocking).

    ``settings`` is the supervisor spec's ``balancer``: ``keys_file`` (None: no
    key checked), ``replica_secret`` and ``limits``. Returns the balancer (its
    ``targets`` are the supervisor's to set) and the server's handle.
    """
    from atoll._http.asgi_server import limits_from, serve  # the server only in the supervisor

    keys_file = settings.get("keys_file")
    secret = settings.get("replica_secret")
    max_body, limits = limits_from(settings.get("limits"))
    balancer = Balancer(key, KeyFileAuth(keys_file) if keys_file else OpenAccess(),
                        secret.encode() if secret else None, max_body)
    return balancer, serve(balancer, host="127.0.0.1", port=port, block=False, keep_alive=75.0, limits=limits)
