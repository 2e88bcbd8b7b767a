"""A raw HTTP/1.1 server of a :class:`~atoll._http.dispatch.Dispatcher`: one asyncio protocol
with httptools' request parser.

It serves the router. Why not uvicorn there, as for the replicas: the router
does no work of its own per request, so the server's overhead is all it costs. Measured on the
development machine, uvicorn plus an ASGI app costs about 55 µs of CPU per
request more than a bare protocol (scope dicts, a task per request, two writes
per answer), which made the router use twice the CPU of the replica it fronts.
This server parses, calls the dispatcher's ``dispatch`` and writes each answer in one
write; answers to pipelined requests go out in request order.

It supports what clients of a prediction service send: keep-alive, pipelining,
``Expect: 100-continue``, chunked request bodies (decoded by httptools), a body
size limit, idle-connection timeout, and a graceful stop on SIGTERM/SIGINT
(stop accepting, finish what is in flight, then close).

Limits (:class:`Limits`), each with a clear answer, after which the connection
is closed: a body over the dispatcher's ``max_body`` -> 413 (as soon as the
``Content-Length`` or the bytes read say so); a request head over
``max_header_bytes`` -> 431; a head not complete ``header_timeout`` seconds
after its first byte, or a body not complete ``body_timeout`` seconds after
its head -> 408; a request on a connection opened while ``max_connections``
were open -> 503. llhttp refuses ``Content-Length`` with ``Transfer-Encoding``,
two ``Content-Length`` headers and malformed requests -> 400. Refusals are
queued behind the answers already owed on the connection, so pipelined
answers keep their order.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import ssl
import sys
import time
from collections import deque
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus

import httptools
import orjson

from atoll._http.asgi import bind_socket
from atoll._http.dispatch import Dispatcher, Headers

logger = logging.getLogger(__name__)

_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_MAX_PIPELINE = 64  # pending answers per connection before reading pauses
_IDLE, _HEAD, _BODY = 0, 1, 2  # where a connection is in reading a request
_LINGER = 2.0  # seconds a refused connection is drained before it is closed


@dataclass(frozen=True)
class Limits:
    """What one client may cost the server (see the module docstring for the answers)."""

    #: Bytes of a request head (request line and headers); checked per read, so a head is
    #: refused at most one read (256 KiB) past it.
    max_header_bytes: int = 64 * 1024
    #: Seconds from a request's first byte until its head is complete.
    header_timeout: float = 10.0
    #: Seconds from a request's head until its body is complete.
    body_timeout: float = 60.0
    #: Open connections; a request on one opened past this gets 503.
    max_connections: int = 1000


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a connection that was answered with an error."""


def _status_line(status: int) -> bytes:
    return _STATUS_LINES.get(status) or f"HTTP/1.1 {status} Status\r\n".encode()


