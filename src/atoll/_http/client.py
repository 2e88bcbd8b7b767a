"""A small keep-alive HTTP/1.1 client for forwarding requests to replicas.

Why not httpx or aiohttp: the router adds one hop to every prediction, and
the client's CPU per request decides how much. Measured here (sequential
requests to one replica, client CPU per request): httpx 1,320 µs, aiohttp
230 µs, this module 80 µs. It is one asyncio protocol per connection with
httptools' C response parser, driven by callbacks (no task or future per
request on the hot path): an idle connection is reused, the request goes out
in one write, the answer is parsed as it arrives.

It does only what the router needs: whole-body requests and answers,
per-upstream pools of idle connections, a timeout per request. The timeout is
a deadline stored on the connection and checked by one periodic sweep per pool
(see :data:`SWEEP_EVERY`), not a timer per request: arming and cancelling an
event-loop timer for every request cost about 10% of the router's CPU.

Failures are split in two, because the router retries only one of them:
:class:`UpstreamConnectError` (nothing was answered: refused, reset before any
byte of an answer, connect timeout) is safe to retry elsewhere;
:class:`UpstreamError` (the replica started answering then broke, or timed
out) is not.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import httptools

# Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus
# the ones the client recomputes.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"host",
        b"expect",
    }
)

#: Longest interval between two timeout sweeps of a pool, in seconds: a replica
#: that does not answer is cut off at most this long after its deadline.
SWEEP_EVERY = 0.5


class UpstreamError(Exception):
    """The replica failed after it may have seen the request (do not retry)."""


class UpstreamConnectError(UpstreamError):
    """The replica could not be reached or closed before answering (safe to retry)."""


class UpstreamTimeout(UpstreamError):
    """The replica did not answer within the timeout (not retried: it may still be working)."""


class Response:
    """An upstream answer: status, headers (lower-case names) and the whole body."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


#: ``done(response, None)`` or ``done(None, error)``, called exactly once per request.
Done = Callable[["Response | None", "UpstreamError | None"], None]


