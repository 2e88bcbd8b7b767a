"""The callback-style request contract shared by the raw server and the ASGI front.

A :class:`Dispatcher` answers a whole request (method, path, query string,
headers, body) by calling ``respond(status, headers, body)`` once, now or
later from the event loop. The raw server of :mod:`atoll._http.server` calls it
with no task or future per request; :func:`asgi_app` puts the same dispatcher
on any ASGI server (uvicorn), paying a future per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

import orjson

from atoll._http.asgi import ASGIApp, Receive, Scope, Send, lifespan, read_body
from atoll.errors import UsageError

#: Header list, names in lower case.
Headers = list[tuple[bytes, bytes]]
#: ``respond(status, headers, body)``: headers exclude content-length (the server adds it).
#: The raw server's ``respond`` also has ``respond.client_gone()``: True once the client's
#: connection is closed (what an ASGI app learns as ``http.disconnect``).
Respond = Callable[[int, Headers, bytes], None]


class Dispatcher(Protocol):
    """What a server serves: one callback-driven entry point and two lifecycle hooks."""

    #: Largest accepted request body in bytes; 0 accepts any size.
    max_body: int

    def dispatch(
        self, method: str, path: str, query: bytes, headers: Headers, body: bytes, respond: Respond
    ) -> None:
        """Answer one request through ``respond``, exactly once.

        ``path`` is the raw request path (not percent-decoded), ``query`` the
        raw query string without ``?``.
        """

    def started(self) -> None:
        """The server accepts requests."""

    def close(self) -> None:
        """The server is stopping: release what the dispatcher holds."""


def error_answer(status: int, message: str) -> tuple[int, Headers, bytes]:
    """``(status, headers, body)`` of a JSON ``{"error": message}`` answer."""
    return status, [(b"content-type", b"application/json")], orjson.dumps({"error": message})


def asgi_app(dispatcher: Dispatcher) -> ASGIApp:
    """``dispatcher`` as an ASGI application (the raw server of :mod:`.server` is faster)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send, dispatcher.started, dispatcher.close)
            return
        if scope["type"] != "http":
            return
        future: asyncio.Future[tuple[int, Headers, bytes]] = asyncio.get_running_loop().create_future()

        def respond(status: int, head: Headers, payload: bytes) -> None:
            if not future.done():
                future.set_result((status, head, payload))

        try:
            body = await read_body(receive, dispatcher.max_body)
        except UsageError as exc:
            respond(*error_answer(413, exc.message))
        else:
            raw_path = scope.get("raw_path")
            path = raw_path.decode("latin-1") if raw_path else scope["path"]
            dispatcher.dispatch(scope["method"], path, scope["query_string"], scope["headers"], body, respond)
        status, head, payload = await future
        head = [(k, v) for k, v in head if k != b"date"]  # uvicorn sends its own
        head.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": payload})

    return app


__all__ = ["Dispatcher", "Headers", "Respond", "asgi_app", "error_answer"]