class _Clock:
    """The Date header, formatted once per second."""

    def __init__(self) -> None:
        self._second = 0
        self._value = b""

    def date(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = formatdate(now, usegmt=True).encode()
        return self._value


class _ClientConnection(asyncio.Protocol):
    """One client connection: parse requests, dispatch them, write answers in order."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.dispatcher = server.dispatcher
        self.max_body = server.dispatcher.max_body or sys.maxsize
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.closed = False
        self.last_active = time.monotonic()
        self._pending: deque[list[bytes | None]] = deque()
        self._paused = False
        self._url = b""
        self._headers: Headers = []
        self._body: list[bytes] = []
        self._size = 0
        self.limits = server.limits
        self.phase = _IDLE
        self.phase_since = 0.0
        self._head_bytes = 0
        self._began = False  # a request began in the read being parsed
        self._refused = False
        self._over_cap = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._over_cap = len(self.server.connections) >= self.limits.max_connections
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self.last_active = time.monotonic()
        self._began = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            if not self._refused:
                self._fail(400, f"malformed request: {exc}")
        else:
            # Bytes of a head still incomplete; the read that began it is not counted (its
            # start may be the end of the previous request), so this errs on the lenient side.
            if self.phase == _HEAD and not self._began:
                self._head_bytes += len(data)
                if self._head_bytes > self.limits.max_header_bytes:
                    self._fail(431, f"request head larger than {self.limits.max_header_bytes} bytes")

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._body = []
        self._size = 0
        self.phase, self.phase_since = _HEAD, time.monotonic()
        self._head_bytes = 0
        self._began = True

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.phase, self.phase_since = _BODY, time.monotonic()
        for name, value in self._headers:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body:
                self._refuse(413, "request body too large")
            if name == b"expect" and value.lower() == b"100-continue":
                self.transport.write(_CONTINUE)  # type: ignore[union-attr]

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self.max_body:
            self._refuse(413, "request body too large")
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.phase = _IDLE
        if self._over_cap:
            self._refuse(503, "too many open connections; try again later")
        keep_alive = self.parser.should_keep_alive()
        slot: list[bytes | None] = [None]
        self._pending.append(slot)

        def respond(status: int, headers: Headers, payload: bytes) -> None:
            self._answer(slot, keep_alive, status, headers, payload)

        respond.client_gone = self.is_closed  # type: ignore[attr-defined]  # see dispatch.Respond
        path, _, query = self._url.partition(b"?")
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self.dispatcher.dispatch(
            self.parser.get_method().decode(), path.decode("latin-1"), query, self._headers, body, respond
        )
        if len(self._pending) > _MAX_PIPELINE and not self._paused:
            self._paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]

    # answers
    def _answer(
        self, slot: list[bytes | None], keep_alive: bool, status: int, headers: Headers, body: bytes
    ) -> None:
        if self.closed:
            return
        parts = [_status_line(status)]
        has_date = False
        for name, value in headers:
            parts += [name, b": ", value, b"\r\n"]
            has_date = has_date or name == b"date"
        if not has_date:
            parts += [b"date: ", self.server.clock.date(), b"\r\n"]
        if not keep_alive:
            parts.append(b"connection: close\r\n")
        parts += [b"content-length: ", str(len(body)).encode(), b"\r\n\r\n", body]
        slot[0] = b"".join(parts)
        slot.append(b"" if keep_alive else None)  # marks "close after this one"
        self._flush()

    def _flush(self) -> None:
        pending = self._pending
        transport = self.transport
        if self.closed:
            return
        while pending and pending[0][0] is not None:
            slot = pending.popleft()
            transport.write(slot[0])  # type: ignore[union-attr, arg-type]
            if slot[1] is None:
                self._linger() if self._refused else self.close()
                return
        self.last_active = time.monotonic()
        if self._paused and len(pending) <= _MAX_PIPELINE // 2 and not self._refused:
            self._paused = False
            transport.resume_reading()  # type: ignore[union-attr]

    def _fail(self, status: int, message: str) -> None:
        """Answer a request we cannot (or will not) read, after the answers owed, then close."""
        self._refused = True
        self.phase = _IDLE
        if self.transport is not None and not self.closed:
            body = orjson.dumps({"error": message})
            self._pending.append([
                _status_line(status)
                + b"content-type: application/json\r\nconnection: close\r\ncontent-length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body,
                None,
            ])
            self._flush()

    def _linger(self) -> None:
        """Close after a refusal: our side first, then the connection once the client closed its
        side or after ``_LINGER`` seconds, reading (and dropping) what it still sends meanwhile, so
        a client still sending its request reads the answer instead of a reset."""
        transport = self.transport
        if transport is None or self.closed:
            return
        if transport.can_write_eof():
            transport.write_eof()
        if self._paused:
            self._paused = False
            transport.resume_reading()
        asyncio.get_running_loop().call_later(_LINGER, self.close)

    def _refuse(self, status: int, message: str) -> None:
        """:meth:`_fail` from a parser callback: also stop parsing what was read."""
        self._fail(status, message)
        raise _Refused(message)

    def timed_out(self, now: float) -> bool:
        """Answer 408 and close when the request being read is past its time limit."""
        limit = self.limits.header_timeout if self.phase == _HEAD else self.limits.body_timeout
        if self.phase == _IDLE or now - self.phase_since <= limit:
            return False
        part = "head" if self.phase == _HEAD else "body"
        self._fail(408, f"request {part} not received within {limit:g}s")
        return True

    def is_closed(self) -> bool:
        """True once the connection is closed (the client went away, or we closed it)."""
        return self.closed

    @property
    def busy(self) -> bool:
        """True while an answer is owed."""
        return bool(self._pending)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()


class HttpServer:
    """Serves a :class:`~atoll._http.dispatch.Dispatcher` on ``host:port``.

    Args:
        dispatcher: what answers the requests.
        host: bind address.
        port: port (0 picks a free one; see :attr:`port` once started).
        keep_alive: seconds an idle client connection is kept.
        tls: serve HTTPS with this context (:func:`atoll._http.tls.server_context`); None: plain HTTP.
        limits: header size, read timeouts, connection cap (:class:`Limits`; defaults when omitted).
    """

    def __init__(
        self, dispatcher: Dispatcher, host: str = "127.0.0.1", port: int = 30080, keep_alive: float = 75.0,
        tls: ssl.SSLContext | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.tls = tls
        self.dispatcher = dispatcher
        self.host = host
        self.port = port
        self.keep_alive = keep_alive
        self.limits = limits or Limits()
        self.started = False
        self.clock = _Clock()
        self.connections: set[_ClientConnection] = set()
        #: A listening socket bound beforehand (e.g. to report a busy port in the caller); else bound in serve.
        self.sock: socket.socket | None = None
        self._stop: asyncio.Event | None = None

    async def serve(self) -> None:
        """Serve until :meth:`stop` (or SIGTERM/SIGINT in the main thread), then stop gracefully."""
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        sock = self.sock or bind_socket(self.host, self.port)
        self.port = sock.getsockname()[1]
        server = await loop.create_server(
            lambda: _ClientConnection(self), sock=sock, backlog=2048, ssl=self.tls,
            ssl_handshake_timeout=10.0 if self.tls else None,
        )
        handled = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.stop)
                handled.append(sig)
            except (RuntimeError, ValueError, NotImplementedError):  # not the main thread
                pass
        self.dispatcher.started()
        self.started = True
        logger.info("serving on %s://%s:%s", "https" if self.tls else "http", self.host, self.port)
        sweep = min(self.keep_alive, 10.0, self.limits.header_timeout / 4, self.limits.body_timeout / 4, 1.0)
        try:
            while not self._stop.is_set():
                try:
                    await asyncio.wait_for(self._stop.wait(), timeout=sweep)
                except asyncio.TimeoutError:
                    self._close_idle(time.monotonic() - self.keep_alive)
        finally:
            self.started = False
            for sig in handled:
                loop.remove_signal_handler(sig)
            server.close()
            deadline = time.monotonic() + 10.0
            while any(c.busy for c in self.connections) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            for conn in list(self.connections):
                conn.close()
            self.dispatcher.close()
            await server.wait_closed()

    def _close_idle(self, before: float) -> None:
        now = time.monotonic()
        for conn in list(self.connections):
            if conn.timed_out(now):
                continue
            if not conn.busy and conn.phase == _IDLE and conn.last_active < before:
                conn.close()

    def stop(self) -> None:
        """Stop accepting, finish in-flight requests, close (from the server's loop)."""
        if self._stop is not None:
            self._stop.set()

    def run(self) -> None:
        """Serve in this thread on a fresh (uv)loop until stopped."""
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
            asyncio.run(self.serve())
        else:
            uvloop.run(self.serve())


__all__ = ["HttpServer", "Limits"]
