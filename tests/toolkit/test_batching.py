"""Adaptive batching: what clients of a batched replica get, and what the batch function sees.

Most tests drive the ASGI app in-process with clients that can hang up; one
runs the server on uvicorn and talks real HTTP, including a client that closes
its socket before its batch forms.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import pytest

from atoll.errors import UsageError
from atoll.toolkit import BatchConfig
from atoll.toolkit.serving import LazyModelServer, OnlinePredict
from support.answers import stamped

T = TypeVar("T")
WAIT_FOREVER = BatchConfig(max_size=3, max_latency_ms=60_000)  # batches form only when full


class Client:
    """One HTTP exchange: the body it sends, what it received, and a way to hang up."""

    def __init__(self, body: str, query: bytes = b"") -> None:
        self.body = body.encode()
        self.query = query
        self.gone = asyncio.Event()
        self.sent: list[dict[str, Any]] = []
        self._read = False

    async def receive(self) -> dict[str, Any]:
        if not self._read:
            self._read = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def call(self, app: Any) -> Awaitable[None]:
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/predict",
            "query_string": self.query,
            "headers": [],
        }
        return app(scope, self.receive, self.send)

    @property
    def status(self) -> int | None:
        return self.sent[0]["status"] if self.sent else None

    @property
    def answer(self) -> Any:
        return orjson.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))


def run(coro: Awaitable[T]) -> T:
    """Run a test scenario; a scenario that hangs fails after 10 s instead of blocking the suite."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, 10)

    return asyncio.run(bounded())


async def metrics_text(server: Any) -> str:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await server.app(
        {"type": "http", "method": "GET", "path": "/metrics", "query_string": b""}, receive, send
    )
    return b"".join(m.get("body", b"") for m in sent[1:]).decode()


