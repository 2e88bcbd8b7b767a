"""Bare ASGI helpers, and a uvicorn runner of ASGI apps (the router's ``--server uvicorn``, tests).

The hot path of a prediction service must cost no more than a bare ASGI app
(DESIGN §8), so there is no framework here: a few coroutines that read a body
and send a response, and a runner that puts an app on uvicorn with uvloop and
httptools, no access log and no server header. Replicas are served by Atoll's
own server instead (:mod:`atoll._http.asgi_server`), for its limits and speed.

The runners serve in the calling thread when it has no running event loop (a
notebook executed in-process by Atoll's runner, a script), and in a thread with
its own loop when it is called from inside one (a Jupyter kernel), so the same
``OnlinePredict(predict)()`` works in both.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from atoll.errors import BackendUnavailableError, UsageError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger(__name__)

JSON = b"application/json"
_ORJSON_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _default(obj: Any) -> Any:
    """Serialize what orjson does not know: numpy-likes and pandas objects."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    raise TypeError(f"cannot serialize a {type(obj).__name__} to JSON")


def dumps(obj: Any) -> bytes:
    """JSON-encode with orjson, numpy arrays and pandas objects included.

    Raises:
        TypeError: ``obj`` holds something JSON cannot represent.
    """
    try:
        return orjson.dumps(obj, default=_default, option=_ORJSON_OPTS)
    except orjson.JSONEncodeError as exc:
        raise TypeError(f"the answer cannot be serialized to JSON: {exc}") from exc


async def read_body(receive: Receive, limit: int = 0) -> bytes:
    """The whole request body (one message in the common case).

    Raises:
        UsageError: the body is larger than ``limit`` (when ``limit`` > 0).
    """
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit and size > limit:
            raise UsageError(f"request body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = JSON,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send a complete response with a content length (no chunked encoding)."""
    head = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if headers:
        head.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


async def send_error(
    send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Send ``{"error": message}`` with ``status``."""
    await send_bytes(send, status, orjson.dumps({"error": message}), JSON, headers)


async def lifespan(
    receive: Receive, send: Send, on_startup: Callable[[], None], on_shutdown: Callable[[], None]
) -> None:
    """Answer uvicorn's lifespan protocol, calling the two hooks."""
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "lifespan.startup":
            on_startup()
            await send({"type": "lifespan.startup.complete"})
        elif kind == "lifespan.shutdown":
            on_shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


def env_host() -> str:
    """Bind address: ``$ATOLL_HOST`` (containers set 0.0.0.0), else loopback."""
    return os.environ.get("ATOLL_HOST") or "127.0.0.1"


def env_port() -> int:
    """Serving port: ``$ATOLL_PORT``, else 8080."""
    raw = os.environ.get("ATOLL_PORT") or "8080"
    try:
        port = int(raw)
    except ValueError as exc:
        raise UsageError(f"ATOLL_PORT must be a port number, not {raw!r}") from exc
    if not 0 <= port <= 65535:
        raise UsageError(f"ATOLL_PORT must be between 0 and 65535, not {port}")
    return port


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves so a busy port is a clear error, not a SystemExit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise BackendUnavailableError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def _http_impl() -> str:
    try:
        import httptools  # noqa: F401
    except ImportError:  # pragma: no cover - httptools is a dependency
        return "h11"
    return "httptools"


class ServerHandle:
    """A running server: its address, and how to wait for it or stop it."""

    def __init__(self, server: Any, sock: socket.socket, thread: threading.Thread | None) -> None:
        self._server = server
        self._sock = sock
        self._thread = thread
        self.host, self.port = sock.getsockname()[:2]

    @property
    def url(self) -> str:
        """Base URL of the server (``http://host:port``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def started(self) -> bool:
        """True once the server accepts connections."""
        return bool(self._server.started)

    def wait_started(self, timeout: float = 10.0) -> bool:
        """Block until the server accepts connections or stopped; True when it is serving."""
        deadline = time.monotonic() + timeout
        while not self.started and time.monotonic() < deadline:
            if self._thread is not None and not self._thread.is_alive():
                return False
            time.sleep(0.01)
        return self.started

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stops (``timeout`` in seconds); True when it has."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to finish in-flight requests and stop, then wait for it."""
        self._server.should_exit = True
        self.wait(timeout)


def _serve(server: Any, sock: socket.socket) -> None:
    """Run ``server`` on a fresh loop in the current thread until it stops."""
    loop = _loop_factory()()
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.serve(sockets=[sock]))
    finally:
        try:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
            sock.close()


def _in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_app(
    app: ASGIApp, host: str | None = None, port: int | None = None, block: bool = True
) -> ServerHandle:
    """Serve ``app`` with uvicorn on ``host:port`` (default ``$ATOLL_HOST``/``$ATOLL_PORT``).

    With ``block`` and no running event loop in this thread, uvicorn runs here,
    handles SIGTERM/SIGINT (finishing in-flight requests) and this returns when
    it stops. Inside a running loop (a Jupyter kernel) or with ``block=False``
    it runs in a daemon thread; ``block`` then waits for that thread.

    Raises:
        BackendUnavailableError: the address cannot be bound.
    """
    import uvicorn

    host = env_host() if host is None else host
    port = env_port() if port is None else port
    sock = bind_socket(host, port)
    config = uvicorn.Config(
        app,
        loop="none",
        http=_http_impl(),
        ws="none",
        interface="asgi3",
        proxy_headers=False,  # its middleware costs per request; nothing here reads client addresses
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        timeout_keep_alive=30,
        backlog=2048,
    )
    server = uvicorn.Server(config)
    return launch(server, sock, lambda: _serve(server, sock), f"atoll-server-{port}", block, announce=True)


def launch(
    server: Any, sock: socket.socket, run: Callable[[], None], name: str, block: bool, announce: bool = False
) -> ServerHandle:
    """Run ``run`` (which serves ``server`` on ``sock``) here or in a daemon thread called ``name``.

    With ``block`` and no running event loop in this thread it runs here and
    this returns when it stops; otherwise it runs in a daemon thread, which
    ``block`` waits for (Ctrl-C stops the server). ``announce`` logs the URL.
    """
    if block and not _in_running_loop():
        handle = ServerHandle(server, sock, None)
        if announce:
            logger.info("serving on %s", handle.url)
        run()
        return handle
    thread = threading.Thread(target=run, name=name, daemon=True)
    handle = ServerHandle(server, sock, thread)
    if announce:
        logger.info("serving on %s (background thread)", handle.url)
    thread.start()
    if block:
        try:
            while not handle.wait(0.5):
                pass
        except KeyboardInterrupt:
            handle.stop()
    return handle


__all__ = [
    "JSON",
    "ASGIApp",
    "Receive",
    "Scope",
    "Send",
    "ServerHandle",
    "bind_socket",
    "dumps",
    "env_host",
    "env_port",
    "launch",
    "lifespan",
    "read_body",
    "run_app",
    "send_bytes",
    "send_error",
]
