"""An ASGI app on the raw server (:class:`atoll._http.asgi_server.AsgiDispatcher`), as replicas run."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from atoll._http.asgi import Receive, Scope, Send, read_body, send_bytes
from atoll._http.asgi_server import AsgiDispatcher, serve


def test_an_app_answers_through_the_raw_server_with_one_content_length() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        await send_bytes(send, 201, body[::-1], b"text/plain", [(b"x-path", scope["path"].encode())])

    started: list[str] = []
    handle = serve(AsgiDispatcher(app, 0, lambda: started.append("up")), host="127.0.0.1", port=0, block=False)
    try:
        assert handle.wait_started() and started == ["up"]
        answer = httpx.post(f"{handle.url}/a%20b", content=b"abc", timeout=10)
        assert answer.status_code == 201 and answer.text == "cba"
        assert answer.headers["x-path"] == "/a b"  # percent-decoded, as uvicorn gives it
        assert answer.headers.get_list("content-length") == ["3"]
    finally:
        handle.stop()


def test_receive_reports_a_disconnect_once_the_client_is_gone() -> None:
    seen: list[Any] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(await receive())
        seen.append(await receive())  # waits until the connection is closed

    async def scenario() -> list[Any]:
        gone = False

        def respond(status: int, headers: Any, body: bytes) -> None:
            seen.append(status)

        respond.client_gone = lambda: gone  # type: ignore[attr-defined]
        AsgiDispatcher(app).dispatch("POST", "/predict", b"", [], b"x", respond)
        await asyncio.sleep(0.3)
        assert len(seen) == 1  # still waiting: the client is there
        gone = True
        await asyncio.sleep(0.3)
        return seen

    first, second, status = asyncio.run(scenario())
    assert first == {"type": "http.request", "body": b"x", "more_body": False}
    assert second == {"type": "http.disconnect"}
    assert status == 500  # the app never answered: the server does


def test_an_app_that_raises_answers_500_and_the_server_keeps_serving() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/boom":
            raise RuntimeError("bug")
        await send_bytes(send, 200, b"{}")

    handle = serve(AsgiDispatcher(app), host="127.0.0.1", port=0, block=False)
    try:
        assert handle.wait_started()
        assert httpx.get(f"{handle.url}/boom", timeout=10).status_code == 500
        assert httpx.get(f"{handle.url}/fine", timeout=10).status_code == 200
    finally:
        handle.stop()


def test_a_deployments_limit_settings_become_the_servers_limits() -> None:
    from atoll._http.asgi_server import limits_from
    from atoll._http.server import Limits
    from atoll.config import ServingSection

    max_body, limits = limits_from(ServingSection(max_body_mb=2, max_header_kb=8, max_connections=5).limits())
    assert max_body == 2 * 1024 * 1024
    assert limits == Limits(max_header_bytes=8 * 1024, header_timeout=10, body_timeout=60, max_connections=5)
    assert limits_from(None, 7) == (7, Limits())
    assert limits_from({"max_connections": 3, "from_a_newer_atoll": 1}) == (0, Limits(max_connections=3))
