"""The proxy shared by the router and the local ``--port`` balancer, seen through the balancer.

Real HTTP on 127.0.0.1: two small replicas on uvicorn, a port nothing listens
on, and the balancer (on Atoll's raw server) in front of them, all on free ports in this process.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import orjson
import pytest

from atoll._http.asgi import Receive, Scope, Send, ServerHandle, lifespan, read_body, run_app, send_bytes
from atoll._http.asgi_server import serve
from atoll.containers.local.balancer import Balancer


def _replica(name: str, hits: list[str]):  # type: ignore[no-untyped-def]
    """An app answering ``{"replica", "target", "body"}``; ``/fail`` answers 500."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send, lambda: None, lambda: None)
            return
        body = await read_body(receive)
        hits.append(name)
        target = scope["raw_path"] + (b"?" + scope["query_string"] if scope["query_string"] else b"")
        answer = {"replica": name, "target": target.decode(), "body": body.decode()}
        await send_bytes(send, 500 if scope["path"] == "/fail" else 200, orjson.dumps(answer),
                         headers=[(b"x-replica", name.encode())])

    return app


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again on leaving: nothing listens there


@pytest.fixture
def hits() -> list[str]:
    return []


@pytest.fixture
def balanced(hits: list[str]) -> Iterator[tuple[str, Balancer]]:
    """The balancer's URL, in front of replicas ``a``, ``b`` and one unreachable address."""
    handles: list[ServerHandle] = []
    try:
        for name in ("a", "b"):
            handles.append(run_app(_replica(name, hits), host="127.0.0.1", port=0, block=False))
        balancer = Balancer()
        balancer.targets = tuple(("127.0.0.1", h.port) for h in handles) + (("127.0.0.1", _closed_port()),)
        handles.append(serve(balancer, host="127.0.0.1", port=0, block=False))
        for handle in handles:
            assert handle.wait_started()
        yield handles[-1].url, balancer
    finally:
        for handle in handles:
            handle.stop()


def test_requests_go_to_every_replica_and_skip_the_unreachable_one(balanced: tuple[str, Balancer]) -> None:
    url, _ = balanced
    answers = [httpx.post(f"{url}/predict", content=b"x", timeout=10) for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 6
    assert {a.json()["replica"] for a in answers} == {"a", "b"}


def test_request_and_answer_pass_unchanged(balanced: tuple[str, Balancer]) -> None:
    url, _ = balanced
    answer = httpx.post(f"{url}/predict?model_version=m%3Av1&x=1", content=b"[5.1, 3.5]", timeout=10)
    assert answer.status_code == 200
    assert answer.json()["target"] == "/predict?model_version=m%3Av1&x=1"
    assert answer.json()["body"] == "[5.1, 3.5]"
    assert answer.headers["x-replica"] == answer.json()["replica"]


def test_an_error_answer_comes_back_and_is_not_retried(balanced: tuple[str, Balancer], hits: list[str]) -> None:
    url, _ = balanced
    answer = httpx.post(f"{url}/fail", content=b"x", timeout=10)
    assert answer.status_code == 500
    assert len(hits) == 1


def test_no_replica_is_503(balanced: tuple[str, Balancer]) -> None:
    url, balancer = balanced
    balancer.targets = ()
    answer = httpx.post(f"{url}/predict", content=b"x", timeout=10)
    assert answer.status_code == 503
    assert answer.json() == {"error": "no healthy replica of this deployment is reachable"}
