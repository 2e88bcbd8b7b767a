"""OnlinePredict and LazyModelServer, as a client of a running replica sees them.

Servers run in subprocesses on free ports, inside a fake task directory; the
in-process tests drive the ASGI app directly or run the server in a thread.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from atoll.errors import BackendUnavailableError, NotFoundError, UsageError
from atoll.toolkit.serving import LazyModelServer, OnlinePredict
from support.answers import stamped
from support.processes import ServerProcess, free_port

ECHO = """
import os, sys, time
from atoll.toolkit.serving import OnlinePredict

def predict(body):
    if body == "bad":
        raise ValueError("bad input: expected rows")
    if body == "boom":
        raise RuntimeError("the model exploded")
    if body == "slow":
        time.sleep(1.0)
    return {"echo": body, "pid": os.getpid()}

OnlinePredict(predict, enrich=os.environ.get("ENRICH", "1") == "1")()
"""

# The store the fake require_version stages from; the real module is written
# elsewhere, so the replica installs a stand-in before the server imports it.
LAZY = """
import os, shutil, sys, types
from pathlib import Path
from atoll.errors import NotFoundError
from atoll.toolkit.serving import LazyModelServer

STORE = Path(os.environ["FAKE_STORE"])
TASK = Path(os.environ["ATOLL_TASK_DIR"])

def require_version(name, model=None):
    model = model or "wine"
    src = STORE / f"{model}.{name}"
    if not src.is_dir():
        raise NotFoundError(f"model version {model}:{name} does not exist")
    dst = TASK / "model" / f"{model}.{name}"
    if not dst.exists():
        shutil.copytree(src, dst)
    return str(dst)

fake = types.ModuleType("atoll.toolkit.requirements")
fake.require_version = require_version
sys.modules["atoll.toolkit.requirements"] = fake

loads = {}

def load(path, meta):
    key = meta["model"] + ":" + meta["name"]
    loads[key] = loads.get(key, 0) + 1
    if (Path(path) / "broken").exists():
        raise OSError("weights are corrupt")
    return {"weights": (Path(path) / "weights.txt").read_text(), "load": loads[key], "path": path}

def predict(body, model, meta):
    if body == "bad":
        raise ValueError("bad row")
    return {"weights": model["weights"], "load": model["load"], "meta_name": meta["name"], "body": body}

