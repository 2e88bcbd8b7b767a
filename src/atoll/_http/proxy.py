"""The proxy: forward a whole request to upstreams in turn, the next one on a connection failure.

One copy for the router (every deployment, behind discovery) and the local
balancer (one deployment's replicas on ``--port``). The request goes out
unchanged (method, target, headers but the hop-by-hop ones, body) and the
answer comes back unchanged (status, headers but the hop-by-hop ones, body).

Upstreams are taken round-robin per key; one that cannot be reached is tried
last for ``down_for`` seconds and the request goes to the next one. An HTTP
answer, even an error, is never retried, and neither is an upstream that broke
or timed out while answering (it may have acted on the request).

Callback-driven like :mod:`atoll._http.client`: no task or future per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from atoll._http.client import (
    HOP_BY_HOP,
    Pool,
    Response,
    UpstreamConnectError,
    UpstreamError,
    UpstreamTimeout,
    build_request,
)
from atoll._http.dispatch import Headers, Respond, error_answer
from atoll._http.metrics import Metrics

logger = logging.getLogger(__name__)

_DROP_FROM_ANSWER = HOP_BY_HOP | {b"server"}


@dataclass(frozen=True, slots=True)
class Upstream:
    """A server the proxy may forward to (a replica)."""

    name: str
    host: str
    port: int

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``, the key the connection pool uses."""
        return (self.host, self.port)


#: ``explain(key, upstream, error)``: the error message of a request no upstream answered.
#: ``upstream`` is the one that broke (502) or timed out (504) while answering; None when
#: none could be reached (503), ``error`` then the last connection failure, None when
#: there was no upstream to try.
Explain = Callable[[Hashable, "Upstream | None", "UpstreamError | None"], str]


def _shown(key: Hashable) -> str:
    """A key for a log line: ``project/deployment`` for the router's."""
    return "/".join(key) if isinstance(key, tuple) else str(key)


class Proxy:
    """Forwards whole requests to upstreams, in turn.

    Args:
        explain: words the error answers (see :data:`Explain`).
        pool: the upstream connection pool (a default one when omitted).
        down_for: seconds an unreachable upstream is tried last.
        metrics: where failures are counted (``no_replica``, ``unreachable``,
            ``upstream``), when given.
    """

    def __init__(
        self,
        explain: Explain,
        pool: Pool | None = None,
        down_for: float = 3.0,
        metrics: Metrics | None = None,
    ) -> None:
        self.explain = explain
        self.pool = pool or Pool()
        self.down_for = down_for
        self.metrics = metrics
        self._next: dict[Hashable, int] = {}
        self._down: dict[tuple[str, int], float] = {}

    def order(self, key: Hashable, upstreams: list[Upstream]) -> list[Upstream]:
        """Upstreams of ``key`` to try, round-robin, the recently unreachable ones last."""
        n = len(upstreams)
        if n == 0:
            return upstreams
        turn = self._next.get(key, 0)
        self._next[key] = (turn + 1) % n
        start = turn % n
        order = upstreams[start:] + upstreams[:start] if start else upstreams
        if self._down:
            now = time.monotonic()
            down = self._down
            fresh = [u for u in order if down.get(u.address, 0.0) <= now]
            if len(fresh) != n:
                order = fresh + [u for u in order if down.get(u.address, 0.0) > now]
        return order

    def forward(
        self,
        key: Hashable,
        order: list[Upstream],
        method: str,
        target: bytes,
        headers: Headers,
        body: bytes,
        respond: Respond,
        index: int = 0,
        last_error: UpstreamError | None = None,
    ) -> None:
        """Send to ``order[index]``; on a connection failure move on to the next upstream.

        ``respond`` gets the first answer, or the error answer once no
        upstream answered (503), or one broke (502) or timed out (504).
        """
        if index >= len(order):
            if self.metrics is not None:
                self.metrics.error("no_replica")
            respond(*error_answer(503, self.explain(key, None, last_error)))
            return
        upstream = order[index]

        def done(answer: Response | None, error: UpstreamError | None) -> None:
            if answer is not None:
                if self._down:
                    self._down.pop(upstream.address, None)
                head = [(k, v) for k, v in answer.headers if k not in _DROP_FROM_ANSWER]
                respond(answer.status, head, answer.body)
            elif isinstance(error, UpstreamConnectError):
                if self.metrics is not None:
                    self.metrics.error("unreachable")
                self._down[upstream.address] = time.monotonic() + self.down_for
                logger.warning("replica %s of %s unreachable: %s", upstream.name, _shown(key), error)
                self.forward(key, order, method, target, headers, body, respond, index + 1, error)
            else:
                if self.metrics is not None:
                    self.metrics.error("upstream")
                status = 504 if isinstance(error, UpstreamTimeout) else 502
                respond(*error_answer(status, self.explain(key, upstream, error)))

        data = build_request(method, target, upstream.host, upstream.port, headers, body)
        self.pool.send(upstream.host, upstream.port, data, done)

    def close(self) -> None:
        """Drop the pooled connections."""
        self.pool.close()


__all__ = ["Explain", "Proxy", "Upstream"]
