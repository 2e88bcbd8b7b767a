"""The ``--port`` balancer of a local deployment.

A deployment's supervisor serves it on ``127.0.0.1:<port>``: every request
goes to the next healthy replica, through the router's keep-alive client
(:mod:`atoll.router.forward`); a replica that cannot be reached is skipped
and the request tried on the next one. Bodies and headers pass unchanged.
"""

from __future__ import annotations

import itertools

from atoll.router.forward import HOP_BY_HOP, Pool, UpstreamConnectError, UpstreamError
from atoll.toolkit.asgi import Receive, Scope, Send, lifespan, read_body, send_error


class Balancer:
    """ASGI app forwarding every request to the healthy replicas in turn.

    Runs in its own thread and loop (:func:`atoll.toolkit.asgi.run_app`); the
    supervisor swaps :attr:`targets` (a tuple, so the swap is atomic).
    """

    def __init__(self) -> None:
        self.targets: tuple[tuple[str, int], ...] = ()
        self._turn = itertools.count()
        self._pool: Pool | None = None

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send, lambda: None, lambda: None)
            return
        if scope["type"] != "http":
            return
        if self._pool is None:
            self._pool = Pool()
        body = await read_body(receive)
        targets = self.targets
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target = target + b"?" + scope["query_string"]
        start = next(self._turn)
        for attempt in range(len(targets)):
            host, port = targets[(start + attempt) % len(targets)]
            try:
                answer = await self._pool.request(
                    host, port, scope["method"], target, list(scope["headers"]), body
                )
            except UpstreamConnectError:
                continue
            except UpstreamError as exc:
                await send_error(send, 502, f"replica {host}:{port} failed: {exc}")
                return
            headers = [(k, v) for k, v in answer.headers if k not in HOP_BY_HOP]
            headers.append((b"content-length", str(len(answer.body)).encode()))
            await send({"type": "http.response.start", "status": answer.status, "headers": headers})
            await send({"type": "http.response.body", "body": answer.body})
            return
        await send_error(send, 503, "no healthy replica of this deployment is reachable")


__all__ = ["Balancer"]