LazyModelServer(predict, load, max_models=2)()
"""


def make_task(root: Path, versions: tuple[str, ...] = ("v1",)) -> Path:
    """A fake task root with the given wine versions staged."""
    for version in versions:
        (root / "model" / f"wine.{version}").mkdir(parents=True)
        (root / "model" / f"wine.{version}" / "weights.txt").write_text(f"weights-{version}")
        meta = root / "atoll" / "meta" / "versions" / f"wine.{version}.json"
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_bytes(orjson.dumps({"name": version, "model": "wine"}))
    return root


class Replica(ServerProcess):
    """A server subprocess started from a script, stopped by PID."""

    def __init__(self, tmp: Path, script: str, env: dict[str, str], name: str = "replica") -> None:
        port = free_port()
        path = tmp / f"{name}.py"
        path.write_text(textwrap.dedent(script))
        env = {**env, "ATOLL_PORT": str(port), "ATOLL_HOST": "127.0.0.1"}
        super().__init__(tmp, name, [sys.executable, str(path)], env, port)


@pytest.fixture
def echo(tmp_path: Path) -> Iterator[Replica]:
    task = make_task(tmp_path / "task")
    replica = Replica(tmp_path, ECHO, {"ATOLL_TASK_DIR": str(task), "ATOLL_REPLICA": "replica-a"})
    yield replica
    replica.stop()


@pytest.fixture
def lazy(tmp_path: Path) -> Iterator[Replica]:
    task = make_task(tmp_path / "task", ("v1", "v2"))
    store = tmp_path / "store"
    for version in ("v3", "v4"):
        (store / f"wine.{version}").mkdir(parents=True)
        (store / f"wine.{version}" / "weights.txt").write_text(f"weights-{version}")
    (store / "wine.bad").mkdir()
    (store / "wine.bad" / "broken").write_text("")
    env = {"ATOLL_TASK_DIR": str(task), "ATOLL_REPLICA": "lazy-a", "FAKE_STORE": str(store)}
    replica = Replica(tmp_path, LAZY, env, name="lazy")
    yield replica
    replica.stop()


# OnlinePredict ---------------------------------------------------------------


def test_predict_answers_result_and_metadata(echo: Replica) -> None:
    before = datetime.now(timezone.utc)
    answer = httpx.post(f"{echo.url}/predict", content=b'{"rows": [[1, 2]]}')
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body["result"]["echo"] == '{"rows": [[1, 2]]}'
    assert list(body["metadata"]) == ["datetime", "model_version", "replica"]
    assert stamped(body["metadata"], before) == {"model_version": "wine:v1", "replica": "replica-a"}


def test_bad_input_is_400_and_exception_is_500_and_replica_survives(echo: Replica) -> None:
    with httpx.Client(base_url=echo.url) as client:
        bad = client.post("/predict", content=b"bad")
        assert bad.status_code == 400
        assert bad.json() == {"error": "bad input: expected rows"}
        for _ in range(3):
            boom = client.post("/predict", content=b"boom")
            assert boom.status_code == 500
            assert boom.json() == {"error": "the model exploded"}
        assert client.post("/predict", content=b"ok").json()["result"]["echo"] == "ok"
        assert client.get("/health").status_code == 200
    assert echo.proc.poll() is None


def test_non_utf8_body_is_400(echo: Replica) -> None:
    answer = httpx.post(f"{echo.url}/predict", content=b"\xff\xfe")
    assert answer.status_code == 400


def test_health_routes_and_methods(echo: Replica) -> None:
    with httpx.Client(base_url=echo.url) as client:
        assert client.get("/health").json() == {"status": "ok", "server": "OnlinePredict"}
        assert client.get("/nowhere").status_code == 404
        wrong = client.get("/predict")
        assert wrong.status_code == 405
        assert wrong.headers["allow"] == "POST"
        assert client.post("/health").status_code == 405


def test_metrics_count_requests_errors_and_latency(echo: Replica) -> None:
    with httpx.Client(base_url=echo.url) as client:
        for _ in range(3):
            client.post("/predict", content=b"x")
        client.post("/predict", content=b"bad")
        client.post("/predict", content=b"boom")
        text = client.get("/metrics")
    assert text.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = text.text.splitlines()
    assert 'atoll_requests_total{route="/predict",status="200"} 3' in lines
    assert 'atoll_requests_total{route="/predict",status="400"} 1' in lines
    assert 'atoll_requests_total{route="/predict",status="500"} 1' in lines
    assert 'atoll_errors_total{kind="exception"} 1' in lines
    assert 'atoll_errors_total{kind="invalid_input"} 1' in lines
    assert 'atoll_request_duration_seconds_count{route="/predict"} 5' in lines
    assert 'atoll_request_duration_seconds_bucket{route="/predict",le="+Inf"} 5' in lines
    assert "atoll_up 1" in lines


def test_enrich_false_answers_the_bare_result(tmp_path: Path) -> None:
    task = make_task(tmp_path / "task")
    replica = Replica(tmp_path, ECHO, {"ATOLL_TASK_DIR": str(task), "ENRICH": "0"})
    try:
        assert httpx.post(f"{replica.url}/predict", content=b"hi").json()["echo"] == "hi"
    finally:
        replica.stop()


def test_sigterm_finishes_the_request_in_flight_then_exits(echo: Replica) -> None:
    answers: list[httpx.Response] = []
    slow = threading.Thread(
        target=lambda: answers.append(httpx.post(f"{echo.url}/predict", content=b"slow", timeout=10))
    )
    slow.start()
    time.sleep(0.4)  # the request is inside predict now
    echo.proc.send_signal(signal.SIGTERM)
    slow.join(10)
    assert answers and answers[0].status_code == 200
    assert echo.proc.wait(10) is not None
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{echo.url}/health", timeout=1)


# LazyModelServer ---------------------------------------------------------------


def test_lazy_serves_the_first_staged_version_by_default(lazy: Replica) -> None:
    before = datetime.now(timezone.utc)
    body = httpx.post(f"{lazy.url}/predict", content=b"row").json()
    assert body["result"]["weights"] == "weights-v1"
    assert stamped(body["metadata"], before) == {"model_version": "wine:v1", "replica": "lazy-a"}


def test_lazy_loads_named_versions_and_stages_missing_ones(lazy: Replica) -> None:
    with httpx.Client(base_url=lazy.url) as client:
        assert (
            client.post("/predict?model_version=v2", content=b"r").json()["result"]["weights"] == "weights-v2"
        )
        third = client.post("/predict?model_version=wine:v3", content=b"r").json()
        assert third["result"]["weights"] == "weights-v3"  # not staged: fetched through require_version
        assert third["metadata"]["model_version"] == "wine:v3"
        assert third["result"]["meta_name"] == "v3"


def test_lazy_keeps_at_most_max_models_least_recently_used_out(lazy: Replica) -> None:
    with httpx.Client(base_url=lazy.url) as client:

        def load_count(version: str) -> int:
            answer = client.post(f"/predict?model_version={version}", content=b"r")
            assert answer.status_code == 200, answer.text
            return int(answer.json()["result"]["load"])

        assert load_count("v1") == 1
        assert load_count("v2") == 1
        assert load_count("v1") == 1  # cached; v2 is now the least recently used
        assert load_count("v3") == 1  # evicts v2
        assert load_count("v1") == 1  # still cached
        assert load_count("v2") == 2  # was evicted: loaded again
        metrics = client.get("/metrics").text.splitlines()
        assert "atoll_models_loaded 2" in metrics


def test_lazy_update_reloads_the_version(lazy: Replica, tmp_path: Path) -> None:
    with httpx.Client(base_url=lazy.url) as client:
        first = client.post("/predict?model_version=v1", content=b"r").json()["result"]
        assert first == {"weights": "weights-v1", "load": 1, "meta_name": "v1", "body": "r"}
        (tmp_path / "task" / "model" / "wine.v1" / "weights.txt").write_text("retrained")
        update = client.post("/update?model_version=v1")
        assert update.status_code == 200
        assert update.json()["model_version"] == "wine:v1"
        after = client.post("/predict?model_version=v1", content=b"r").json()["result"]
        assert after["weights"] == "retrained"
        assert after["load"] == 2


def test_lazy_errors(lazy: Replica) -> None:
    with httpx.Client(base_url=lazy.url) as client:
        missing = client.post("/predict?model_version=v9", content=b"r")
        assert missing.status_code == 404
        assert "v9" in missing.json()["error"]
        assert client.post("/predict?model_version=../../etc", content=b"r").status_code == 400
        broken = client.post("/predict?model_version=bad", content=b"r")
        assert broken.status_code == 500
        assert "weights are corrupt" in broken.json()["error"]
        assert client.post("/predict?model_version=v1", content=b"bad").status_code == 400
        assert client.post("/update?model_version=v9").status_code == 404
        assert client.post("/predict?model_version=v1", content=b"r").status_code == 200
        assert client.get("/update").status_code == 405


# In-process ---------------------------------------------------------------------


async def _call(app: Any, method: str, path: str, body: bytes = b"", query: bytes = b"") -> tuple[int, bytes]:
    """Drive an ASGI app once; return (status, body)."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "query_string": query, "headers": []}
    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def test_health_is_503_until_the_server_is_started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATOLL_TASK_DIR", str(tmp_path))
    server = OnlinePredict(lambda body: body)
    assert asyncio.run(_call(server.app, "GET", "/health"))[0] == 503
    assert "atoll_up 0" in asyncio.run(_call(server.app, "GET", "/metrics"))[1].decode()
    server._started()
    assert asyncio.run(_call(server.app, "GET", "/health")) == (200, b'{"status":"ok","server":"OnlinePredict"}')