@pytest.fixture(autouse=True)
def task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A task directory with two staged versions of model ``wine``."""
    for version in ("v1", "v2"):
        (tmp_path / "model" / f"wine.{version}").mkdir(parents=True)
        (tmp_path / "model" / f"wine.{version}" / "weights.txt").write_text(f"weights-{version}")
    monkeypatch.setenv("ATOLL_TASK_DIR", str(tmp_path))
    monkeypatch.setenv("ATOLL_REPLICA", "r0")
    return tmp_path


def recording(calls: list[list[str]]) -> Any:
    """A batch function that records its calls and answers ``body!``; ``bad`` bodies are bad input."""

    def predict_batch(bodies: list[str]) -> list[str]:
        calls.append(list(bodies))
        if "bad" in bodies:
            raise ValueError("bad row")
        return [f"{body}!" for body in bodies]

    return predict_batch


def test_each_request_gets_its_own_result_from_one_call_in_arrival_order() -> None:
    calls: list[list[str]] = []
    server = OnlinePredict(recording(calls), batch=WAIT_FOREVER)
    clients = [Client(body) for body in ("a", "b", "c")]

    async def scenario() -> None:
        await asyncio.gather(*(client.call(server.app) for client in clients))

    before = datetime.now(timezone.utc)
    run(scenario())
    assert calls == [["a", "b", "c"]]
    assert [client.status for client in clients] == [200, 200, 200]
    assert [client.answer["result"] for client in clients] == ["a!", "b!", "c!"]
    assert stamped(clients[0].answer["metadata"], before) == {"model_version": None, "replica": "r0"}


def test_latency_cap_dispatches_a_partial_batch() -> None:
    calls: list[list[str]] = []
    server = OnlinePredict(recording(calls), batch=BatchConfig(max_size=100, max_latency_ms=1))

    async def scenario() -> None:
        for body in ("first", "second"):  # one after the other: nobody joins either batch
            client = Client(body)
            await client.call(server.app)
            assert client.answer["result"] == f"{body}!"

    run(scenario())
    assert calls == [["first"], ["second"]]


def test_a_full_batch_goes_at_once_and_the_rest_forms_the_next() -> None:
    calls: list[list[str]] = []
    server = OnlinePredict(recording(calls), batch=BatchConfig(max_size=2, max_latency_ms=1))
    clients = [Client(str(i)) for i in range(5)]

    async def scenario() -> None:
        await asyncio.gather(*(client.call(server.app) for client in clients))

    run(scenario())
    assert calls == [["0", "1"], ["2", "3"], ["4"]]
    assert [client.answer["result"] for client in clients] == ["0!", "1!", "2!", "3!", "4!"]


def test_a_bad_body_fails_alone_when_the_batch_function_raises() -> None:
    calls: list[list[str]] = []
    server = OnlinePredict(recording(calls), batch=WAIT_FOREVER)
    clients = [Client(body) for body in ("a", "bad", "c")]

    async def scenario() -> None:
        await asyncio.gather(*(client.call(server.app) for client in clients))

    run(scenario())
    assert [client.status for client in clients] == [200, 400, 200]
    assert clients[1].answer == {"error": "bad row"}
    assert [clients[0].answer["result"], clients[2].answer["result"]] == ["a!", "c!"]
    assert calls == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]  # the batch, then each alone


def test_an_exception_in_place_of_a_result_fails_that_request_only() -> None:
    calls: list[list[str]] = []

    def predict_batch(bodies: list[str]) -> list[Any]:
        calls.append(bodies)
        return [ValueError(f"cannot read {b!r}") if b.startswith("x") else len(b) for b in bodies]

    server = OnlinePredict(predict_batch, batch=WAIT_FOREVER, enrich=False)
    clients = [Client(body) for body in ("aa", "xyz", "b")]

    async def scenario() -> None:
        await asyncio.gather(*(client.call(server.app) for client in clients))

    run(scenario())
    assert len(calls) == 1  # nothing re-run
    assert [client.status for client in clients] == [200, 400, 200]
    assert [clients[0].answer, clients[1].answer, clients[2].answer] == [2, {"error": "cannot read 'xyz'"}, 1]


def test_wrong_number_of_results_is_500_for_every_request() -> None:
    server = OnlinePredict(lambda bodies: bodies[:1], batch=BatchConfig(max_size=2, max_latency_ms=60_000))
    clients = [Client("a"), Client("b")]

    async def scenario() -> None:
        await asyncio.gather(*(client.call(server.app) for client in clients))

    run(scenario())
    assert [client.status for client in clients] == [500, 500]
    assert clients[0].answer == {"error": "the batch function returned 1 results for 2 requests"}


def test_a_client_that_leaves_before_dispatch_is_left_out_of_the_batch() -> None:
    calls: list[list[str]] = []
    server = OnlinePredict(recording(calls), batch=BatchConfig(max_size=2, max_latency_ms=60_000))
    leaver, others = Client("leaver"), [Client("b"), Client("c")]

    async def scenario() -> None:
        leaving = asyncio.ensure_future(leaver.call(server.app))
        await asyncio.sleep(0.01)  # the leaver is queued, its batch not full
        leaver.gone.set()
        await leaving
        await asyncio.gather(*(client.call(server.app) for client in others))

    run(scenario())
    assert calls == [["b", "c"]]
    assert leaver.sent == []  # nothing is sent to a closed connection
    assert [client.answer["result"] for client in others] == ["b!", "c!"]
    text = run(metrics_text(server))
    assert 'atoll_requests_total{route="/predict",status="499"} 1' in text.splitlines()


def test_a_client_that_leaves_during_the_call_gets_nothing_and_the_others_their_results() -> None:
    release = asyncio.Event()
    calls: list[list[str]] = []

    async def predict_batch(bodies: list[str]) -> list[str]:
        calls.append(bodies)
        await release.wait()
        return [body.upper() for body in bodies]

    server = OnlinePredict(predict_batch, batch=BatchConfig(max_size=2, max_latency_ms=60_000))
    leaver, stayer = Client("x"), Client("y")

    async def scenario() -> None:
        both = asyncio.gather(leaver.call(server.app), stayer.call(server.app))
        while not calls:  # wait until the batch function holds both
            await asyncio.sleep(0.001)
        leaver.gone.set()
        await asyncio.sleep(0.01)
        release.set()
        await both

    run(scenario())
    assert calls == [["x", "y"]]
    assert leaver.sent == []
    assert stayer.answer["result"] == "Y"


def test_metrics_expose_batch_sizes() -> None:
    calls: list[list[str]] = []
    server = OnlinePredict(recording(calls), batch=WAIT_FOREVER)

    async def scenario() -> str:
        await asyncio.gather(*(Client(str(i)).call(server.app) for i in range(6)))
        return await metrics_text(server)

    lines = run(scenario()).splitlines()
    assert "# TYPE atoll_batch_size histogram" in lines
    assert 'atoll_batch_size_bucket{le="2"} 0' in lines
    assert 'atoll_batch_size_bucket{le="4"} 2' in lines
    assert "atoll_batch_size_sum 6" in lines
    assert "atoll_batch_size_count 2" in lines
    assert 'atoll_requests_total{route="/predict",status="200"} 6' in lines


def test_unbatched_servers_have_no_batch_metric() -> None:
    assert "batch_size" not in run(metrics_text(OnlinePredict(lambda body: body)))


def test_lazy_server_batches_per_model_version() -> None:
    calls: list[tuple[str, list[str]]] = []

    def load(path: str, meta: dict[str, Any]) -> str:
        return (Path(path) / "weights.txt").read_text()

    def predict_batch(bodies: list[str], model: str, meta: dict[str, Any]) -> list[str]:
        calls.append((model, bodies))
        return [f"{model}:{body}" for body in bodies]

    server = LazyModelServer(predict_batch, load, batch=BatchConfig(max_size=2, max_latency_ms=60_000))
    clients = [Client(f"r{i}", b"model_version=v%d" % (1 + i % 2)) for i in range(4)]

    async def scenario() -> None:
        await asyncio.gather(*(client.call(server.app) for client in clients))

    before = datetime.now(timezone.utc)
    run(scenario())
    # versions load in worker threads, so which request of a version queues first may vary
    assert sorted((model, sorted(bodies)) for model, bodies in calls) == [
        ("weights-v1", ["r0", "r2"]),
        ("weights-v2", ["r1", "r3"]),
    ]
    assert [client.answer["result"] for client in clients] == [
        "weights-v1:r0",
        "weights-v2:r1",
        "weights-v1:r2",
        "weights-v2:r3",
    ]
    assert stamped(clients[1].answer["metadata"], before) == {"model_version": "wine:v2", "replica": "r0"}


def test_bad_batch_settings_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="max_size"):
        BatchConfig(max_size=0)
    with pytest.raises(UsageError, match="max_latency_ms"):
        BatchConfig(max_latency_ms=-1)
    with pytest.raises(UsageError, match="BatchConfig"):
        OnlinePredict(lambda bodies: bodies, batch={"max_size": 4})  # type: ignore[arg-type]


def _metric(url: str, line: str) -> bool:
    return line in httpx.get(f"{url}/metrics").text.splitlines()


def test_over_http_concurrent_requests_share_a_call_and_a_closed_socket_drops_out() -> None:
    calls: list[list[str]] = []
    handle = OnlinePredict(recording(calls), batch=BatchConfig(max_size=4, max_latency_ms=60_000))(
        block=False, host="127.0.0.1", port=0
    )
    try:
        assert handle.wait_started(10)
        raw = socket.create_connection((handle.host, handle.port))
        raw.sendall(b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-length: 6\r\n\r\nleaver")
        raw.close()  # the server notices, takes the request out of the queue and counts a 499
        deadline = time.monotonic() + 10
        while not _metric(handle.url, 'atoll_requests_total{route="/predict",status="499"} 1'):
            assert time.monotonic() < deadline, "the server never noticed the closed connection"
            time.sleep(0.01)

        async def clients() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=handle.url, timeout=10) as client:
                return await asyncio.gather(*(client.post("/predict", content=str(i)) for i in range(4)))

        answers = asyncio.run(clients())
        assert [answer.json()["result"] for answer in answers] == ["0!", "1!", "2!", "3!"]
        assert sorted(calls[0]) == ["0", "1", "2", "3"] and len(calls) == 1
    finally:
        handle.stop()