def build_request(
    method: str, target: bytes, host: str, port: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> bytes:
    """The bytes of a whole HTTP/1.1 request; hop-by-hop headers of the caller are dropped."""
    head = [method.encode(), b" ", target, b" HTTP/1.1\r\nhost: ", f"{host}:{port}".encode()]
    for name, value in headers:
        if name not in HOP_BY_HOP:
            head += [b"\r\n", name, b": ", value]
    head += [b"\r\ncontent-length: ", str(len(body)).encode(), b"\r\n\r\n", body]
    return b"".join(head)


class _Connection(asyncio.Protocol):
    """One keep-alive connection to a replica, carrying one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.keep_alive = True
        #: ``loop.time()`` by which the answer must be complete (meaningful while busy).
        self.deadline = 0.0
        self._done: Done | None = None
        self._busy: set[_Connection] | None = None  # the pool's set of busy connections, while busy
        self._started = False
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._status = 0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._done is not None:
            if self._started:
                self._finish(None, UpstreamError("the replica closed the connection while answering"))
            else:
                self._finish(None, UpstreamConnectError(f"the replica closed the connection: {exc or 'EOF'}"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._finish(None, UpstreamError(f"malformed answer from the replica: {exc}"))
            self.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._started = True
        self._headers = []
        self._body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self._status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if not self.keep_alive:
            self.close()
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._finish(Response(self._status, self._headers, body), None)

    # client side
    def _finish(self, response: Response | None, error: UpstreamError | None) -> None:
        done = self._done
        if done is None:
            return
        self._done = None
        self._started = False
        if self._busy is not None:
            self._busy.discard(self)
            self._busy = None
        done(response, error)

    def time_out(self) -> None:
        """The deadline passed: fail the request and drop the connection (its answer may still come)."""
        self._finish(None, UpstreamTimeout("the replica did not answer in time"))
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def start(self, data: bytes, deadline: float, busy: set[_Connection], done: Done) -> None:
        """Write a whole request; ``done`` gets the whole answer or the error.

        The connection sits in ``busy`` until then, where the pool's sweep
        looks for connections past their ``deadline``.
        """
        self._done = done
        self._started = False
        self.deadline = deadline
        self._busy = busy
        busy.add(self)
        self.transport.write(data)  # type: ignore[union-attr]


class Pool:
    """Idle keep-alive connections, per upstream ``(host, port)``.

    Args:
        connect_timeout: seconds to establish a connection.
        timeout: seconds to wait for a whole answer once the request is sent.
        max_idle: idle connections kept per upstream.
    """

    def __init__(self, connect_timeout: float = 2.0, timeout: float = 60.0, max_idle: int = 64) -> None:
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.max_idle = max_idle
        self._idle: dict[tuple[str, int], deque[_Connection]] = {}
        self._busy: set[_Connection] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._sweep_loop: asyncio.AbstractEventLoop | None = None

    def send(self, host: str, port: int, data: bytes, done: Done) -> None:
        """Send the request bytes ``data`` to ``host:port``; ``done`` is called with the outcome.

        An idle connection is reused when there is one. If it turns out to be
        closed by the replica in the meantime, the request goes once more on a
        fresh connection before the replica is called unreachable.
        """
        key = (host, port)
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                self._start(key, conn, data, done, reused=True)
                return
        asyncio.get_running_loop().create_task(self._connect_and_start(key, data, done))

    def _start(self, key: tuple[str, int], conn: _Connection, data: bytes, done: Done, reused: bool) -> None:
        def finished(response: Response | None, error: UpstreamError | None) -> None:
            if error is None:
                if not conn.closed:
                    idle = self._idle.get(key)
                    if idle is None:
                        idle = self._idle[key] = deque()
                    if len(idle) < self.max_idle:
                        idle.append(conn)
                    else:
                        conn.close()
                done(response, None)
            elif reused and type(error) is UpstreamConnectError:
                asyncio.get_running_loop().create_task(self._connect_and_start(key, data, done))
            else:
                done(None, error)

        loop = conn.loop
        if self._sweeper is None or self._sweep_loop is not loop:
            self._schedule_sweep(loop)
        conn.start(data, loop.time() + self.timeout, self._busy, finished)

    def _schedule_sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._sweep_loop = loop
        self._sweeper = loop.call_later(min(SWEEP_EVERY, self.timeout / 4), self._sweep)

    def _sweep(self) -> None:
        """Time out the requests past their deadline; runs while any request is in flight."""
        self._sweeper = None
        loop = self._sweep_loop
        if loop is None:
            return
        now = loop.time()
        for conn in [c for c in self._busy if c.deadline <= now]:
            conn.time_out()
        if self._busy and self._sweeper is None:
            self._schedule_sweep(loop)

    async def _connect_and_start(self, key: tuple[str, int], data: bytes, done: Done) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(loop), key[0], key[1]), self.connect_timeout
            )
        except (OSError, asyncio.TimeoutError) as exc:
            done(None, UpstreamConnectError(f"cannot connect to {key[0]}:{key[1]}: {exc or 'timeout'}"))
            return
        self._start(key, conn, data, done, reused=False)

    async def request(
        self,
        host: str,
        port: int,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> Response:
        """Send one request and return its whole answer (a coroutine front for :meth:`send`).

        Raises:
            UpstreamConnectError: the replica could not be reached (retry elsewhere).
            UpstreamError: the replica broke or timed out while answering.
        """
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()

        def done(response: Response | None, error: UpstreamError | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(response)  # type: ignore[arg-type]

        self.send(host, port, build_request(method, target, host, port, headers, body), done)
        return await future

    def close(self) -> None:
        """Close every idle connection (requests in flight still time out)."""
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        if self._sweeper is not None and not self._busy:
            self._sweeper.cancel()
            self._sweeper = None

    def idle_counts(self) -> dict[str, int]:
        """Idle connections per upstream (for tests and debugging)."""
        return {f"{h}:{p}": len(q) for (h, p), q in self._idle.items()}


__all__ = [
    "HOP_BY_HOP",
    "Pool",
    "Response",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamTimeout",
    "build_request",
]