def test_numpy_results_and_async_predict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    np = pytest.importorskip("numpy")
    monkeypatch.setenv("ATOLL_TASK_DIR", str(tmp_path))
    monkeypatch.setenv("ATOLL_REPLICA", "r0")

    async def predict(body: str) -> Any:
        return np.array([1.5, 2.5])

    before = datetime.now(timezone.utc)
    status, body = asyncio.run(_call(OnlinePredict(predict).app, "POST", "/predict", b"x"))
    assert status == 200
    answer = orjson.loads(body)
    assert stamped(answer["metadata"], before) == {"model_version": None, "replica": "r0"}
    assert answer == {"result": [1.5, 2.5], "metadata": {"model_version": None, "replica": "r0"}}
    status, body = asyncio.run(_call(OnlinePredict(lambda b: object()).app, "POST", "/predict", b"x"))
    assert status == 500
    assert b"cannot be serialized to JSON" in body


def test_runs_in_a_thread_when_called_inside_an_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATOLL_TASK_DIR", str(tmp_path))

    async def notebook_cell() -> str:
        handle = OnlinePredict(lambda body: body.upper())(block=False, host="127.0.0.1", port=0)
        try:
            assert handle.wait_started(10)
            # The kernel's loop stays free (it runs this client): the server has its own loop.
            async with httpx.AsyncClient() as client:
                answer = await client.post(f"{handle.url}/predict", content=b"abc")
            return str(answer.json()["result"])
        finally:
            handle.stop()
            assert handle.wait(10)

    assert asyncio.run(notebook_cell()) == "ABC"


