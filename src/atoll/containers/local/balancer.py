"""The ``--port`` balancer of a local deployment.

A deployment's supervisor serves it on ``127.0.0.1:<port>``: every request
goes to the next healthy replica through the proxy the router uses
(:class:`atoll._http.proxy.Proxy`); a replica that cannot be reached is
tried last for a few seconds and the request tried on the next one. Bodies and
headers pass unchanged.
"""

from __future__ import annotations

from collections.abc import Hashable

from atoll._http.client import UpstreamError
from atoll._http.dispatch import Headers, Respond, asgi_app
from atoll._http.proxy import Proxy, Upstream


def _explain(key: Hashable, replica: Upstream | None, error: UpstreamError | None) -> str:
    if replica is not None:
        return f"replica {replica.name} failed: {error}"
    return "no healthy replica of this deployment is reachable"


class Balancer:
    """Forwards every request to the healthy replicas in turn; :attr:`app` is its ASGI front.

    Runs in its own thread and loop (:func:`atoll._http.asgi.run_app`); the
    supervisor sets :attr:`targets` (the swap of one list is atomic).
    """

    max_body = 0  # any size: the replicas decide

    def __init__(self) -> None:
        self._upstreams: list[Upstream] = []
        self._proxy = Proxy(_explain)
        self.app = asgi_app(self)

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
        target = path.encode("latin-1") + b"?" + query if query else path.encode("latin-1")
        proxy = self._proxy
        proxy.forward(None, proxy.order(None, self._upstreams), method, target, headers, body, respond)

    def started(self) -> None:
        pass

    def close(self) -> None:
        self._proxy.close()


__all__ = ["Balancer"]
