"""An ASGI application on the raw server of :mod:`atoll._http.server`, and the runner of a Dispatcher.

The replicas' prediction servers are ASGI apps (:mod:`atoll.toolkit.serving`);
:class:`AsgiDispatcher` serves one on :class:`~atoll._http.server.HttpServer`
so replicas, the local balancer and the router share one HTTP server and its
limits (body, head size, read timeouts, connection cap). It runs the app in one
task per request; ``receive`` gives the body, then ``http.disconnect`` once the
client's connection is closed (polled: only slow requests ever ask).

:func:`serve` runs a Dispatcher like :func:`atoll._http.asgi.run_app` runs an
ASGI app on uvicorn: in this thread (SIGTERM/SIGINT stop it gracefully), or in
a daemon thread with its own loop, returning a
:class:`~atoll._http.asgi.ServerHandle`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

from atoll._http.asgi import ASGIApp, Message, ServerHandle, bind_socket, env_host, env_port, launch
from atoll._http.dispatch import Dispatcher, Headers, Respond, error_answer
from atoll._http.server import HttpServer, Limits

logger = logging.getLogger(__name__)

_DISCONNECT = {"type": "http.disconnect"}
_GONE_POLL = 0.1  # seconds between two looks at a waiting request's connection


def _never_gone() -> bool:
    return False


class AsgiDispatcher:
    """Serves an ASGI app's ``http`` requests as a :class:`~atoll._http.dispatch.Dispatcher`.

    Args:
        app: the ASGI application.
        max_body: largest accepted request body in bytes (0: any).
        on_started: called when the server accepts requests (instead of the lifespan protocol).
        on_close: called when the server stops.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body: int = 0,
        on_started: Callable[[], None] | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.max_body = max_body
        self._on_started = on_started
        self._on_close = on_close
        self._tasks: set[asyncio.Task[None]] = set()

    def dispatch(
        self, method: str, path: str, query: bytes, headers: Headers, body: bytes, respond: Respond
    ) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "scheme": "http",
            "method": method,
            "path": unquote(path) if "%" in path else path,
            "raw_path": path.encode("latin-1"),
            "query_string": query,
            "root_path": "",
            "headers": headers,
        }
        task = asyncio.get_running_loop().create_task(self._run(scope, body, respond))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, scope: dict[str, Any], body: bytes, respond: Respond) -> None:
        gone: Callable[[], bool] = getattr(respond, "client_gone", _never_gone)
        state: dict[str, Any] = {"read": False, "status": 0, "headers": [], "body": [], "done": False}

        async def receive() -> Message:
            if not state["read"]:
                state["read"] = True
                return {"type": "http.request", "body": body, "more_body": False}
            while not gone() and not state["done"]:
                await asyncio.sleep(_GONE_POLL)
            return _DISCONNECT

        async def send(message: Message) -> None:
            if state["done"]:
                return
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                state["headers"] = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"content-length"]
            elif message["type"] == "http.response.body":
                state["body"].append(message.get("body", b""))
                if not message.get("more_body"):
                    state["done"] = True
                    parts = state["body"]
                    respond(state["status"], state["headers"], parts[0] if len(parts) == 1 else b"".join(parts))

        try:
            await self.app(scope, receive, send)
        except Exception:  # an app bug becomes a 500, the server keeps serving
            logger.exception("the application failed on %s %s", scope["method"], scope["path"])
        if not state["done"]:
            state["done"] = True
            respond(*error_answer(500, "the application sent no answer"))

    def started(self) -> None:
        if self._on_started is not None:
            self._on_started()

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._on_close is not None:
            self._on_close()


class _Control:
    """What :class:`~atoll._http.asgi.ServerHandle` needs of a server: ``started`` and ``should_exit``."""

    def __init__(self, server: HttpServer, loop: asyncio.AbstractEventLoop) -> None:
        self._server = server
        self._loop = loop

    @property
    def started(self) -> bool:
        return self._server.started

    @property
    def should_exit(self) -> bool:
        return False

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        if value and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._server.stop)


def limits_from(settings: Mapping[str, Any] | None, max_body: int = 0) -> tuple[int, Limits]:
    """``(max_body, Limits)`` from a deployment's ``limits`` settings (``atoll.config.ServingSection.limits``);
    missing values take the defaults (``max_body`` the given one), unknown keys are ignored."""
    values = dict(settings or {})
    body = int(values.pop("max_body", max_body))
    return body, Limits(**{k: v for k, v in values.items() if k in Limits.__dataclass_fields__})


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def serve(
    dispatcher: Dispatcher,
    host: str | None = None,
    port: int | None = None,
    block: bool = True,
    keep_alive: float = 30.0,
    limits: Limits | None = None,
) -> ServerHandle:
    """Serve ``dispatcher`` on the raw server at ``host:port`` (default ``$ATOLL_HOST``/``$ATOLL_PORT``).

    With ``block`` and no running event loop in this thread the server runs
    here (SIGTERM/SIGINT finish in-flight requests, then stop) and this returns
    when it stops; otherwise it runs in a daemon thread, which ``block`` waits for.

    Raises:
        BackendUnavailableError: the address cannot be bound.
    """
    host = env_host() if host is None else host
    port = env_port() if port is None else port
    sock = bind_socket(host, port)
    server = HttpServer(dispatcher, host, sock.getsockname()[1], keep_alive=keep_alive, limits=limits)
    server.sock = sock
    loop = _new_loop()
    control = _Control(server, loop)

    def run() -> None:
        try:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(server.serve())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
            sock.close()

    return launch(control, sock, run, f"atoll-server-{server.port}", block)


__all__ = ["AsgiDispatcher", "limits_from", "serve"]