def test_busy_port_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATOLL_TASK_DIR", str(tmp_path))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        monkeypatch.setenv("ATOLL_PORT", str(sock.getsockname()[1]))
        with pytest.raises(BackendUnavailableError, match="cannot listen"):
            OnlinePredict(lambda body: body)()


def test_bad_arguments_are_usage_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATOLL_TASK_DIR", str(tmp_path))
    with pytest.raises(UsageError):
        LazyModelServer(lambda b, m, meta: b, lambda p, meta: None, max_models=0)
    with pytest.raises(UsageError):
        OnlinePredict("not a function")  # type: ignore[arg-type]
    monkeypatch.setenv("ATOLL_PORT", "http")
    with pytest.raises(UsageError, match="ATOLL_PORT"):
        OnlinePredict(lambda body: body)()


def test_a_replica_with_a_secret_refuses_requests_without_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = tmp_path / "store.json"
    settings.write_bytes(orjson.dumps({"version": 1, "replica": {"secret": "s" * 43}}))
    monkeypatch.setenv("ATOLL_STORE_CONFIG", str(settings))
    server = OnlinePredict(lambda body: body)

    async def call(path: str, headers: list[tuple[bytes, bytes]], method: str = "POST") -> int:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"x", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": method, "path": path, "query_string": b"", "headers": headers}
        await server.app(scope, receive, send)
        return int(sent[0]["status"])

    secret = [(b"x-atoll-replica-secret", b"s" * 43)]
    assert asyncio.run(call("/predict", [])) == 403
    assert asyncio.run(call("/predict", [(b"x-atoll-replica-secret", b"t" * 43)])) == 403
    assert asyncio.run(call("/nowhere", [])) == 403  # unknown paths too: nothing is said without the secret
    assert asyncio.run(call("/predict", secret)) == 200
    server._started()
    assert asyncio.run(call("/health", [], "GET")) == 200  # probes need no secret
    assert asyncio.run(call("/metrics", [], "GET")) == 200


def test_outside_a_deployment_a_replica_serves_without_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ATOLL_STORE_CONFIG", raising=False)
    assert OnlinePredict(lambda body: body)._secret is None


def test_a_replica_whose_store_settings_are_missing_does_not_start_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATOLL_STORE_CONFIG", str(tmp_path / "gone.json"))
    with pytest.raises(NotFoundError, match="gone.json"):
        OnlinePredict(lambda body: body)
